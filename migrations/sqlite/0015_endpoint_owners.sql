-- The solutions of the API key that made an endpoint (comma-separated; empty when it was
-- made by configuration or by a key of every solution). With the solutions of the
-- subscriptions that deliver to it, they say which keys see the endpoint and which may
-- change it.
ALTER TABLE endpoints ADD COLUMN owners TEXT NOT NULL DEFAULT '';
