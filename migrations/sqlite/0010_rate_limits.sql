-- Per-endpoint rate limits (deliveries per second, optional burst), honoured by every instance
-- together: each send reserves its time in endpoint_rates (the generic cell rate algorithm,
-- times in microseconds). A 429 with Retry-After pauses the endpoint until then and halves
-- its rate for a while (halvings, until slowed_until).
ALTER TABLE endpoints ADD COLUMN rate_per_second REAL;
ALTER TABLE endpoints ADD COLUMN rate_burst INTEGER;
CREATE TABLE endpoint_rates (
    endpoint_id TEXT PRIMARY KEY,
    -- the theoretical arrival time of the next send (unix microseconds)
    tat INTEGER NOT NULL,
    halvings INTEGER NOT NULL,
    slowed_until INTEGER NOT NULL,
    -- the end of the pause the last 429 asked for
    paused_until INTEGER NOT NULL
);
