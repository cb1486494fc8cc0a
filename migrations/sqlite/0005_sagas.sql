-- conversant, SQLite: the delivery saga (Process Manager). Deliveries keeps each
-- delivery's state, its history and its durable timers here, so a saga
-- survives restarts and any instance can advance it.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    order_id TEXT UNIQUE,
    payment_id TEXT,
    conversation_id TEXT NOT NULL,
    pickup_lat REAL NOT NULL,
    pickup_lon REAL NOT NULL,
    dropoff_lat REAL NOT NULL,
    dropoff_lon REAL NOT NULL,
    size TEXT NOT NULL,
    weight_kg REAL NOT NULL,
    deadline_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    courier_id TEXT,
    attempts INTEGER NOT NULL,
    history TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_by_state ON deliveries (state, created_at);

-- Timers are rows: a due timer is claimed (leased) by one instance's loop,
-- and marked fired once the saga has moved on.
CREATE TABLE saga_timers (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    fired BOOLEAN NOT NULL
);
CREATE INDEX saga_timers_due ON saga_timers (fired, due_at);

-- Deliveries' own subscription to orders' events: the Standard Webhooks
-- secret it verifies order.placed with.
CREATE TABLE saga_subscriptions (
    publisher TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    secret TEXT NOT NULL
);
