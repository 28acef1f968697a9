"""What an admin asks first: where orders and files stand, and what is waiting for a person."""

from __future__ import annotations

from typing import Any

from gateway.adapters.db import Database


def _count(db: Database, sql: str) -> int:
    return int(db.query(sql)[0][0])


def overview(db: Database) -> dict[str, Any]:
    """Orders by state (invalid included), files by state, and the queues needing attention."""
    orders = db.counts_by_state()
    invalid = _count(db, "SELECT COUNT(*) FROM invalid_orders")
    if invalid:
        orders["invalid"] = invalid
    files = {s: n for s, n in db.query("SELECT state, COUNT(*) FROM files GROUP BY 1")}
    return {
        "orders": dict(sorted(orders.items())),
        "files": dict(sorted(files.items())),
        "outbox_pending": _count(
            db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL"
        ),
        "outbox_parked": _count(db, "SELECT COUNT(*) FROM outbox WHERE parked_at IS NOT NULL"),
        "quarantined_inbound": _count(db, "SELECT COUNT(*) FROM quarantine"),
        "unmatched_lines": _count(db, "SELECT COUNT(*) FROM unmatched"),
    }
