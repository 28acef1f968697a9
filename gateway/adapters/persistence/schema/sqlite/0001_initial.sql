-- The gateway's own state. One row per order, file, inbound file and outbox message.
CREATE TABLE IF NOT EXISTS orders (
    order_id      TEXT PRIMARY KEY,
    content_hash  TEXT NOT NULL,
    payload       TEXT NOT NULL,
    partner       TEXT NOT NULL,
    group_key     TEXT NOT NULL,
    category      TEXT NOT NULL,
    amount        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    state         TEXT NOT NULL,
    msg_id        TEXT,
    pmt_inf_id    TEXT,
    status_code   TEXT,
    reason_code   TEXT,
    reason_text   TEXT,
    bank_ref      TEXT,
    value_date    TEXT,
    received_at   TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_state_group ON orders (state, group_key);
CREATE INDEX IF NOT EXISTS orders_by_msg ON orders (msg_id);

CREATE TABLE IF NOT EXISTS invalid_orders (
    subject      TEXT PRIMARY KEY,
    order_id     TEXT,
    raw          BLOB NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS files (
    msg_id        TEXT PRIMARY KEY,
    partner       TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    state         TEXT NOT NULL,
    nb_of_txs     INTEGER NOT NULL,
    ctrl_sum      TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    sent_at       TEXT,
    status_at     TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0
);

-- Every verified file a partner sent, kept as received.
CREATE TABLE IF NOT EXISTS inbound_files (
    partner       TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    raw           BLOB NOT NULL,
    PRIMARY KEY (partner, msg_id)
);
-- The file scanner asks whether these exact bytes were taken in already.
CREATE INDEX IF NOT EXISTS inbound_files_by_sha ON inbound_files (partner, sha256);

-- Lines of verified files that the gateway could not apply, with the reason, for an admin.
CREATE TABLE IF NOT EXISTS unmatched (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    partner       TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    reference     TEXT,
    reason        TEXT NOT NULL,
    detail        TEXT NOT NULL,
    received_at   TEXT NOT NULL
);

-- Inbound files refused whole, with the reason; a redelivered copy is kept once.
CREATE TABLE IF NOT EXISTS quarantine (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    partner      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    raw          BLOB NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (partner, sha256)
);

CREATE TABLE IF NOT EXISTS revenue (
    bank_ref     TEXT NOT NULL,
    partner      TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    amount       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    value_date   TEXT,
    payer        TEXT,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (partner, bank_ref)
);

CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL UNIQUE,
    exchange    TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body        BLOB NOT NULL,
    headers     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    parked_at   TEXT,
    parked_why  TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (sent_at, parked_at, id);

CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);

-- camt.054 entries applied, by the bank's reference: a resent entry, in whichever file, is
-- applied once.
CREATE TABLE IF NOT EXISTS camt_entries (
    partner      TEXT NOT NULL,
    bank_ref     TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (partner, bank_ref)
);

-- Files flagged to admins for having no status report within the partner's deadline.
CREATE TABLE IF NOT EXISTS overdue_flags (
    msg_id      TEXT PRIMARY KEY,
    partner     TEXT NOT NULL,
    flagged_at  TEXT NOT NULL
);

-- Flagged files whose late status report has arrived since: the flag is cleared once.
CREATE TABLE IF NOT EXISTS overdue_cleared (
    msg_id      TEXT PRIMARY KEY,
    partner     TEXT NOT NULL,
    cleared_at  TEXT NOT NULL
);

-- What admins did with parked messages (`gateway dlq replay|drop`): a dropped message is kept
-- here with the reason given.
CREATE TABLE IF NOT EXISTS dlq_actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action      TEXT NOT NULL,
    queue       TEXT NOT NULL,
    message_id  TEXT,
    reason      TEXT,
    parked_why  TEXT,
    body        BLOB,
    headers     TEXT,
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL
);

-- Settled payments that came back (pacs.004 or a camt.054 credit with return information), by
-- the return's bank reference. The order keeps its settlement's bank_ref and value_date.
CREATE TABLE IF NOT EXISTS returns (
    partner      TEXT NOT NULL,
    bank_ref     TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    amount       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    value_date   TEXT,
    reason_code  TEXT,
    reason_text  TEXT,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (partner, bank_ref)
);

-- camt.053 end-of-day statements: evidence for `gateway reconcile`; they move no order.
CREATE TABLE IF NOT EXISTS statements (
    partner       TEXT NOT NULL,
    statement_id  TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    account       TEXT NOT NULL,
    stmt_date     TEXT NOT NULL,
    currency      TEXT,
    opening       TEXT,
    closing       TEXT,
    balances      TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (partner, statement_id)
);
CREATE INDEX IF NOT EXISTS statements_by_date ON statements (stmt_date, partner);

-- A statement's entries, by the bank's reference (a reference repeated in a later statement is
-- kept with the first).
CREATE TABLE IF NOT EXISTS statement_entries (
    partner        TEXT NOT NULL,
    bank_ref       TEXT NOT NULL,
    statement_id   TEXT NOT NULL,
    credit_debit   TEXT NOT NULL,
    status         TEXT NOT NULL,
    amount         TEXT NOT NULL,
    currency       TEXT NOT NULL,
    value_date     TEXT,
    end_to_end_id  TEXT,
    return_reason  TEXT,
    PRIMARY KEY (partner, bank_ref)
);
