-- One row that readiness checks write through the group-commit writer after a failed commit,
-- with as many bytes as the failed commit tried to write, to learn whether durable writes
-- succeed again (say, once a full disk has room). The filler is cleared right after.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    written_at INTEGER NOT NULL,
    filler BLOB
);
