-- conversant, SQLite: an in-flight Idempotency-Key holds its key for a lease,
-- not for the record's whole time-to-live. A request that died while it held
-- the key (a panic, a killed process) left it `in_flight` and answered 409
-- for 24 hours; once `lease_until` (unix ms) has passed, the next request
-- with the key takes the record over. A `done` record has no lease: its
-- response is replayed until it expires. Rows written before this migration
-- (or by an instance that predates it) keep a NULL lease, counted from their
-- `created_at` by the server's --idempotency-lease.
ALTER TABLE idempotency ADD COLUMN lease_until INTEGER;
