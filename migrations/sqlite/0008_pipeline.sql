-- The event pipeline (ingest/steps.rs): an event's depth in a chain of events that receivers
-- sent while handling Herald deliveries (1 from an outside caller), and what its synchronous
-- steps did — parameters changed, shared variables, response properties — as JSON, NULL when
-- no step changed or set anything.
ALTER TABLE events ADD COLUMN depth INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN pipeline TEXT;
