-- A row change's images (the row before and after, the attributes it changed) as JSON;
-- NULL for an event that is not a row change.
ALTER TABLE events ADD COLUMN images TEXT;
-- A subscription's filtering attributes and images on a table's event, as JSON; NULL when
-- there are none.
ALTER TABLE subscriptions ADD COLUMN row_options TEXT;
