-- The operations console's users (`gateway users add|disable|list`): Argon2id password hashes,
-- never passwords.
CREATE TABLE IF NOT EXISTS console_users (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- The audit trail of admin actions (console and command line), append-only: each row carries
-- the SHA-256 of the row before it (gateway/domain/audit.py defines the encoding).
CREATE TABLE IF NOT EXISTS audit_trail (
    seq          BIGINT PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL,
    actor        TEXT NOT NULL,
    via          TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    row_hash     TEXT NOT NULL
);

-- The chain's head: the last seq and hash appended, in one row locked by every append (so
-- appends from several instances take turns and never fork the chain).
CREATE TABLE IF NOT EXISTS audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        BIGINT NOT NULL,
    row_hash   TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, row_hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT (id) DO NOTHING;
