"""When each stage of a run finished, read from the gateway's own records (for the benchmarks).

Read-only, on the SQLite or PostgreSQL storage (their `query`); nothing here is used by the
gateway's services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from gateway.adapters.persistence.sql import as_opt_time
from gateway.domain.states import TxState
from gateway.service.channels import LEDGER_EXCHANGE


class Queryable(Protocol):
    """A storage that answers a read-only statement (SQLite and PostgreSQL do)."""

    def query(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]: ...


def stage_ends(storage: Queryable) -> dict[str, datetime | None]:
    """The moment the last order, file, report and posting passed each stage."""

    def last(sql: str, args: tuple[Any, ...] = ()) -> datetime | None:
        rows = storage.query(sql, args)
        return as_opt_time(rows[0][0]) if rows else None

    return {
        "intake": last("SELECT MAX(received_at) FROM orders"),
        "built": last("SELECT MAX(created_at) FROM files"),
        "sent": last("SELECT MAX(sent_at) FROM files"),
        "final": last(
            "SELECT MAX(updated_at) FROM orders WHERE state IN (?, ?)",
            (TxState.SETTLED.value, TxState.REJECTED.value),
        ),
        "postings": last("SELECT MAX(sent_at) FROM outbox WHERE exchange = ?", (LEDGER_EXCHANGE,)),
    }


def file_count(storage: Queryable) -> int:
    """Outbound files built."""
    rows = storage.query("SELECT COUNT(*) FROM files")
    return int(rows[0][0]) if rows else 0


def trace(storage: Queryable, order_id_prefix: str) -> dict[str, tuple[str, list[datetime | None]]]:
    """order_id -> (msg_id, [stored, file built, file confirmed]) of the batched orders whose id
    starts with the prefix."""
    rows = storage.query(
        "SELECT o.order_id, o.msg_id, o.received_at, f.created_at, f.sent_at FROM orders o"
        " JOIN files f ON f.msg_id = o.msg_id WHERE o.order_id LIKE ?",
        (order_id_prefix + "%",),
    )
    return {
        str(order_id): (str(msg_id), [as_opt_time(t) for t in times])
        for order_id, msg_id, *times in rows
    }
