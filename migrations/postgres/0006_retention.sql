-- Retention: what pruning has removed so far, so a lookup or a replay of something already
-- removed can say so instead of finding nothing. One row. The horizons are the newest
-- creation time (unix ms) of any row pruning removed: deliveries of any status, dead letters
-- (dead-lettered or cancelled deliveries, which replay reads), and events. The last pass is
-- what the most recent pruning pass (of any instance) removed, for `herald store stats`.
CREATE TABLE retention (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    deliveries_through BIGINT NOT NULL DEFAULT 0,
    dead_letters_through BIGINT NOT NULL DEFAULT 0,
    events_through BIGINT NOT NULL DEFAULT 0,
    last_pass TEXT
);
INSERT INTO retention (id) VALUES (1);
-- Finished deliveries are found for pruning through deliveries_due (status, next_attempt_at):
-- a finished delivery's next_attempt_at is its finishing time. Cancellations before this
-- migration left it at the last due time, which is earlier; pruning also checks finished_at.
