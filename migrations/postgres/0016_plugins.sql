-- Plug-ins: components of the WIT world herald:plugin@1.0.0, kept in the store so every
-- instance runs the same bytes. Each push of different bytes is the next version of a name.
CREATE TABLE plugins (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    solution TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    exports TEXT NOT NULL DEFAULT '[]',
    bytes BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
