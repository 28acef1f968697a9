"""A stand-in for the treasury ledger: records every posting once, counts duplicates."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from gateway.contracts import check_posting
from gateway.errors import InvalidMessage

log = structlog.get_logger("gateway.ledger_sink")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    posting_id  TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    order_id    TEXT,
    amount      TEXT,
    currency    TEXT,
    reason_code TEXT,
    body        TEXT NOT NULL,
    duplicates  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS refused (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    body   BLOB NOT NULL,
    reason TEXT NOT NULL
);
"""


class LedgerSink:
    """Consumes `treasury.ledger` postings as a ledger would: deduplicated by posting_id."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(_SCHEMA)

    def handle(self, messages: Sequence[Any]) -> None:
        """Record a chunk of postings in one transaction (acked by the caller afterwards)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for message in messages:
                    self._record(message.body)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _record(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            check_posting(body)
        except (ValueError, InvalidMessage) as exc:
            self._conn.execute("INSERT INTO refused (body, reason) VALUES (?, ?)", (raw, str(exc)))
            log.error("ledger.posting_refused", reason=str(exc))
            return
        reason = body.get("reason") or {}
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO postings (posting_id, kind, order_id, amount, currency,"
            " reason_code, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                body["posting_id"],
                body["kind"],
                body.get("order_id"),
                body.get("amount"),
                body.get("currency"),
                reason.get("code"),
                json.dumps(body, ensure_ascii=False),
            ),
        )
        if cursor.rowcount == 0:
            self._conn.execute(
                "UPDATE postings SET duplicates = duplicates + 1 WHERE posting_id = ?",
                (body["posting_id"],),
            )

    def count(self) -> int:
        """Distinct postings received."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0])

    def by_kind(self) -> dict[str, tuple[int, Decimal]]:
        """Per kind: number of postings and the sum of their amounts."""
        with self._lock:
            rows = self._conn.execute("SELECT kind, amount FROM postings").fetchall()
        out: dict[str, tuple[int, Decimal]] = {}
        for kind, amount in rows:
            count, subtotal = out.get(kind, (0, Decimal(0)))
            out[kind] = (count + 1, subtotal + (Decimal(amount) if amount else Decimal(0)))
        return out

    def duplicates(self) -> int:
        """Postings delivered more than once (harmless to a ledger that deduplicates)."""
        with self._lock:
            return int(
                self._conn.execute("SELECT COALESCE(SUM(duplicates), 0) FROM postings").fetchone()[
                    0
                ]
            )

    def refused(self) -> int:
        """Messages that were not valid ledger-posting/1."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM refused").fetchone()[0])

    def postings(self) -> list[dict[str, Any]]:
        """Every posting as received."""
        with self._lock:
            rows = self._conn.execute("SELECT body FROM postings ORDER BY posting_id").fetchall()
        return [json.loads(row[0]) for row in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
