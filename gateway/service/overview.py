"""What an admin asks first: where orders and files stand, and what is waiting for a person."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from gateway.config import PartnerProfile, Settings
from gateway.errors import GatewayError
from gateway.service.channels import Folder
from gateway.service.clock import stamp, utcnow
from gateway.service.file_scanner import inbound_backlog
from gateway.service.ports import OutboxStatus, Queries


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
    outbox = queries.outbox_by_status()
    return {
        "orders": dict(sorted(orders.items())),
        "files": dict(sorted(queries.files_by_state().items())),
        "outbox_pending": outbox[OutboxStatus.PENDING],
        # Parked: waiting for an admin (`gateway dlq`), as the metric and `dlq list` count them.
        "outbox_parked": outbox[OutboxStatus.PARKED],
        "outbox_dropped": outbox[OutboxStatus.DROPPED],
        "quarantined_inbound": queries.quarantined_count(),
        "unmatched_lines": sum(queries.unmatched_by_partner().values()),
        "files_overdue": len(overdue := overdue_files(queries, settings, now or utcnow())),
        "overdue_files": overdue,
        "duplicate_file_answers": sum(queries.duplicate_answers_by_partner().values()),
        "duplicate_answered_files": duplicate_answered_files(queries),
        "claims": held_claims(queries, now or utcnow()),
    }


def held_claims(queries: Queries, now: datetime) -> list[dict[str, Any]]:
    """Work instances hold (batch groups; outbox messages per instance), and whether each claim
    has expired: an expired one belongs to an instance that died or stalled, and another
    instance takes the work over."""
    return [
        {
            "kind": claim.kind,
            "key": claim.key,
            "owner": claim.owner,
            "messages": claim.messages,
            "expires_at": claim.expires_at.isoformat(timespec="seconds"),
            "expired": claim.expires_at < now,
        }
        for claim in queries.claims()
    ]


def duplicate_answered_files(queries: Queries, limit: int = 20) -> list[dict[str, Any]]:
    """The latest files a bank answered "duplicate file" (DUPL) for, with the file's state now:
    such an answer moves nothing, and the file waits for the original's reports."""
    return [
        {
            "partner": answer.partner,
            "original_msg_id": answer.original_msg_id,
            "msg_id": answer.msg_id,
            "received_at": stamp(answer.received_at) if answer.received_at else None,
            "file_state": answer.file_state.value if answer.file_state else None,
        }
        for answer in queries.duplicate_answers(limit)
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
