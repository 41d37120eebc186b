-- What each attempt sent and the start of its answer (JSON, secrets masked), for operators.
ALTER TABLE attempts ADD COLUMN exchange TEXT;

-- Console sessions: the cookie's token is kept only as its SHA-256 (hex), and the API key
-- signed in with only as its SHA-256 (a key removed from the configuration ends its sessions).
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);

-- Activity per minute and endpoint ('' for events accepted), summed over every instance: each
-- adds what it counted.
CREATE TABLE activity (
    minute BIGINT NOT NULL,
    endpoint_id TEXT NOT NULL,
    events BIGINT NOT NULL DEFAULT 0,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    dead_lettered BIGINT NOT NULL DEFAULT 0,
    total_ms BIGINT NOT NULL DEFAULT 0,
    max_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, endpoint_id)
);

-- An endpoint's deliveries newest first (the console's lists).
CREATE INDEX deliveries_endpoint_recent ON deliveries(endpoint_id, id);
