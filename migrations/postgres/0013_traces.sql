-- The W3C trace context of the request that sent an event: its deliveries' attempts continue
-- the trace, and receivers get it as `traceparent` (and `Diagnostic-Id` on AMQP).
ALTER TABLE events ADD COLUMN traceparent TEXT;
