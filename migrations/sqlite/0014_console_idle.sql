-- Console sessions also end after a while unused: `idle_until` moves on as the session is
-- used (at most once a minute), and a session is open only while both it and `expires_at`
-- are ahead. Sessions opened before keep their whole lifetime.
ALTER TABLE console_sessions ADD COLUMN idle_until INTEGER NOT NULL DEFAULT 0;
UPDATE console_sessions SET idle_until = expires_at;
