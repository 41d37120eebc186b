-- One row that readiness checks write to learn whether durable writes succeed.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    written_at BIGINT NOT NULL
);
