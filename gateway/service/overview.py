"""What an admin asks first: where orders and files stand, and what is waiting for a person."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from gateway.config import PartnerProfile, Settings
from gateway.errors import GatewayError
from gateway.service.channels import Folder
from gateway.service.clock import utcnow
from gateway.service.file_scanner import inbound_backlog
from gateway.service.ports import Queries


def overdue_files(queries: Queries, settings: Settings, now: datetime) -> list[str]:
    """Files sent without any status report within their partner's deadline (a file leaves the
    list when its late report arrives)."""
    overdue: list[str] = []
    for partner in settings.partners.values():
        limit = now - timedelta(minutes=partner.status_deadline_minutes)
        overdue.extend(queries.overdue_files(partner.name, limit))
    return overdue


def overview(queries: Queries, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Orders by state (invalid included), files by state, and what needs an admin."""
    orders = queries.orders_by_state()
    invalid = queries.invalid_count()
    if invalid:
        orders["invalid"] = invalid
    pending, _ = queries.outbox_pending()
    return {
        "orders": dict(sorted(orders.items())),
        "files": dict(sorted(queries.files_by_state().items())),
        "outbox_pending": pending,
        "outbox_parked": len(queries.outbox_parked(dropped=True)),
        "quarantined_inbound": queries.quarantined_count(),
        "unmatched_lines": sum(queries.unmatched_by_partner().values()),
        "files_overdue": len(overdue := overdue_files(queries, settings, now or utcnow())),
        "overdue_files": overdue,
    }


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
