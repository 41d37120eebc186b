-- Lean deliveries: a delivery handed off at ingestion is not a row of its own. Its event
-- keeps it in `routes` (" n:subscription:endpoint …", n its number within the event, which
-- makes its id), with the hand-off it belongs to (`handoff`) and its place in that hand-off's
-- order (`handoff_seq`). A hand-off is one run of one instance's dispatcher: every delivery
-- of an event whose `handoff_seq` is at most the hand-off's `through` is settled (succeeded,
-- or written as a row of its own when it did not succeed at once, and taken out of `routes`).
-- A hand-off whose lease ends (its instance died or was cut off) is closed by another
-- instance, which writes its unsettled deliveries as pending rows.
CREATE TABLE handoffs (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    through INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
ALTER TABLE events ADD COLUMN handoff INTEGER;
ALTER TABLE events ADD COLUMN handoff_seq INTEGER;
ALTER TABLE events ADD COLUMN routes TEXT;
CREATE INDEX events_handoff ON events(handoff, handoff_seq) WHERE handoff IS NOT NULL;
