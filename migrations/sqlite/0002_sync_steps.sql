-- Synchronous steps: a subscription runs asynchronously (a delivery) or synchronously, in the
-- request path, at a stage before the event is stored.
ALTER TABLE subscriptions ADD COLUMN mode TEXT NOT NULL DEFAULT 'async';
ALTER TABLE subscriptions ADD COLUMN stage TEXT;
