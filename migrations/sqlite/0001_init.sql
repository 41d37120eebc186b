-- Herald's schema. Times are unix milliseconds (UTC); JSON columns hold TEXT.

CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    -- the destination's settings, secrets included (never returned by the API)
    settings TEXT NOT NULL,
    max_concurrency INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    solution TEXT NOT NULL,
    event_name TEXT,
    category TEXT,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    format TEXT NOT NULL,
    filter TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((event_name IS NULL) <> (category IS NULL))
);
CREATE INDEX subscriptions_endpoint ON subscriptions(endpoint_id);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    solution TEXT NOT NULL,
    params TEXT NOT NULL,
    correlation_id TEXT,
    caller TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    idempotency_key TEXT,
    fingerprint BLOB,
    delivery_count INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events(solution, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_name_time ON events(name, received_at);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events(id),
    subscription_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    -- pending | in_flight | succeeded | dead_lettered | cancelled
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_endpoint_status ON deliveries(endpoint_id, status);

CREATE TABLE attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id),
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    -- success | retry | permanent
    outcome TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
