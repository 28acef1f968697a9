"""What an admin asks first: where orders and files stand, and what is waiting for a person."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from gateway.adapters.db import Database
from gateway.adapters.filedrop import Folder
from gateway.config import PartnerProfile, Settings
from gateway.errors import GatewayError
from gateway.service.clock import stamp, utcnow
from gateway.service.file_scanner import inbound_backlog


def _count(db: Database, sql: str) -> int:
    return int(db.query(sql)[0][0])


def overdue_files(db: Database, settings: Settings, now: datetime) -> list[str]:
    """Files sent without any status report within their partner's deadline (a file leaves the
    list when its late report arrives)."""
    overdue: list[str] = []
    for partner in settings.partners.values():
        limit = stamp(now - timedelta(minutes=partner.status_deadline_minutes))
        rows = db.query(
            "SELECT msg_id FROM files WHERE partner = ? AND state = 'sent' AND status_at IS NULL"
            " AND sent_at < ? ORDER BY sent_at",
            (partner.name, limit),
        )
        overdue.extend(row[0] for row in rows)
    return overdue


def overview(db: Database, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Orders by state (invalid included), files by state, and what needs an admin."""
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
        "files_overdue": len(overdue := overdue_files(db, settings, now or utcnow())),
        "overdue_files": overdue,
        "duplicate_file_answers": _count(db, "SELECT COUNT(*) FROM duplicate_answers"),
        "duplicate_answered_files": duplicate_answered_files(db),
    }


def duplicate_answered_files(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The latest files a bank answered "duplicate file" (DUPL) for, with the file's state now:
    such an answer moves nothing, and the file waits for the original's reports."""
    rows = db.query(
        "SELECT d.partner, d.original_msg_id, d.msg_id, d.received_at, f.state"
        " FROM duplicate_answers d LEFT JOIN files f ON f.msg_id = d.original_msg_id"
        " ORDER BY d.received_at DESC, d.msg_id LIMIT ?",
        (limit,),
    )
    return [
        {
            "partner": partner,
            "original_msg_id": original,
            "msg_id": msg_id,
            "received_at": received_at,
            "file_state": state,
        }
        for partner, original, msg_id, received_at, state in rows
    ]


def inbound_folders(
    settings: Settings,
    open_inbound: Callable[[PartnerProfile], Folder],
    now: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Per partner reached by files, what waits in its inbound folder (see `inbound_backlog`);
    a folder that cannot be read says why instead, and the others are still shown."""
    backlog: dict[str, dict[str, Any]] = {}
    for partner in settings.partners.values():
        if partner.files is None:
            continue
        try:
            folder = open_inbound(partner)
            try:
                backlog[partner.name] = inbound_backlog(folder, now or time.time())
            finally:
                folder.close()
        except (GatewayError, OSError) as exc:
            backlog[partner.name] = {"error": str(exc) or type(exc).__name__}
    return backlog
