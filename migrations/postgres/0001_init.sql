-- Herald's schema for PostgreSQL, the same tables as SQLite. Times are unix milliseconds
-- (UTC); JSON columns hold TEXT.

CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    -- the destination's settings, secrets included (never returned by the API)
    settings TEXT NOT NULL,
    max_concurrency BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
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
    enabled BOOLEAN NOT NULL,
    rank BIGINT NOT NULL,
    disabled_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
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
    received_at BIGINT NOT NULL,
    idempotency_key TEXT,
    fingerprint BYTEA,
    delivery_count BIGINT NOT NULL
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
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_endpoint_status ON deliveries(endpoint_id, status);

CREATE TABLE attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id),
    attempt BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- success | retry | permanent
    outcome TEXT NOT NULL,
    http_status BIGINT,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
-- Expired leases are looked up by time.
CREATE INDEX deliveries_lease ON deliveries(lease_until) WHERE status = 'in_flight';
