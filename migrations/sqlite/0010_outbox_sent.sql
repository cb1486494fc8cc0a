-- conversant, SQLite: a delivered message leaves the outbox. The relay
-- deletes its row and writes a slim line to `outbox_sent`, which is all a
-- delivered message is still needed for (the delivered counts of
-- GET /{participant}/outbox, until --outbox-retention prunes it); the outbox
-- keeps only what is pending or dead, so its claim index stays small.
CREATE TABLE outbox_sent (
    id TEXT NOT NULL,
    participant TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL
);
CREATE INDEX outbox_sent_by_participant ON outbox_sent (participant);
CREATE INDEX outbox_sent_by_time ON outbox_sent (delivered_at);
INSERT INTO outbox_sent (id, participant, kind, attempts, created_at, delivered_at)
    SELECT id, participant, kind, attempts, created_at, COALESCE(delivered_at, created_at)
    FROM outbox WHERE status = 'delivered';
DELETE FROM outbox WHERE status = 'delivered';
DROP INDEX outbox_delivered;
-- Listing and counting by participant only needs the dead letters indexed;
-- what is pending is few and passing, and a scan counts it.
DROP INDEX outbox_by_participant;
CREATE INDEX outbox_dead_by_participant ON outbox (participant, created_at, id) WHERE status = 'dead';
