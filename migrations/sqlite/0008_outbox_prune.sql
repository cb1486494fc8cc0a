-- conversant, SQLite: delivered outbox messages are pruned after a retention
-- (--outbox-retention); this index finds the old ones without a table scan.
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE status = 'delivered';
