"""The audit trail of admin actions: appending one, and checking the whole chain.

Every admin action, from the console or the command line, is appended with `record` (or with
`AuditEntry` through `uow.audit.append` in the same unit of work as the change it records).
`check` reads the trail back and finds the first row that was changed, removed or reordered
(gateway/domain/audit.py holds the encoding and the rules); `newest` reads the newest rows for
`gateway audit list`.

A row changed in the database itself may hold a value no append writes: a time that is not one
(text on SQLite; `infinity` on PostgreSQL, which the driver refuses to read), a column that is
not text (a blob on SQLite). Reading the trail then fails as a whole, and it is exactly what
these readers are for: they then read the rows one at a time, by seq, and name each one that
cannot be read back instead of failing.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime

import structlog

from gateway.domain.audit import ZERO_HASH, Break, verify
from gateway.errors import GatewayError
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


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A row of the trail that cannot be read back as one the gateway appended."""

    seq: int
    # What is wrong with it, as the reading said (the stored value, as a rule).
    why: str


def check(queries: Queries) -> tuple[int, Break | None]:
    """How many rows the trail has (those before the first row that cannot be read back, when
    one cannot), and its first break (None when intact)."""
    rows, unreadable = _read(queries)
    if not unreadable:
        return len(rows), verify(rows, queries.audit_head())
    # The rows before the first unreadable one are judged on their own, the last of them taken
    # for the head: a break among them comes first; else the chain breaks at the unreadable row.
    first = unreadable[0]
    before = [row for row in rows if row.seq < first.seq]
    broken = verify(before, (before[-1].seq, before[-1].row_hash) if before else (0, ZERO_HASH))
    if broken is None:
        broken = Break(
            first.seq,
            "changed",
            f"row {first.seq} was changed in the database and cannot be read back ({first.why})",
        )
    return len(before), broken


def newest(queries: Queries, limit: int) -> tuple[list[AuditRecord], str | None]:
    """The rows among the newest `limit` that can be read back, oldest first, and which cannot
    and why (None when every one was read)."""
    rows, unreadable = _read(queries, limit=limit, newest_first=True)
    named = "; ".join(f"row {row.seq} cannot be read back ({row.why})" for row in unreadable)
    return rows[::-1], named or None


# The columns of a row that are text as appended (SQLite keeps whatever a statement stores).
_TEXT = ("actor", "via", "action", "subject", "detail_json", "prev_hash", "row_hash")


def _read(
    queries: Queries, *, limit: int | None = None, newest_first: bool = False
) -> tuple[list[AuditRecord], list[Unreadable]]:
    """The trail's rows in the order asked that read back, and those that do not, by seq.
    Read whole when it can be; else one row at a time by its seq (an integer key, which always
    reads back), so that each row that cannot is named and every other one shown."""
    try:
        rows = queries.audit_trail(limit=limit, newest_first=newest_first)
        unreadable: list[Unreadable] = []
    except GatewayError:
        raise  # the database unavailable, or busy: no row is to blame
    except Exception:  # a stored value the storage cannot decode: found below
        rows, unreadable = _row_by_row(queries, limit, newest_first)
    readable = []
    for row in rows:
        column = next((c for c in _TEXT if not isinstance(getattr(row, c), str)), None)
        if column is None:
            readable.append(row)
        else:
            unreadable.append(Unreadable(row.seq, f"its {column} is not text"))
    return readable, sorted(unreadable, key=lambda row: row.seq)


def _row_by_row(
    queries: Queries, limit: int | None, newest_first: bool
) -> tuple[list[AuditRecord], list[Unreadable]]:
    rows: list[AuditRecord] = []
    unreadable: list[Unreadable] = []
    for seq in queries.audit_seqs(limit=limit, newest_first=newest_first):
        try:
            row = queries.audit_row(seq)
        except GatewayError:
            raise
        except Exception as exc:  # as in `_read`: this row is the one
            unreadable.append(Unreadable(seq, str(exc)))
            continue
        if row is not None:  # gone since the seqs were read
            rows.append(row)
    return rows, unreadable
