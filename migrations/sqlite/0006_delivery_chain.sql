-- conversant, SQLite: where each delivery's conversation stands. The saga
-- continues the conversation that started it (the order.placed token's
-- chain), so it keeps the latest message's id, turn and chain digest, and
-- signs its next message as the turn after it.
ALTER TABLE deliveries ADD COLUMN head_message TEXT;
ALTER TABLE deliveries ADD COLUMN head_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN head_chain TEXT NOT NULL DEFAULT '';
