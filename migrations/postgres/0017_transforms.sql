-- A subscription's transformation: the plug-in (name, pinned version, configuration) run on
-- each delivery before it is sent, as JSON; NULL when there is none.
ALTER TABLE subscriptions ADD COLUMN transform TEXT;
