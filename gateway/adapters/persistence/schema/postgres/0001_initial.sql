-- The gateway's own state. One row per order, file, inbound file and outbox message.
-- The same tables as SQLite's, in PostgreSQL's own types: amounts NUMERIC, times TIMESTAMPTZ,
-- dates DATE, bodies BYTEA.
CREATE TABLE IF NOT EXISTS orders (
    order_id      TEXT PRIMARY KEY,
    content_hash  TEXT NOT NULL,
    payload       TEXT NOT NULL,
    partner       TEXT NOT NULL,
    group_key     TEXT NOT NULL,
    category      TEXT NOT NULL,
    amount        NUMERIC NOT NULL,
    currency      TEXT NOT NULL,
    state         TEXT NOT NULL,
    msg_id        TEXT,
    pmt_inf_id    TEXT,
    status_code   TEXT,
    reason_code   TEXT,
    reason_text   TEXT,
    bank_ref      TEXT,
    value_date    DATE,
    received_at   TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_state_group ON orders (state, group_key);
CREATE INDEX IF NOT EXISTS orders_by_msg ON orders (msg_id);

CREATE TABLE IF NOT EXISTS invalid_orders (
    subject      TEXT PRIMARY KEY,
    order_id     TEXT,
    raw          BYTEA NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS files (
    msg_id        TEXT PRIMARY KEY,
    partner       TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    state         TEXT NOT NULL,
    nb_of_txs     INTEGER NOT NULL,
    ctrl_sum      NUMERIC NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    sent_at       TIMESTAMPTZ,
    status_at     TIMESTAMPTZ,
    attempts      INTEGER NOT NULL DEFAULT 0
);

-- Every verified file a partner sent, kept as received.
CREATE TABLE IF NOT EXISTS inbound_files (
    partner       TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL,
    sha256        TEXT NOT NULL,
    raw           BYTEA NOT NULL,
    PRIMARY KEY (partner, msg_id)
);
CREATE INDEX IF NOT EXISTS inbound_files_by_sha ON inbound_files (partner, sha256);

-- Lines of verified files that the gateway could not apply, with the reason, for an admin.
CREATE TABLE IF NOT EXISTS unmatched (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner       TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    reference     TEXT,
    reason        TEXT NOT NULL,
    detail        TEXT NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL
);

-- Inbound files refused whole, with the reason (a redelivered copy is kept once).
CREATE TABLE IF NOT EXISTS quarantine (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    raw          BYTEA NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (partner, sha256)
);

CREATE TABLE IF NOT EXISTS revenue (
    bank_ref     TEXT NOT NULL,
    partner      TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    amount       NUMERIC NOT NULL,
    currency     TEXT NOT NULL,
    value_date   DATE,
    payer        TEXT,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner, bank_ref)
);

CREATE TABLE IF NOT EXISTS outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  TEXT NOT NULL UNIQUE,
    exchange    TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body        BYTEA NOT NULL,
    headers     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ,
    parked_at   TIMESTAMPTZ,
    parked_why  TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE sent_at IS NULL AND parked_at IS NULL;

CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);

-- camt.054 entries applied, by the bank's reference: a resent entry, in whichever file, is
-- applied once.
CREATE TABLE IF NOT EXISTS camt_entries (
    partner      TEXT NOT NULL,
    bank_ref     TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner, bank_ref)
);

-- Files flagged to admins for having no status report within the partner's deadline.
CREATE TABLE IF NOT EXISTS overdue_flags (
    msg_id      TEXT PRIMARY KEY,
    partner     TEXT NOT NULL,
    flagged_at  TIMESTAMPTZ NOT NULL
);

-- Flagged files whose late status report has arrived since: the flag is cleared once.
CREATE TABLE IF NOT EXISTS overdue_cleared (
    msg_id      TEXT PRIMARY KEY,
    partner     TEXT NOT NULL,
    cleared_at  TIMESTAMPTZ NOT NULL
);

-- What admins did with parked messages (`gateway dlq replay|drop`).
CREATE TABLE IF NOT EXISTS dlq_actions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action      TEXT NOT NULL,
    queue       TEXT NOT NULL,
    message_id  TEXT,
    reason      TEXT,
    parked_why  TEXT,
    body        BYTEA,
    headers     TEXT,
    actor       TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);

-- Settled payments that came back, by the return's bank reference.
CREATE TABLE IF NOT EXISTS returns (
    partner      TEXT NOT NULL,
    bank_ref     TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    amount       NUMERIC NOT NULL,
    currency     TEXT NOT NULL,
    value_date   DATE,
    reason_code  TEXT,
    reason_text  TEXT,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner, bank_ref)
);

-- camt.053 end-of-day statements: evidence for `gateway reconcile` (they move no order).
CREATE TABLE IF NOT EXISTS statements (
    partner       TEXT NOT NULL,
    statement_id  TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    account       TEXT NOT NULL,
    stmt_date     DATE NOT NULL,
    currency      TEXT,
    opening       NUMERIC,
    closing       NUMERIC,
    balances      TEXT NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner, statement_id)
);
CREATE INDEX IF NOT EXISTS statements_by_date ON statements (stmt_date, partner);

CREATE TABLE IF NOT EXISTS statement_entries (
    partner        TEXT NOT NULL,
    bank_ref       TEXT NOT NULL,
    statement_id   TEXT NOT NULL,
    credit_debit   TEXT NOT NULL,
    status         TEXT NOT NULL,
    amount         NUMERIC NOT NULL,
    currency       TEXT NOT NULL,
    value_date     DATE,
    end_to_end_id  TEXT,
    return_reason  TEXT,
    PRIMARY KEY (partner, bank_ref)
);
