-- conversant, SQLite: solicit-response (Out-In). Deliveries correlates the
-- replies its couriers send before a solicitation's deadline; one reply per
-- courier and solicitation, the first one wins.
CREATE TABLE solicitation_replies (
    solicitation_id TEXT NOT NULL,
    courier_id TEXT NOT NULL,
    available BOOLEAN NOT NULL,
    eta_minutes INTEGER,
    reason TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (solicitation_id, courier_id)
);
