-- Whether the store's endpoint settings are sealed (store/sealing.rs). Settings in the clear
-- are sealed on open only while this row is missing: in a database from before sealing. Once
-- it is set (at once for a new or already sealed database, else after the first sealing),
-- settings in the clear are refused as not written by Herald.
CREATE TABLE sealing (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed_at INTEGER NOT NULL
);
INSERT INTO sealing (id, sealed_at)
SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM endpoints WHERE settings LIKE '{%');
