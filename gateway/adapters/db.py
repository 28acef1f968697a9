"""SQLite storage (WAL): the gateway's orders, files, inbound records and outbox."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from gateway.errors import InvalidMessage, TransientError
from gateway.service.records import OutboxMessage, PendingMessage, ReadyGroup, StoredOrder

AddResult = Literal["new", "duplicate", "conflict"]

_ORDER_COLUMNS = (
    "order_id, payload, partner, group_key, category, amount, currency, state, msg_id, "
    "pmt_inf_id, status_code, reason_code, reason_text, bank_ref, value_date, received_at, "
    "updated_at"
)


def _schema_sql() -> str:
    return resources.files("gateway.adapters").joinpath("sqlite_schema.sql").read_text()


class Tx:
    """One open write transaction; every method runs inside it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, args).fetchone()

    # --- intake -------------------------------------------------------------------------------

    def add_order(
        self,
        *,
        order_id: str,
        content_hash: str,
        payload: str,
        partner: str,
        group_key: str,
        category: str,
        amount: str,
        currency: str,
        now: str,
    ) -> AddResult:
        """Store a new order; same id and hash is a duplicate, same id and other hash a conflict."""
        row = self._one("SELECT content_hash FROM orders WHERE order_id = ?", (order_id,))
        if row is not None:
            return "duplicate" if row[0] == content_hash else "conflict"
        self._conn.execute(
            "INSERT INTO orders (order_id, content_hash, payload, partner, group_key, category,"
            " amount, currency, state, received_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?)",
            (
                order_id,
                content_hash,
                payload,
                partner,
                group_key,
                category,
                amount,
                currency,
                now,
                now,
            ),
        )
        return "new"

    def add_invalid(
        self, *, subject: str, order_id: str | None, raw: bytes, reason: str, now: str
    ) -> bool:
        """Quarantine a refused order; False when the same body was refused before."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO invalid_orders (subject, order_id, raw, reason, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (subject, order_id, raw, reason, now),
        )
        return cursor.rowcount == 1

    # --- batching -----------------------------------------------------------------------------

    def ready_groups(self, quiet_before: str, full_at: int) -> list[ReadyGroup]:
        """Groups of received orders that have gone quiet or are big enough for a file."""
        rows = self._conn.execute(
            "SELECT group_key, COUNT(*), MAX(received_at) FROM orders WHERE state = 'received'"
            " GROUP BY group_key"
        ).fetchall()
        return [
            ReadyGroup(key, count)
            for key, count, newest in rows
            if newest < quiet_before or count >= full_at
        ]

    def received_in_group(self, group_key: str, limit: int) -> list[StoredOrder]:
        """Received orders of one group, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE state = 'received' AND group_key = ?"  # noqa: S608 - fixed column list
            " ORDER BY received_at, order_id LIMIT ?",
            (group_key, limit),
        ).fetchall()
        return [StoredOrder(*row) for row in rows]

    def next_value(self, counter: str) -> int:
        """The next number of a named counter, never handed out twice."""
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1)"
            " ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (counter,),
        )
        return int(self._one("SELECT value FROM counters WHERE name = ?", (counter,))[0])

    def add_file(
        self,
        *,
        msg_id: str,
        partner: str,
        message_type: str,
        nb_of_txs: int,
        ctrl_sum: str,
        sha256: str,
        now: str,
    ) -> None:
        """Record an outbound file as built."""
        self._conn.execute(
            "INSERT INTO files (msg_id, partner, message_type, state, nb_of_txs, ctrl_sum,"
            " sha256, created_at) VALUES (?, ?, ?, 'built', ?, ?, ?, ?)",
            (msg_id, partner, message_type, nb_of_txs, ctrl_sum, sha256, now),
        )

    def mark_batched(self, assignments: Sequence[tuple[str, str]], msg_id: str, now: str) -> None:
        """Move orders (order_id, pmt_inf_id) from received to batched in file msg_id."""
        self._conn.executemany(
            "UPDATE orders SET state = 'batched', msg_id = ?, pmt_inf_id = ?, updated_at = ?"
            " WHERE order_id = ? AND state = 'received'",
            [(msg_id, pmt_inf_id, now, order_id) for order_id, pmt_inf_id in assignments],
        )

    # --- outbox -------------------------------------------------------------------------------

    def enqueue(self, message: OutboxMessage, now: str) -> bool:
        """Add a message to the outbox; False when the same message id is already there."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO outbox (message_id, exchange, routing_key, body, headers,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                message.message_id,
                message.exchange,
                message.routing_key,
                message.body,
                json.dumps(message.headers, sort_keys=True),
                now,
            ),
        )
        return cursor.rowcount == 1

    def mark_sent(self, row_ids: Sequence[int], now: str) -> None:
        """Mark outbox rows confirmed by the broker."""
        self._conn.executemany(
            "UPDATE outbox SET sent_at = ? WHERE id = ? AND sent_at IS NULL",
            [(now, row_id) for row_id in row_ids],
        )

    def park_outbox(self, row_id: int, reason: str, now: str) -> None:
        """Set aside an outbox message the broker cannot route, with the reason."""
        self._conn.execute(
            "UPDATE outbox SET parked_at = ?, parked_why = ? WHERE id = ?", (now, reason, row_id)
        )

    def file_sent(self, msg_id: str, now: str) -> None:
        """A file reached the partner's channel: the file and its orders are now sent."""
        self._conn.execute(
            # The bank may have answered before the confirm was recorded: keep its status then.
            "UPDATE files SET state = CASE state WHEN 'built' THEN 'sent' ELSE state END,"
            " sent_at = COALESCE(sent_at, ?), attempts = attempts + 1 WHERE msg_id = ?",
            (now, msg_id),
        )
        self._conn.execute(
            "UPDATE orders SET state = 'sent', updated_at = ?"
            " WHERE msg_id = ? AND state = 'batched'",
            (now, msg_id),
        )

    # --- inbound ------------------------------------------------------------------------------

    def first_sight(
        self, partner: str, msg_id: str, message_type: str, raw: bytes, now: str
    ) -> bool:
        """Keep an inbound file; False when this partner already sent this very file.

        The same MsgId with other content is refused: it would otherwise be dropped unread.
        """
        digest = hashlib.sha256(raw).hexdigest()
        row = self._one(
            "SELECT sha256 FROM inbound_files WHERE partner = ? AND msg_id = ?", (partner, msg_id)
        )
        if row is not None:
            if row[0] != digest:
                raise InvalidMessage(
                    f"{partner} reused MsgId {msg_id} for a different file; the first is kept"
                )
            return False
        self._conn.execute(
            "INSERT INTO inbound_files (partner, msg_id, message_type, received_at, sha256, raw)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (partner, msg_id, message_type, now, digest, raw),
        )
        return True

    def unmatched(
        self,
        *,
        partner: str,
        msg_id: str,
        reference: str | None,
        reason: str,
        detail: dict[str, Any],
        now: str,
    ) -> None:
        """Keep a line of a verified file that could not be applied, with the reason."""
        self._conn.execute(
            "INSERT INTO unmatched (partner, msg_id, reference, reason, detail, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (partner, msg_id, reference, reason, json.dumps(detail, default=str), now),
        )

    def file_partner(self, msg_id: str) -> str | None:
        """The partner an outbound file was built for, or None for a file we never built."""
        row = self._one("SELECT partner FROM files WHERE msg_id = ?", (msg_id,))
        return str(row[0]) if row else None

    def record_duplicate_answer(
        self,
        *,
        partner: str,
        msg_id: str,
        original_msg_id: str,
        reason_text: str | None,
        now: str,
    ) -> bool:
        """Keep a bank's duplicate-file answer (group RJCT, reason DUPL) to one of our files,
        which moves nothing; False when this answer (partner + MsgId) is kept already."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO duplicate_answers (partner, msg_id, original_msg_id,"
            " reason_text, received_at) VALUES (?, ?, ?, ?, ?)",
            (partner, msg_id, original_msg_id, reason_text, now),
        )
        return cursor.rowcount == 1

    def order_ids_of_group(self, msg_id: str, pmt_inf_id: str) -> list[str]:
        """Ids of the orders sent in one PmtInf of one file."""
        rows = self._conn.execute(
            "SELECT order_id FROM orders WHERE msg_id = ? AND pmt_inf_id = ?", (msg_id, pmt_inf_id)
        )
        return [row[0] for row in rows.fetchall()]

    def quarantine(self, partner: str, raw: bytes, reason: str, now: str) -> bool:
        """Keep a refused inbound file with its reason; False when this copy is already kept."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO quarantine (partner, sha256, raw, reason, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (partner, hashlib.sha256(raw).hexdigest(), raw, reason, now),
        )
        return cursor.rowcount == 1

    def get_order(self, order_id: str) -> StoredOrder | None:
        """One order, or None."""
        row = self._one(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?",  # noqa: S608 - fixed column list
            (order_id,),
        )
        return StoredOrder(*row) if row else None

    def move_order(
        self,
        order_id: str,
        state: str,
        now: str,
        *,
        status_code: str | None = None,
        reason_code: str | None = None,
        reason_text: str | None = None,
        bank_ref: str | None = None,
        value_date: str | None = None,
    ) -> None:
        """Set an order's new state and what the bank said; the caller checked the move."""
        self._conn.execute(
            "UPDATE orders SET state = ?, updated_at = ?,"
            " status_code = COALESCE(?, status_code), reason_code = COALESCE(?, reason_code),"
            " reason_text = COALESCE(?, reason_text), bank_ref = COALESCE(?, bank_ref),"
            " value_date = COALESCE(?, value_date) WHERE order_id = ?",
            (state, now, status_code, reason_code, reason_text, bank_ref, value_date, order_id),
        )

    def order_ids_of_file(self, msg_id: str) -> list[str]:
        """Ids of the orders sent in one file."""
        rows = self._conn.execute("SELECT order_id FROM orders WHERE msg_id = ?", (msg_id,))
        return [row[0] for row in rows.fetchall()]

    def file_status(self, msg_id: str, state: str, now: str) -> None:
        """Record the status a partner gave a whole file."""
        self._conn.execute(
            "UPDATE files SET state = ?, status_at = ? WHERE msg_id = ?"
            " AND state NOT IN ('rejected', 'partially_rejected')",
            (state, now, msg_id),
        )

    def entry_applied(self, partner: str, bank_ref: str) -> bool:
        """True when a camt.054 entry with this bank reference was applied before."""
        row = self._one(
            "SELECT 1 FROM camt_entries WHERE partner = ? AND bank_ref = ?", (partner, bank_ref)
        )
        return row is not None

    def add_entry(self, partner: str, bank_ref: str, msg_id: str, outcome: str, now: str) -> None:
        """Remember an applied camt.054 entry by its bank reference."""
        self._conn.execute(
            "INSERT OR IGNORE INTO camt_entries (partner, bank_ref, msg_id, outcome, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (partner, bank_ref, msg_id, outcome, now),
        )

    # --- deadlines and admin actions ------------------------------------------------------------

    def overdue_unflagged(self, partner: str, sent_before: str) -> list[tuple[str, str]]:
        """(msg_id, sent_at) of files still without a status report, sent before the limit and
        not flagged yet."""
        rows = self._conn.execute(
            "SELECT f.msg_id, f.sent_at FROM files f LEFT JOIN overdue_flags o USING (msg_id)"
            " WHERE f.partner = ? AND f.state = 'sent' AND f.status_at IS NULL AND f.sent_at < ?"
            " AND o.msg_id IS NULL"
            " ORDER BY f.sent_at",
            (partner, sent_before),
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def flag_overdue(self, msg_id: str, partner: str, now: str) -> None:
        """Remember that a file was flagged overdue, so that it is flagged once."""
        self._conn.execute(
            "INSERT OR IGNORE INTO overdue_flags (msg_id, partner, flagged_at) VALUES (?, ?, ?)",
            (msg_id, partner, now),
        )

    def status_reported(self, msg_id: str, now: str) -> None:
        """Note that a status report on a file arrived (the first one's time is kept), even one
        that gave no file-level status."""
        self._conn.execute(
            "UPDATE files SET status_at = COALESCE(status_at, ?) WHERE msg_id = ?", (now, msg_id)
        )

    def clear_overdue(self, msg_id: str, partner: str, now: str) -> str | None:
        """Clear a file's overdue flag once; returns when it was flagged, or None when it was
        not flagged or was cleared already."""
        row = self._conn.execute(
            "SELECT o.flagged_at FROM overdue_flags o LEFT JOIN overdue_cleared c USING (msg_id)"
            " WHERE o.msg_id = ? AND c.msg_id IS NULL",
            (msg_id,),
        ).fetchone()
        if row is None:
            return None
        self._conn.execute(
            "INSERT INTO overdue_cleared (msg_id, partner, cleared_at) VALUES (?, ?, ?)",
            (msg_id, partner, now),
        )
        return str(row[0])

    def record_dlq_action(
        self,
        *,
        action: str,
        queue: str,
        message_id: str | None,
        reason: str | None,
        parked_why: str | None,
        body: bytes | None,
        headers: dict[str, Any],
        actor: str,
        now: str,
    ) -> None:
        """Keep what an admin did with a parked message (a dropped one with its body)."""
        self._conn.execute(
            "INSERT INTO dlq_actions (action, queue, message_id, reason, parked_why, body,"
            " headers, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                action,
                queue,
                message_id,
                reason,
                parked_why,
                body,
                json.dumps(headers, default=str, sort_keys=True),
                actor,
                now,
            ),
        )

    def unpark_outbox(self, message_id: str) -> bool:
        """Put a parked outbox message back in line; False when no such parked message."""
        cursor = self._conn.execute(
            "UPDATE outbox SET parked_at = NULL, parked_why = NULL"
            " WHERE message_id = ? AND parked_at IS NOT NULL AND sent_at IS NULL",
            (message_id,),
        )
        return cursor.rowcount == 1

    def drop_outbox(self, message_id: str, now: str) -> bool:
        """Take a parked outbox message out of line for good (kept, marked dropped)."""
        cursor = self._conn.execute(
            "UPDATE outbox SET parked_why = 'dropped: ' || parked_why, sent_at = NULL,"
            " parked_at = ? WHERE message_id = ? AND parked_at IS NOT NULL AND sent_at IS NULL"
            " AND parked_why NOT LIKE 'dropped: %'",
            (now, message_id),
        )
        return cursor.rowcount == 1

    def add_revenue(
        self,
        *,
        bank_ref: str,
        partner: str,
        msg_id: str,
        amount: str,
        currency: str,
        value_date: str | None,
        payer: str | None,
        now: str,
    ) -> bool:
        """Record a revenue collection; False when this bank reference was seen before."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO revenue (bank_ref, partner, msg_id, amount, currency,"
            " value_date, payer, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (bank_ref, partner, msg_id, amount, currency, value_date, payer, now),
        )
        return cursor.rowcount == 1

    # --- returns and statements ---------------------------------------------------------------

    def add_return(
        self,
        *,
        partner: str,
        bank_ref: str,
        order_id: str,
        msg_id: str,
        amount: str,
        currency: str,
        value_date: str | None,
        reason_code: str | None,
        reason_text: str | None,
        now: str,
    ) -> None:
        """Record a payment that came back, by the return's bank reference."""
        self._conn.execute(
            "INSERT OR IGNORE INTO returns (partner, bank_ref, order_id, msg_id, amount, currency,"
            " value_date, reason_code, reason_text, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                partner,
                bank_ref,
                order_id,
                msg_id,
                amount,
                currency,
                value_date,
                reason_code,
                reason_text,
                now,
            ),
        )

    def add_statement(
        self,
        *,
        partner: str,
        statement_id: str,
        msg_id: str,
        account: str,
        stmt_date: str,
        currency: str | None,
        opening: str | None,
        closing: str | None,
        balances: list[dict[str, Any]],
        now: str,
    ) -> bool:
        """Keep a statement; False when this partner sent this statement id before."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO statements (partner, statement_id, msg_id, account, stmt_date,"
            " currency, opening, closing, balances, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                partner,
                statement_id,
                msg_id,
                account,
                stmt_date,
                currency,
                opening,
                closing,
                json.dumps(balances),
                now,
            ),
        )
        return cursor.rowcount == 1

    def add_statement_entry(
        self,
        *,
        partner: str,
        bank_ref: str,
        statement_id: str,
        credit_debit: str,
        status: str,
        amount: str,
        currency: str,
        value_date: str | None,
        end_to_end_id: str | None,
        return_reason: str | None,
    ) -> bool:
        """Keep one statement entry; False when its bank reference is kept already."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO statement_entries (partner, bank_ref, statement_id,"
            " credit_debit, status, amount, currency, value_date, end_to_end_id, return_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                partner,
                bank_ref,
                statement_id,
                credit_debit,
                status,
                amount,
                currency,
                value_date,
                end_to_end_id,
                return_reason,
            ),
        )
        return cursor.rowcount == 1


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is open; SQLite may have rolled back already (disk full)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class Database:
    """Opens one SQLite connection per thread and runs write transactions with retries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_schema_sql())

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: committed on success, rolled back on any error."""
        conn = self.connection()
        try:
            self._begin(conn)
        except sqlite3.OperationalError as exc:
            raise TransientError(f"database busy: {exc}") from exc
        try:
            yield Tx(conn)
        except sqlite3.OperationalError as exc:
            # Locked, disk full, I/O error: nothing was written; the work is retried later.
            _rollback(conn)
            raise TransientError(f"database fault: {exc}") from exc
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _rollback(conn)
            raise TransientError(f"database commit failed: {exc}") from exc

    @staticmethod
    @retry(
        retry=retry_if_exception_type(sqlite3.OperationalError),
        wait=wait_exponential(multiplier=0.05, max=2),
        stop=stop_after_attempt(8),
        reraise=True,
    )
    def _begin(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only query for status and reports."""
        return list(self.connection().execute(sql, args).fetchall())

    def pending_outbox(
        self, limit: int, *, file_partners: Sequence[str] = (), files_only: bool = False
    ) -> list[PendingMessage]:
        """Outbox messages not yet confirmed, oldest first.

        Files for `file_partners` (reached by file exchange, not by the broker) are left out, or,
        with `files_only`, are the only messages returned.
        """
        marks = ", ".join("?" * len(file_partners))
        to_files = f"(exchange = 'gateway.to-bank' AND routing_key IN ({marks}))"
        which = to_files if files_only else f"NOT {to_files}"
        rows = self.query(
            "SELECT id, message_id, exchange, routing_key, body, headers FROM outbox"  # noqa: S608 - placeholders only
            f" WHERE sent_at IS NULL AND parked_at IS NULL AND {which} ORDER BY id LIMIT ?",
            (*file_partners, limit),
        )
        return [
            PendingMessage(
                row_id, OutboxMessage(message_id, exchange, key, bytes(body), json.loads(headers))
            )
            for row_id, message_id, exchange, key, body, headers in rows
        ]

    def counts_by_state(self) -> dict[str, int]:
        """Orders per state."""
        return {
            state: n for state, n in self.query("SELECT state, COUNT(*) FROM orders GROUP BY 1")
        }

    def close(self) -> None:
        """Close this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
