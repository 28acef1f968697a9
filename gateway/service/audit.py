"""The audit trail of admin actions: appending one, and checking the whole chain.

Every admin action, from the console or the command line, is appended with `record` (or with
`AuditEntry` through `uow.audit.append` in the same unit of work as the change it records).
`check` reads the trail back and finds the first row that was changed, removed or reordered
(gateway/domain/audit.py holds the encoding and the rules); `newest` reads the newest rows for
`gateway audit list`.

A row changed in the database itself may hold a value no append writes: a time that is not one
(text on SQLite; `infinity` on PostgreSQL, which the driver refuses to read), a column that is
not text (a blob on SQLite). Reading the trail then fails as a whole, and it is exactly what
these readers are for: they find the first row that cannot be read back (reading fewer rows,
through the same port, until the one that fails is found) and name it, instead of failing.
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

    # Its seq when the row itself could be read (a column that is not text); None when reading
    # it failed, and only where it stands is known.
    seq: int | None
    # What is wrong with it, as the reading said (the stored value, as a rule).
    why: str


def check(queries: Queries) -> tuple[int, Break | None]:
    """How many rows the trail has (those before the first row that cannot be read back, when
    one cannot), and its first break (None when intact)."""
    rows, unreadable = _read(queries)
    if unreadable is None:
        return len(rows), verify(rows, queries.audit_head())
    # The rows before the unreadable one are judged on their own, the last of them taken for the
    # head: a break among them comes first; else the chain breaks at the unreadable row.
    broken = verify(rows, (rows[-1].seq, rows[-1].row_hash) if rows else (0, ZERO_HASH))
    if broken is None:
        at = len(rows) + 1
        broken = Break(
            at,
            "changed",
            f"row {at} was changed in the database and cannot be read back ({unreadable.why})",
        )
    return len(rows), broken


def newest(queries: Queries, limit: int) -> tuple[list[AuditRecord], str | None]:
    """The newest `limit` rows that can be read back, oldest first, and which row cannot and
    why (None when every row was read)."""
    newer, unreadable = _read(queries, limit=limit, newest_first=True)
    if unreadable is None:
        return newer[::-1], None
    before = newer[-1].seq if newer else None
    # The rows older than the unreadable one: read from the oldest row on, up to the first row
    # that cannot be read (the same one, unless several were changed).
    older, first = _read(queries)
    older = [row for row in older if before is None or row.seq < before]
    after = older[-1].seq if older else None
    room = max(limit - len(newer) - 1, 0)
    rows = (older[-room:] if room else []) + newer[::-1]
    why = f"cannot be read back ({unreadable.why})"
    if first is not None and first.seq is not None and first.seq == unreadable.seq:
        return rows, f"row {first.seq} {why}"
    if after is not None and before is not None and before - after == 2:
        return rows, f"row {after + 1} {why}"
    # Else several rows may stand between the two ends read (changed, or removed): named by
    # where they stand.
    if unreadable.seq is not None:
        which = f"row {unreadable.seq}"
    else:
        which = "the newest row" if before is None else f"the row before row {before}"
    if after is not None and before is not None:
        hidden = f"the rows after row {after} and before row {before} are not shown"
    elif before is not None:
        hidden = f"the rows before row {before} are not shown"
    elif after is not None:
        hidden = f"the rows after row {after} are not shown"
    else:
        hidden = "no row is shown"
    return rows, f"{which} {why}; {hidden}"


# The columns of a row that are text as appended (SQLite keeps whatever a statement stores).
_TEXT = ("actor", "via", "action", "subject", "detail_json", "prev_hash", "row_hash")


def _read(
    queries: Queries, *, limit: int | None = None, newest_first: bool = False
) -> tuple[list[AuditRecord], Unreadable | None]:
    """The trail's rows in the order asked, up to the first that cannot be read back, and that
    one (None when every row was read)."""
    try:
        rows = queries.audit_trail(limit=limit, newest_first=newest_first)
        failed = None
    except GatewayError:
        raise  # the database unavailable, or busy: no row is to blame
    except Exception as exc:  # a stored value the storage cannot decode
        rows, failed = _readable_run(queries, limit, newest_first, exc)
    for n, row in enumerate(rows):
        column = next((c for c in _TEXT if not isinstance(getattr(row, c), str)), None)
        if column is not None:
            return rows[:n], Unreadable(row.seq, f"its {column} is not text")
    return rows, failed


def _readable_run(
    queries: Queries, limit: int | None, newest_first: bool, failure: Exception
) -> tuple[list[AuditRecord], Unreadable]:
    """After reading the trail failed with `failure`: the longest run of rows, in the order
    asked, that reads back, and the row after it that does not. The row is to blame only when
    reading one row fewer succeeds; else (the statement itself fails, or a retry reads every
    row) `failure` is raised as it came."""

    def attempt(count: int) -> list[AuditRecord] | Exception:
        try:
            return queries.audit_trail(limit=count, newest_first=newest_first)
        except GatewayError:
            raise
        except Exception as exc:  # as in `_read`
            return exc

    def complete(rows: list[AuditRecord], count: int) -> list[AuditRecord]:
        if len(rows) < count:  # the whole trail read this time: no row is to blame
            raise failure
        return rows

    read = attempt(0)
    if isinstance(read, Exception):
        raise failure
    # The first `good` rows read back, the first `bad` do not: without a limit, ask for twice as
    # many rows until a read fails, then halve the difference until the two are one row apart.
    good, bad, why = 0, limit, failure
    while bad is None or bad - good > 1:
        count = max(2 * good, 1) if bad is None else (good + bad) // 2
        tried = attempt(count)
        if isinstance(tried, Exception):
            bad, why = count, tried
        else:
            read, good = complete(tried, count), count
    return read, Unreadable(None, str(why))
