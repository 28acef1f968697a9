-- A refused file's bytes are kept in the quarantine folder (var/quarantine, by SHA-256), not in
-- the database: the row keeps the hash and the size. Rows kept before keep their bytes in `raw`,
-- which is now optional (SQLite changes a column's NOT NULL only by rebuilding the table).
CREATE TABLE quarantine_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    partner       TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    raw           BLOB,
    reason        TEXT NOT NULL,
    reason_class  TEXT NOT NULL DEFAULT 'content',
    received_at   TEXT NOT NULL,
    UNIQUE (partner, sha256)
);
INSERT INTO quarantine_new (id, partner, sha256, size, raw, reason, reason_class, received_at)
    SELECT id, partner, sha256, length(raw), raw, reason, reason_class, received_at
    FROM quarantine;
DROP TABLE quarantine;
ALTER TABLE quarantine_new RENAME TO quarantine;
