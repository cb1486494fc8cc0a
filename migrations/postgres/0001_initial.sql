-- conversant, PostgreSQL: the first schema. Times are unix milliseconds, ids are
-- UUIDv7 text, JSON is JSONB. See src/store/ for why each table exists.

-- Every message a participant sends or receives (activities know messages).
CREATE TABLE journal (
    seq BIGSERIAL PRIMARY KEY,
    participant TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    causation_id TEXT,
    from_participant TEXT NOT NULL,
    to_participant TEXT NOT NULL,
    pattern TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    chain TEXT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX journal_by_conversation ON journal (participant, conversation_id, at, seq);

-- Out-Only publish-subscribe: webhook subscribers.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    event_types JSONB NOT NULL,
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX subscriptions_by_owner ON subscriptions (owner, active);

-- Out-Only pull feed: seq is the cursor.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    participant TEXT NOT NULL,
    type TEXT NOT NULL,
    conversation_id TEXT,
    data JSONB NOT NULL,
    time BIGINT NOT NULL
);
CREATE INDEX events_by_participant ON events (participant, seq);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    store TEXT NOT NULL,
    items JSONB NOT NULL,
    total BIGINT NOT NULL,
    currency TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    last4 TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL
);

-- Transactional Inbox: a message id, or a conversation step, takes effect once.
CREATE TABLE inbox (
    participant TEXT NOT NULL,
    message_id TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    status INTEGER,
    response JSONB,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (participant, message_id),
    UNIQUE (participant, dedupe_key)
);

-- Transactional Outbox: messages written with the change that caused them.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    headers JSONB NOT NULL,
    body JSONB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_by_participant ON outbox (participant, status);

-- Stateful requestor: pending state keyed by correlation id.
CREATE TABLE correlations (
    id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    state JSONB NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX correlations_by_expiry ON correlations (expires_at);

-- Solicit-response: the provider tracks its subscribers (couriers).
CREATE TABLE couriers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    busyness DOUBLE PRECISION NOT NULL CHECK (busyness >= 0 AND busyness <= 1),
    reply_url TEXT,
    created_at BIGINT NOT NULL
);

-- Idempotency-Key records: replay the stored response of a retried request.
CREATE TABLE idempotency (
    participant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    headers JSONB,
    body BYTEA,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (participant, key)
);
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
