-- conversant, PostgreSQL: cheaper relay claims.
-- The claim orders due messages by (next_attempt_at, id) and takes the first
-- few: an index in that very order hands them over without a sort.
CREATE INDEX outbox_due_in_order ON outbox (next_attempt_at, id) WHERE status = 'pending';
DROP INDEX outbox_due;
-- A claim only writes the lease columns, which no index covers: with room
-- left on each page, PostgreSQL updates such a row in place (a HOT update)
-- instead of adding an entry to every index of the table.
ALTER TABLE outbox SET (fillfactor = 70);
