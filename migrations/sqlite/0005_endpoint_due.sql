-- Due work is found endpoint by endpoint (the earliest due deliveries of each), so a backlog
-- of one endpoint costs the leases of the others nothing. The new index also serves what the
-- old one did (deliveries of an endpoint by status).
DROP INDEX deliveries_endpoint_status;
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, status, next_attempt_at);
