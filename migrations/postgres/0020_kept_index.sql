-- events_handoff holds only the events that keep deliveries in their row: an event leaves it
-- when its routes are cleared (taken over, written as rows, or pruned), so "is any delivery
-- kept at all" and the scans for kept deliveries read only those.
DROP INDEX events_handoff;
CREATE INDEX events_handoff ON events(handoff, handoff_seq) WHERE routes IS NOT NULL;
