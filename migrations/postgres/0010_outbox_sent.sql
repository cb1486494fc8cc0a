-- conversant, PostgreSQL: a delivered message leaves the outbox.
-- Updating a delivered row to status 'delivered' wrote a whole new version
-- of it (headers and body included) and an entry in three indexes, and kept
-- the outbox table, and so its claim index, as big as a day's traffic. The
-- relay now deletes the row and writes a slim line to `outbox_sent`, which
-- is all that a delivered message is still needed for: the delivered counts
-- of GET /{participant}/outbox, until the retention (--outbox-retention)
-- prunes it. The outbox keeps only what is pending or dead.
CREATE TABLE outbox_sent (
    id TEXT NOT NULL,
    participant TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT NOT NULL
);
CREATE INDEX outbox_sent_by_participant ON outbox_sent (participant);
CREATE INDEX outbox_sent_by_time ON outbox_sent (delivered_at);
INSERT INTO outbox_sent (id, participant, kind, attempts, created_at, delivered_at)
    SELECT id, participant, kind, attempts, created_at, COALESCE(delivered_at, created_at)
    FROM outbox WHERE status = 'delivered';
DELETE FROM outbox WHERE status = 'delivered';
DROP INDEX outbox_delivered;
-- Headers and body are written once and sent as written: text, which
-- PostgreSQL stores without parsing it into jsonb and hands back without
-- printing it again.
ALTER TABLE outbox
    ALTER COLUMN headers TYPE TEXT USING headers::text,
    ALTER COLUMN body TYPE TEXT USING body::text;
-- A claim now moves a row's next_attempt_at (its lease), an indexed column,
-- so claims are no longer updates in place: the room 0009 left on each page
-- for them is given back, and the outbox keeps as few indexes as it can.
-- Listing and counting by participant only needs the dead letters indexed;
-- what is pending is few and passing, and a scan counts it.
ALTER TABLE outbox RESET (fillfactor);
DROP INDEX outbox_by_participant;
CREATE INDEX outbox_dead_by_participant ON outbox (participant, created_at, id) WHERE status = 'dead';
