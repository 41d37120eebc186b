-- Endpoint health, shared by every instance (dispatch/health.rs decides the transitions): a
-- row exists once an endpoint failed or was disabled; no row is healthy. Deliveries held
-- while an endpoint is disabled have the status 'held'.
CREATE TABLE endpoint_health (
    endpoint_id TEXT PRIMARY KEY,
    -- healthy | failing | disabled
    state TEXT NOT NULL,
    consecutive_failures BIGINT NOT NULL,
    failing_since BIGINT,
    window_start BIGINT,
    window_attempts BIGINT NOT NULL,
    window_failures BIGINT NOT NULL,
    probes BIGINT NOT NULL,
    probe_at BIGINT,
    probe_until BIGINT,
    notified_percent BIGINT NOT NULL,
    last_error TEXT,
    disabled_reason TEXT,
    changed_at BIGINT NOT NULL
);
