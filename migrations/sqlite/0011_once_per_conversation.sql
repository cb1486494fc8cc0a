-- conversant: once means once (DESIGN §4). A token cannot be revoked, so an
-- older link still verifies, and a client may replay it or fork the
-- conversation from it (the browser's Back button does). Every branch must
-- still lead to at most one effect, so the invariant lives where the effect
-- is written, in the same transaction, and two racing branches cannot both
-- win:
-- - one payment that took money per conversation (a declined attempt took
--   none, so paying again with another card still works; a refund does not
--   free the conversation for a second charge);
-- - one order per conversation, whatever raised it.
-- One delivery per order is the deliveries' primary key (its id derives from
-- the order's), and one refund per payment is a status that moves once.
CREATE UNIQUE INDEX payments_one_capture ON payments (conversation_id) WHERE status <> 'declined';
CREATE UNIQUE INDEX orders_one_per_conversation ON orders (conversation_id);
-- A conversation's payments, declined ones included, are read by pricing
-- before it prices a basket (is this conversation paid?) and by the audit
-- listing: by index, not by a scan that grows with every payment taken.
CREATE INDEX payments_by_conversation ON payments (conversation_id);
-- The order a payment pays for, when the payer named it (the checkout does:
-- its order id derives from the paying attempt), so that a second branch's
-- `409 already-paid` can link to the order as well as to the payment.
ALTER TABLE payments ADD COLUMN order_id TEXT;
