"""The audit trail of admin actions: appending one, and checking the whole chain.

Every admin action, from the console or the command line, is appended with `record` (or with
`AuditEntry` through `uow.audit.append` in the same unit of work as the change it records).
`check` reads the trail back and finds the first row that was changed, removed or reordered
(gateway/domain/audit.py holds the encoding and the rules).
"""

from __future__ import annotations

import getpass
from datetime import datetime

import structlog

from gateway.domain.audit import Break, verify
from gateway.service.clock import utcnow
from gateway.service.ports import AuditEntry, AuditRecord, Queries, Storage

log = structlog.get_logger("gateway.audit")


def cli_actor() -> str:
    """Who runs a command: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(
    storage: Storage,
    *,
    actor: str,
    via: str,
    action: str,
    subject: str = "",
    detail: dict[str, str] | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    """Append one admin action in a unit of work of its own; the row as sealed."""
    entry = AuditEntry(actor, via, action, subject, dict(detail or {}))
    with storage.unit_of_work() as uow:
        row = uow.audit.append(entry, now or utcnow())
    logged(row)
    return row


def logged(row: AuditRecord) -> None:
    """Log an appended row with its hash: the logs keep a copy of the chain's head."""
    log.info(
        "audit.appended",
        seq=row.seq,
        actor=row.actor,
        via=row.via,
        action=row.action,
        subject=row.subject,
        row_hash=row.row_hash,
    )


def check(queries: Queries) -> tuple[int, Break | None]:
    """How many rows the trail has, and its first break (None when intact)."""
    rows = queries.audit_trail()
    return len(rows), verify(rows, queries.audit_head())
