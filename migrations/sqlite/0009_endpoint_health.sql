-- Endpoint health, shared by every instance (dispatch/health.rs decides the transitions): a
-- row exists once an endpoint failed or was disabled; no row is healthy. Deliveries held
-- while an endpoint is disabled have the status 'held'.
CREATE TABLE endpoint_health (
    endpoint_id TEXT PRIMARY KEY,
    -- healthy | failing | disabled
    state TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    failing_since INTEGER,
    window_start INTEGER,
    window_attempts INTEGER NOT NULL,
    window_failures INTEGER NOT NULL,
    probes INTEGER NOT NULL,
    probe_at INTEGER,
    probe_until INTEGER,
    notified_percent INTEGER NOT NULL,
    last_error TEXT,
    disabled_reason TEXT,
    changed_at INTEGER NOT NULL
);
