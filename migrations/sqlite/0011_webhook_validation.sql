-- The CloudEvents webhook abuse-protection handshake (dispatch/validation.rs): one row per
-- endpoint that requires it, for the URL the handshake was made with. A new URL needs a new
-- handshake. state: requested (an OPTIONS is out, or the receiver will call back) | granted |
-- refused. token: the secret part of the callback URL, while a callback may come.
CREATE TABLE endpoint_grants (
    endpoint_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    state TEXT NOT NULL,
    allowed_per_minute INTEGER,
    token TEXT UNIQUE,
    -- until when the handshake in progress is one instance's (then another may try)
    busy_until INTEGER,
    -- a requested callback is valid until then
    callback_until INTEGER,
    -- when to ask again after a refusal
    next_try_at INTEGER,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    changed_at INTEGER NOT NULL
);
