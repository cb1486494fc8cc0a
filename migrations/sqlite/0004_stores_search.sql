-- Robust Out-Only: store information's listings and search's index of them.

-- Store information: what it knows about each store. `version` grows with
-- every update; a fault names the version it is about, so a stale fault
-- cannot mark a listing that was fixed since.
CREATE TABLE listings (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    open BOOLEAN NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at INTEGER NOT NULL
);

-- Search: its index of the stores, fed by store.updated events. Only a newer
-- version replaces an entry, so late or reordered deliveries change nothing.
CREATE TABLE search_index (
    store_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    open BOOLEAN NOT NULL,
    version INTEGER NOT NULL,
    indexed_at INTEGER NOT NULL
);

-- Search's own subscriptions to publishers, with the secrets that make their
-- deliveries trustworthy (the publisher keeps its side in `subscriptions`).
CREATE TABLE search_subscriptions (
    id TEXT PRIMARY KEY,
    publisher TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX search_subscriptions_by_publisher ON search_subscriptions (publisher);
