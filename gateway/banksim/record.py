"""What the simulated bank received and paid, kept in its own SQLite file for checkers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    msg_id       TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    times_seen   INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS payments (
    msg_id        TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    amount        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    creditor      TEXT NOT NULL,
    decision      TEXT NOT NULL,
    reason_code   TEXT,
    PRIMARY KEY (msg_id, end_to_end_id)
);
-- Every booked entry on the treasury's account, for returns and end-of-day statements.
CREATE TABLE IF NOT EXISTS book_entries (
    bank_ref      TEXT PRIMARY KEY,
    day           TEXT NOT NULL,
    credit_debit  TEXT NOT NULL,
    amount        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    end_to_end_id TEXT,
    msg_id        TEXT,
    counterparty  TEXT,
    return_reason TEXT
);
CREATE TABLE IF NOT EXISTS replies (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    original      TEXT NOT NULL,
    msg_id        TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    body          BLOB NOT NULL
);
"""


_PAGE_SIZE = 65536  # SQLite's largest

# bank_ref, day, CRDT|DBIT, amount, currency, end_to_end_id, msg_id, counterparty, return reason
BookedEntry = tuple[str, str, str, str, str, str | None, str | None, str | None, str | None]


class BankRecord:
    """The bank's book of received files, decided payments and the replies it sent."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Large pages for a new file: each reply (a camt.054 of 100,000 entries is 75 MB) is
        # kept whole, and at the default 4 KiB a page a blob costs a hundred times more page
        # writes (twice the CPU). An existing file keeps its page size.
        self._conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction (one sync to disk), not one per statement."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def seen(self, msg_id: str, sha256: str) -> str | None:
        """None for a new MsgId; "same" for a resend of the same file (counted again);
        "different" for a MsgId reused for other content."""
        with self._lock:
            row = self._conn.execute(
                "SELECT sha256 FROM files WHERE msg_id = ?", (msg_id,)
            ).fetchone()
            if row is None:
                return None
            if row[0] != sha256:
                return "different"
            self._conn.execute(
                "UPDATE files SET times_seen = times_seen + 1 WHERE msg_id = ?", (msg_id,)
            )
            return "same"

    def record(
        self,
        msg_id: str,
        sha256: str,
        received_at: str,
        payments: list[tuple[str, str, str, str, str, str | None]],
        replies: list[tuple[str, str, bytes]],
        booked: list[BookedEntry] | None = None,
    ) -> None:
        """Record a new file, its decisions, the entries it booked and its replies in one
        transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if booked:
                    self._book(booked)
                self._conn.execute(
                    "INSERT INTO files (msg_id, sha256, received_at) VALUES (?, ?, ?)",
                    (msg_id, sha256, received_at),
                )
                self._conn.executemany(
                    "INSERT INTO payments (msg_id, end_to_end_id, amount, currency, creditor,"
                    " decision, reason_code) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(msg_id, *payment) for payment in payments],
                )
                self._conn.executemany(
                    "INSERT OR IGNORE INTO replies (original, msg_id, kind, body)"
                    " VALUES (?, ?, ?, ?)",
                    [(msg_id, reply_id, kind, body) for reply_id, kind, body in replies],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def add_reply(self, original: str, msg_id: str, kind: str, body: bytes) -> None:
        """Keep a reply not tied to a received file (revenue notifications)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO replies (original, msg_id, kind, body) VALUES (?, ?, ?, ?)",
                (original, msg_id, kind, body),
            )

    def replies_to(self, msg_id: str) -> list[tuple[str, str, bytes]]:
        """The replies sent for one received file, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT msg_id, kind, body FROM replies WHERE original = ? ORDER BY seq", (msg_id,)
            ).fetchall()
        return [(row[0], row[1], bytes(row[2])) for row in rows]

    def paid_twice(self) -> list[str]:
        """EndToEndIds settled more than once across files: must always be empty."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT end_to_end_id FROM payments WHERE decision = 'settled'"
                " GROUP BY end_to_end_id HAVING COUNT(*) > 1"
            ).fetchall()
        return [row[0] for row in rows]

    def totals(self) -> dict[str, tuple[int, str]]:
        """Per decision: number of payments and their VND sum."""
        with self._lock:
            rows = self._conn.execute("SELECT decision, amount FROM payments").fetchall()
        sums: dict[str, tuple[int, Decimal]] = {}
        for decision, amount in rows:
            count, subtotal = sums.get(decision, (0, Decimal(0)))
            sums[decision] = (count + 1, subtotal + Decimal(amount))
        return {
            decision: (count, format(subtotal, "f")) for decision, (count, subtotal) in sums.items()
        }

    def book(self, rows: list[BookedEntry]) -> None:
        """Keep booked entries of the account (a reference booked before is kept once)."""
        with self._lock, self._transaction():
            self._book(rows)

    def _book(self, rows: list[BookedEntry]) -> None:
        self._conn.executemany(
            "INSERT OR IGNORE INTO book_entries (bank_ref, day, credit_debit, amount, currency,"
            " end_to_end_id, msg_id, counterparty, return_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def booked(
        self, *, day: str | None = None, end_to_end_id: str | None = None
    ) -> list[BookedEntry]:
        """Booked entries of one day, or of one payment, in booking order."""
        column, value = ("day", day) if day is not None else ("end_to_end_id", end_to_end_id)
        with self._lock:
            rows = self._conn.execute(
                "SELECT bank_ref, day, credit_debit, amount, currency, end_to_end_id, msg_id,"  # noqa: S608 - fixed column
                f" counterparty, return_reason FROM book_entries WHERE {column} = ? ORDER BY rowid",
                (value,),
            ).fetchall()
        return [tuple(row) for row in rows]

    def booked_days(self) -> list[str]:
        """The days on which anything was booked, in order."""
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT day FROM book_entries ORDER BY day")
            return [row[0] for row in rows.fetchall()]

    def net_before(self, day: str) -> Decimal:
        """Credits minus debits booked before `day`."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT credit_debit, amount FROM book_entries WHERE day < ?", (day,)
            ).fetchall()
        return sum((Decimal(a) if cd == "CRDT" else -Decimal(a) for cd, a in rows), Decimal(0))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
