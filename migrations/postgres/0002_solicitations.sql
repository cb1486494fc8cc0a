-- conversant, PostgreSQL: solicit-response (Out-In). Deliveries correlates the
-- replies its couriers send before a solicitation's deadline; one reply per
-- courier and solicitation, the first one wins.
CREATE TABLE solicitation_replies (
    solicitation_id TEXT NOT NULL,
    courier_id TEXT NOT NULL,
    available BOOLEAN NOT NULL,
    eta_minutes BIGINT,
    reason TEXT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (solicitation_id, courier_id)
);
