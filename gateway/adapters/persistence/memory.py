"""The storage port in memory, for fast unit tests of the services.

It keeps the gateway's state in plain Python values and behaves as the SQL adapters do (the
contract suite in tests/contract/ runs the same tests against it, SQLite and PostgreSQL). A unit
of work holds one lock for its whole duration (one writer at a time, as SQLite has it), works on
a deep copy of the committed state and swaps it in when the block ends; on any exception the copy
is thrown away. Committed states are never changed afterwards, so queries read the latest one
without waiting for a writer, as readers of a database do.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from gateway.domain import audit as audit_chain
from gateway.domain.states import FileState, TxState, can_move
from gateway.errors import InvalidMessage
from gateway.reasons import ReasonClass
from gateway.reasons import reason_class as classify
from gateway.service.channels import PRIORITY_HEADER, TO_BANK_EXCHANGE
from gateway.service.ports import (
    INSTANCE_ROLES,
    AddResult,
    AdminRepository,
    AuditEntry,
    AuditRecord,
    AuditRepository,
    BankAnswer,
    Booked,
    ClaimRepository,
    ConcurrentChange,
    ConsoleUser,
    CounterRepository,
    DlqAction,
    DuplicateAnswer,
    EvidenceRepository,
    FileRecord,
    FileRepository,
    HeldClaim,
    InboundFileRecord,
    InboundRepository,
    NewOrder,
    OrderRepository,
    OutboundFile,
    OutboxMessage,
    OutboxRecord,
    OutboxRepository,
    OutboxStatus,
    ParkedOutbox,
    PendingMessage,
    QuarantinedFile,
    Queries,
    ReturnRecord,
    Revenue,
    SeenAs,
    StatementEntryRecord,
    StatementRecord,
    StoredOrder,
    UnitOfWork,
    UnmatchedLine,
    UserRepository,
    WaitingGroup,
)

T = TypeVar("T")


# --- the state -----------------------------------------------------------------------------------


@dataclass(slots=True)
class FileRow:
    """An outbound file as built, and how far it went."""

    file: OutboundFile
    state: FileState
    created_at: datetime
    sent_at: datetime | None = None
    status_at: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class InboundRow:
    """A bank file taken in, kept as received."""

    message_type: str
    sha256: str
    raw: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class KeptRow:
    """A refused message or file, with why and when."""

    raw: bytes
    reason: str
    received_at: datetime
    order_id: str | None = None
    # A quarantined file's ReasonClass value.
    reason_class: str = ReasonClass.CONTENT.value


@dataclass(slots=True)
class OutboxRow:
    """An outbox message with where it stands."""

    row_id: int
    message: OutboxMessage
    created_at: datetime
    status: OutboxStatus = OutboxStatus.PENDING
    sent_at: datetime | None = None
    parked_at: datetime | None = None
    parked_why: str | None = None
    claimed_by: str | None = None
    claim_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class WorkClaim:
    """Who holds a piece of shared work, and until when."""

    owner: str
    expires_at: datetime


@dataclass(slots=True)
class MemoryState:
    """Every table of the gateway's database, as dictionaries keyed like its primary keys."""

    orders: dict[str, StoredOrder] = field(default_factory=dict)
    order_hashes: dict[str, str] = field(default_factory=dict)
    invalid_orders: dict[str, KeptRow] = field(default_factory=dict)
    files: dict[str, FileRow] = field(default_factory=dict)
    # msg_id -> (partner, when it was flagged / cleared)
    overdue_flags: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    overdue_cleared: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    inbound_files: dict[tuple[str, str], InboundRow] = field(default_factory=dict)
    quarantine: dict[tuple[str, str], QuarantinedFile] = field(default_factory=dict)
    unmatched: list[tuple[UnmatchedLine, datetime]] = field(default_factory=list)
    # (partner, bank_ref) -> (msg_id, outcome, received_at)
    camt_entries: dict[tuple[str, str], tuple[str, str, datetime]] = field(default_factory=dict)
    # (partner, msg_id) -> the duplicate-file answer, as kept (received_at set)
    duplicate_answers: dict[tuple[str, str], DuplicateAnswer] = field(default_factory=dict)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    next_outbox_id: int = 1
    revenue: dict[tuple[str, str], tuple[Revenue, datetime]] = field(default_factory=dict)
    returns: dict[tuple[str, str], tuple[ReturnRecord, datetime]] = field(default_factory=dict)
    statements: dict[tuple[str, str], tuple[StatementRecord, datetime]] = field(
        default_factory=dict
    )
    statement_entries: dict[tuple[str, str], StatementEntryRecord] = field(default_factory=dict)
    dlq_actions: list[tuple[DlqAction, datetime]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    work_claims: dict[tuple[str, str], WorkClaim] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    audit_head: tuple[int, str] = (0, audit_chain.ZERO_HASH)
    users: dict[str, ConsoleUser] = field(default_factory=dict)


def _json_copy(value: T, **dumps: Any) -> T:
    """The value as it comes back from a JSON column."""
    loaded: T = json.loads(json.dumps(value, **dumps))
    return loaded


def _pending_messages(rows: list[OutboxRow]) -> list[PendingMessage]:
    """The relays' copies of pending messages (headers as the SQL backends return them)."""
    return [
        PendingMessage(
            row.row_id,
            replace(row.message, headers=_json_copy(row.message.headers, sort_keys=True)),
        )
        for row in rows
    ]


def _limited(rows: list[T], limit: int | None) -> list[T]:
    """The first `limit` rows (all of them for None or a negative limit, as SQLite's LIMIT)."""
    return rows if limit is None or limit < 0 else rows[:limit]


def _keep(new: T | None, old: T | None) -> T | None:
    """The new value, or the old one when there is none (SQL's COALESCE)."""
    return old if new is None else new


class _Tx:
    """The working copy of one unit of work, gone once the unit ends."""

    def __init__(self, state: MemoryState) -> None:
        self.state: MemoryState | None = state


class _Repository:
    """A repository reading and changing its unit's working copy."""

    def __init__(self, tx: _Tx) -> None:
        self._tx = tx

    @property
    def _s(self) -> MemoryState:
        if self._tx.state is None:
            raise RuntimeError("the unit of work has ended")
        return self._tx.state


# --- repositories --------------------------------------------------------------------------------


class MemoryOrders(_Repository):
    """Payment orders and refused messages."""

    def add(self, order: NewOrder, now: datetime) -> AddResult:
        s = self._s
        known = s.order_hashes.get(order.order_id)
        if known is not None:
            return "duplicate" if known == order.content_hash else "conflict"
        s.order_hashes[order.order_id] = order.content_hash
        s.orders[order.order_id] = StoredOrder(
            order_id=order.order_id,
            payload=order.payload,
            partner=order.partner,
            group_key=order.group_key,
            category=order.category,
            amount=order.amount,
            currency=order.currency,
            state=TxState.RECEIVED,
            msg_id=None,
            pmt_inf_id=None,
            status_code=None,
            reason_code=None,
            reason_text=None,
            bank_ref=None,
            value_date=None,
            received_at=now,
            updated_at=now,
        )
        return "new"

    def add_many(self, orders: Sequence[NewOrder], now: datetime) -> list[AddResult]:
        return [self.add(order, now) for order in orders]

    def content_hashes(self, order_ids: Sequence[str]) -> dict[str, str]:
        hashes = self._s.order_hashes
        return {i: hashes[i] for i in order_ids if i in hashes}

    def add_invalid(
        self, *, subject: str, order_id: str | None, raw: bytes, reason: str, now: datetime
    ) -> bool:
        if subject in self._s.invalid_orders:
            return False
        self._s.invalid_orders[subject] = KeptRow(bytes(raw), reason, now, order_id)
        return True

    def get(self, order_id: str) -> StoredOrder | None:
        return self._s.orders.get(order_id)

    def prefetch(self, order_ids: Sequence[str]) -> None:
        """Nothing to read ahead in memory."""

    def received_in_group(self, group_key: str, limit: int) -> list[StoredOrder]:
        return _received_in_group(self._s, group_key, limit)

    def waiting_groups(self) -> list[WaitingGroup]:
        counts: Counter[str] = Counter()
        newest: dict[str, datetime] = {}
        partners: dict[str, str] = {}
        for order in self._s.orders.values():
            if order.state is TxState.RECEIVED:
                partners[order.group_key] = order.partner
                counts[order.group_key] += 1
                newest[order.group_key] = max(
                    newest.get(order.group_key, order.received_at), order.received_at
                )
        return [
            WaitingGroup(key, counts[key], partners[key], newest[key]) for key in sorted(counts)
        ]

    def move(self, order: StoredOrder, target: TxState, answer: BankAnswer, now: datetime) -> None:
        if not can_move(order.state, target):
            raise ValueError(f"order {order.order_id} cannot move from {order.state} to {target}")
        current = self._s.orders.get(order.order_id)
        if current is None or current.state != order.state:
            raise ConcurrentChange(f"order {order.order_id} moved while {target} was applied")
        self._s.orders[order.order_id] = replace(
            current,
            state=target,
            updated_at=now,
            status_code=_keep(answer.status_code, current.status_code),
            reason_code=_keep(answer.reason_code, current.reason_code),
            reason_text=_keep(answer.reason_text, current.reason_text),
            bank_ref=_keep(answer.bank_ref, current.bank_ref),
            value_date=_keep(answer.value_date, current.value_date),
        )

    def states_in_file(self, order_ids: Sequence[str], msg_id: str) -> dict[str, TxState]:
        found = (self._s.orders.get(order_id) for order_id in order_ids)
        return {o.order_id: o.state for o in found if o is not None and o.msg_id == msg_id}

    def move_together(
        self,
        order_ids: Sequence[str],
        source: TxState,
        target: TxState,
        answer: BankAnswer,
        now: datetime,
    ) -> None:
        for order_id in order_ids:
            current = self._s.orders.get(order_id)
            if current is None or current.state != source:
                raise ConcurrentChange(f"order {order_id} moved while {target} was applied")
            self.move(current, target, answer, now)

    def mark_batched(
        self, assignments: Sequence[tuple[str, str]], msg_id: str, now: datetime
    ) -> None:
        orders = self._s.orders
        changed = 0
        for order_id, pmt_inf_id in assignments:
            current = orders.get(order_id)
            if current is not None and current.state is TxState.RECEIVED:
                orders[order_id] = replace(
                    current,
                    state=TxState.BATCHED,
                    msg_id=msg_id,
                    pmt_inf_id=pmt_inf_id,
                    updated_at=now,
                )
                changed += 1
        if changed != len(assignments):
            raise ConcurrentChange(
                f"{len(assignments) - changed} order(s) of file {msg_id} were batched elsewhere"
            )

    def ids_in_file(self, msg_id: str) -> list[str]:
        return sorted(o.order_id for o in self._s.orders.values() if o.msg_id == msg_id)

    def ids_in_group(self, msg_id: str, pmt_inf_id: str) -> list[str]:
        return sorted(
            o.order_id
            for o in self._s.orders.values()
            if o.msg_id == msg_id and o.pmt_inf_id == pmt_inf_id
        )


class MemoryFiles(_Repository):
    """Outbound files and their deadlines."""

    def add(self, file: OutboundFile, now: datetime) -> None:
        if file.msg_id in self._s.files:
            raise ValueError(f"file {file.msg_id} is recorded already")
        self._s.files[file.msg_id] = FileRow(file, FileState.BUILT, now)

    def partner_of(self, msg_id: str) -> str | None:
        row = self._s.files.get(msg_id)
        return row.file.partner if row else None

    def sent(self, msg_id: str, now: datetime) -> None:
        row = self._s.files.get(msg_id)
        if row is not None:
            # The bank may have answered before the confirm was recorded: its status is kept then.
            if row.state is FileState.BUILT:
                row.state = FileState.SENT
            if row.sent_at is None:
                row.sent_at = now
            row.attempts += 1
        orders = self._s.orders
        for order_id, order in list(orders.items()):
            if order.msg_id == msg_id and order.state is TxState.BATCHED:
                orders[order_id] = replace(order, state=TxState.SENT, updated_at=now)

    def set_status(self, msg_id: str, state: FileState, now: datetime) -> None:
        row = self._s.files.get(msg_id)
        final = (FileState.REJECTED, FileState.PARTIALLY_REJECTED)
        if row is not None and row.state not in final:
            row.state = state
            row.status_at = now

    def status_reported(self, msg_id: str, now: datetime) -> None:
        row = self._s.files.get(msg_id)
        if row is not None:
            row.status_at = row.status_at or now

    def overdue_unflagged(self, partner: str, sent_before: datetime) -> list[tuple[str, datetime]]:
        flagged = self._s.overdue_flags
        return [
            (msg_id, sent_at)
            for msg_id, sent_at in _overdue(self._s, partner, sent_before)
            if msg_id not in flagged
        ]

    def flag_overdue(self, msg_id: str, partner: str, now: datetime) -> bool:
        row = self._s.files.get(msg_id)
        if msg_id in self._s.overdue_flags or row is None or row.status_at is not None:
            return False
        self._s.overdue_flags[msg_id] = (partner, now)
        return True

    def clear_overdue(self, msg_id: str, partner: str, now: datetime) -> datetime | None:
        flag = self._s.overdue_flags.get(msg_id)
        if flag is None or msg_id in self._s.overdue_cleared:
            return None
        self._s.overdue_cleared[msg_id] = (partner, now)
        return flag[1]


def _overdue(state: MemoryState, partner: str, sent_before: datetime) -> list[tuple[str, datetime]]:
    """(msg_id, sent_at) of a partner's sent files without any status report, oldest first."""
    rows = [
        (msg_id, row.sent_at)
        for msg_id, row in state.files.items()
        if row.file.partner == partner
        and row.state is FileState.SENT
        and row.status_at is None
        and row.sent_at is not None
        and row.sent_at < sent_before
    ]
    return sorted(rows, key=lambda row: row[1])


class MemoryInbound(_Repository):
    """Bank files taken in, refused, and the lines that could not be applied."""

    def first_sight(
        self, partner: str, msg_id: str, message_type: str, raw: bytes, now: datetime
    ) -> bool:
        digest = hashlib.sha256(raw).hexdigest()
        if self.known_file(partner, msg_id, digest):
            return False
        self._s.inbound_files[partner, msg_id] = InboundRow(message_type, digest, bytes(raw), now)
        return True

    def known_file(self, partner: str, msg_id: str, sha256: str) -> bool:
        kept = self._s.inbound_files.get((partner, msg_id))
        if kept is None:
            return False
        if kept.sha256 != sha256:
            raise InvalidMessage(
                f"{partner} reused MsgId {msg_id} for a different file; the first is kept"
            )
        return True

    def quarantine(
        self,
        partner: str,
        sha256: str,
        size: int,
        reason: str,
        now: datetime,
        reason_class: str | None = None,
    ) -> bool:
        key = (partner, sha256)
        if key in self._s.quarantine:
            return False
        kind = ReasonClass(reason_class) if reason_class else classify(reason)
        self._s.quarantine[key] = QuarantinedFile(partner, sha256, size, reason, now, kind.value)
        return True

    def unmatched(self, line: UnmatchedLine, now: datetime) -> None:
        detail = _json_copy(line.detail, default=str)
        self._s.unmatched.append((replace(line, detail=detail), now))

    def entry_applied(self, partner: str, bank_ref: str) -> bool:
        return (partner, bank_ref) in self._s.camt_entries

    def applied_entries(self, partner: str, bank_refs: Sequence[str]) -> set[str]:
        return {ref for ref in bank_refs if (partner, ref) in self._s.camt_entries}

    def add_entry(
        self, partner: str, bank_ref: str, msg_id: str, outcome: str, now: datetime
    ) -> None:
        self._s.camt_entries.setdefault((partner, bank_ref), (msg_id, outcome, now))

    def record_duplicate_answer(self, answer: DuplicateAnswer, now: datetime) -> bool:
        key = (answer.partner, answer.msg_id)
        if key in self._s.duplicate_answers:
            return False
        self._s.duplicate_answers[key] = replace(answer, received_at=now, file_state=None)
        return True


class MemoryOutbox(_Repository):
    """Messages written with the change that caused them, sent by a relay."""

    def add(self, message: OutboxMessage, now: datetime) -> None:
        self.enqueue(message, now)

    def enqueue(self, message: OutboxMessage, now: datetime) -> bool:
        s = self._s
        if self._find(message.message_id) is not None:
            return False
        headers = _json_copy(message.headers, sort_keys=True)
        kept = replace(message, body=bytes(message.body), headers=headers)
        s.outbox[s.next_outbox_id] = OutboxRow(s.next_outbox_id, kept, now)
        s.next_outbox_id += 1
        return True

    def claim(
        self,
        owner: str,
        limit: int,
        now: datetime,
        until: datetime,
        *,
        file_partners: Sequence[str] = (),
        files_only: bool = False,
        urgent_only: bool = False,
    ) -> list[PendingMessage]:
        claimed = self._pending(owner, limit, now, file_partners, files_only, urgent_only)
        for row in claimed:
            row.claimed_by, row.claim_until = owner, until
        return _pending_messages(claimed)

    def lock_pending(
        self,
        owner: str,
        limit: int,
        now: datetime,
        hold_for: timedelta,
        *,
        file_partners: Sequence[str] = (),
        urgent_only: bool = False,
    ) -> list[PendingMessage]:
        # One unit at a time holds the storage. With `relay_locks`, what it takes no other unit
        # sees meanwhile; without, it is a plain read and the relay holds what it read.
        del hold_for
        return _pending_messages(
            self._pending(owner, limit, now, file_partners, False, urgent_only)
        )

    def _pending(
        self,
        owner: str,
        limit: int,
        now: datetime,
        file_partners: Sequence[str],
        files_only: bool,
        urgent_only: bool,
    ) -> list[OutboxRow]:
        pending = [
            row
            for row in self._s.outbox.values()
            if row.status is OutboxStatus.PENDING
            and (
                row.claimed_by is None
                or row.claimed_by == owner
                or (row.claim_until is not None and row.claim_until < now)
            )
            and _to_files(row.message, file_partners) == files_only
            and (not urgent_only or _urgent_file(row.message))
        ]
        # Files to banks first, then the rest, each in id order (as the SQL backends claim).
        first = TO_BANK_EXCHANGE
        return _limited(
            sorted(pending, key=lambda row: (row.message.exchange != first, row.row_id)), limit
        )

    def mark_sent(self, row_ids: Sequence[int], now: datetime) -> None:
        for row_id in row_ids:
            row = self._s.outbox.get(row_id)
            if row is not None and row.status is not OutboxStatus.SENT:
                row.status, row.sent_at = OutboxStatus.SENT, now
                row.claimed_by, row.claim_until = None, None

    def release(self, row_ids: Sequence[int], owner: str) -> None:
        for row_id in row_ids:
            row = self._s.outbox.get(row_id)
            if row is not None and row.claimed_by == owner:
                row.claimed_by, row.claim_until = None, None

    def park(self, row_id: int, reason: str, now: datetime) -> None:
        row = self._s.outbox.get(row_id)
        if row is not None and row.status is OutboxStatus.PENDING:
            row.status, row.parked_at, row.parked_why = OutboxStatus.PARKED, now, reason
            row.claimed_by, row.claim_until = None, None

    def parked(self, message_ids: Sequence[str] | None = None) -> list[ParkedOutbox]:
        wanted = None if message_ids is None else set(message_ids)
        return [
            _parked_view(row)
            for row in sorted(self._s.outbox.values(), key=lambda row: row.row_id)
            if row.status is OutboxStatus.PARKED
            and (wanted is None or row.message.message_id in wanted)
        ]

    def unpark(self, message_id: str) -> bool:
        row = self._parked(message_id)
        if row is None:
            return False
        row.status, row.parked_at, row.parked_why = OutboxStatus.PENDING, None, None
        return True

    def drop(self, message_id: str, now: datetime) -> bool:
        # The message keeps when and why it was parked; the admin's reason and the time of
        # the drop are in the admin record.
        row = self._parked(message_id)
        if row is None:
            return False
        row.status = OutboxStatus.DROPPED
        return True

    def _find(self, message_id: str) -> OutboxRow | None:
        """The row of a message id, or None."""
        return next(
            (r for r in self._s.outbox.values() if r.message.message_id == message_id), None
        )

    def _parked(self, message_id: str) -> OutboxRow | None:
        """The row of a parked message, or None."""
        row = self._find(message_id)
        return row if row is not None and row.status is OutboxStatus.PARKED else None


def _urgent_file(message: OutboxMessage) -> bool:
    """A file to a bank carrying an urgent order (what the SQL claim matches in its headers)."""
    return message.exchange == TO_BANK_EXCHANGE and message.headers.get(PRIORITY_HEADER) == "urgent"


def _to_files(message: OutboxMessage, file_partners: Sequence[str]) -> bool:
    """Whether a message is a file for a partner reached by file exchange."""
    return message.exchange == TO_BANK_EXCHANGE and message.routing_key in file_partners


def _parked_view(row: OutboxRow) -> ParkedOutbox:
    """A parked (or dropped) outbox row as the port gives it."""
    assert row.parked_at is not None
    return ParkedOutbox(
        row.message.message_id,
        row.message.exchange,
        row.message.routing_key,
        row.parked_at,
        row.parked_why or "",
        row.message.body,
        row.status,
    )


class MemoryEvidence(_Repository):
    """What banks booked: revenue, returns, statements."""

    def add_revenue(self, revenue: Revenue, now: datetime) -> bool:
        return _first_insert(self._s.revenue, (revenue.partner, revenue.bank_ref), (revenue, now))

    def add_return(self, returned: ReturnRecord, now: datetime) -> None:
        _first_insert(self._s.returns, (returned.partner, returned.bank_ref), (returned, now))

    def add_statement(self, statement: StatementRecord, now: datetime) -> bool:
        kept = replace(statement, balances=_json_copy(statement.balances))
        return _first_insert(
            self._s.statements, (statement.partner, statement.statement_id), (kept, now)
        )

    def add_statement_entry(self, entry: StatementEntryRecord) -> bool:
        return _first_insert(self._s.statement_entries, (entry.partner, entry.bank_ref), entry)


def _first_insert(table: dict[tuple[str, str], T], key: tuple[str, str], row: T) -> bool:
    """Insert unless the key is there (SQL's ON CONFLICT DO NOTHING): True when inserted."""
    if key in table:
        return False
    table[key] = row
    return True


class MemoryAdmin(_Repository):
    """What admins did."""

    def record_dlq_action(self, action: DlqAction, now: datetime) -> None:
        headers = _json_copy(action.headers, default=str, sort_keys=True)
        self._s.dlq_actions.append((replace(action, headers=headers), now))


class MemoryAudit(_Repository):
    """The hash-chained audit trail (the unit's lock serialises appends)."""

    def append(self, entry: AuditEntry, now: datetime) -> AuditRecord:
        s = self._s
        record = entry.sealed_after(*s.audit_head, now)
        s.audit.append(record)
        s.audit_head = (record.seq, record.row_hash)
        return record


class MemoryUsers(_Repository):
    """The console's users."""

    def add(self, name: str, role: str, password_hash: str, now: datetime) -> bool:
        if name in self._s.users:
            return False
        self._s.users[name] = ConsoleUser(name, role, password_hash, False, now, now)
        return True

    def set_disabled(self, name: str, disabled: bool, now: datetime) -> bool:
        user = self._s.users.get(name)
        if user is None:
            return False
        self._s.users[name] = replace(user, disabled=disabled, updated_at=now)
        return True


class MemoryCounters(_Repository):
    """Named sequences."""

    def next_value(self, name: str) -> int:
        value = self._s.counters.get(name, 0) + 1
        self._s.counters[name] = value
        return value


class MemoryClaims(_Repository):
    """Claims on work shared by several gateway instances."""

    def claim(self, kind: str, key: str, owner: str, now: datetime, until: datetime) -> bool:
        held = self._s.work_claims.get((kind, key))
        if held is not None and held.owner != owner and not held.expires_at < now:
            return False
        self._s.work_claims[kind, key] = WorkClaim(owner, until)
        return True

    def holds(self, kind: str, key: str, owner: str, now: datetime) -> bool:
        held = self._s.work_claims.get((kind, key))
        return held is not None and held.owner == owner

    def extend(self, kind: str, key: str, owner: str, until: datetime) -> bool:
        held = self._s.work_claims.get((kind, key))
        if held is None or held.owner != owner:
            return False
        self._s.work_claims[kind, key] = WorkClaim(owner, until)
        return True

    def release(self, kind: str, key: str, owner: str) -> None:
        held = self._s.work_claims.get((kind, key))
        if held is not None and held.owner == owner:
            del self._s.work_claims[kind, key]


class MemoryUnitOfWork:
    """The repositories of one transaction."""

    def __init__(self, tx: _Tx) -> None:
        self.orders: OrderRepository = MemoryOrders(tx)
        self.files: FileRepository = MemoryFiles(tx)
        self.inbound: InboundRepository = MemoryInbound(tx)
        self.outbox: OutboxRepository = MemoryOutbox(tx)
        self.evidence: EvidenceRepository = MemoryEvidence(tx)
        self.admin: AdminRepository = MemoryAdmin(tx)
        self.counters: CounterRepository = MemoryCounters(tx)
        self.claims: ClaimRepository = MemoryClaims(tx)
        self.audit: AuditRepository = MemoryAudit(tx)
        self.users: UserRepository = MemoryUsers(tx)


# --- the read-only port --------------------------------------------------------------------------


def _received_in_group(state: MemoryState, group_key: str, limit: int) -> list[StoredOrder]:
    rows = [
        order
        for order in state.orders.values()
        if order.state is TxState.RECEIVED and order.group_key == group_key
    ]
    rows.sort(key=lambda order: (order.received_at, order.order_id))
    return _limited(rows, limit)


class MemoryQueries:
    """Read-only questions, each answered from the latest committed state."""

    def __init__(self, committed: Callable[[], MemoryState]) -> None:
        self._committed = committed

    def order(self, order_id: str) -> StoredOrder | None:
        return self._committed().orders.get(order_id)

    def orders_by_state(self) -> dict[str, int]:
        return dict(Counter(o.state.value for o in self._committed().orders.values()))

    def invalid_count(self) -> int:
        return len(self._committed().invalid_orders)

    def files_by_state(self) -> dict[str, int]:
        return dict(Counter(row.state.value for row in self._committed().files.values()))

    def outbox_pending(self) -> tuple[int, datetime | None]:
        times = [
            row.created_at
            for row in self._committed().outbox.values()
            if row.status is OutboxStatus.PENDING
        ]
        return len(times), min(times, default=None)

    def outbox_parked(self) -> list[ParkedOutbox]:
        rows = sorted(self._committed().outbox.values(), key=lambda row: row.row_id)
        return [_parked_view(row) for row in rows if row.status is OutboxStatus.PARKED]

    def outbox_by_status(self) -> dict[OutboxStatus, int]:
        counts = Counter(row.status for row in self._committed().outbox.values())
        return {s: counts[s] for s in OutboxStatus if s is not OutboxStatus.SENT}

    def quarantined_count(self) -> int:
        return len(self._committed().quarantine)

    def quarantine_reasons(self) -> list[tuple[str, str, int]]:
        counts = Counter(
            (partner, row.reason) for (partner, _), row in self._committed().quarantine.items()
        )
        return [(partner, reason, n) for (partner, reason), n in sorted(counts.items())]

    def _numbered_quarantine(self) -> list[QuarantinedFile]:
        """The refused files in the order they were kept, numbered from 1 as a table's ids."""
        return [
            replace(row, quarantine_id=number)
            for number, row in enumerate(self._committed().quarantine.values(), start=1)
        ]

    def quarantined(self, limit: int = 200) -> list[QuarantinedFile]:
        rows = self._numbered_quarantine()
        rows.reverse()
        rows.sort(key=lambda row: row.received_at, reverse=True)
        return rows[:limit]

    def quarantined_raw(self, sha256: str) -> bytes | None:
        return None  # the memory store never kept bytes in its rows

    def quarantine_by_class(self) -> list[tuple[str, str, int]]:
        counts = Counter(
            (partner, row.reason_class)
            for (partner, _), row in self._committed().quarantine.items()
        )
        return [(partner, kind, n) for (partner, kind), n in sorted(counts.items())]

    def unmatched_by_partner(self) -> dict[str, int]:
        return dict(Counter(line.partner for line, _ in self._committed().unmatched))

    def applied_by_type(self) -> list[tuple[str, str, int]]:
        counts = Counter(
            (partner, row.message_type)
            for (partner, _), row in self._committed().inbound_files.items()
        )
        return [(partner, kind, n) for (partner, kind), n in sorted(counts.items())]

    def duplicate_answers(self, limit: int = 20) -> list[DuplicateAnswer]:
        state = self._committed()
        kept = sorted(
            state.duplicate_answers.values(),
            key=lambda a: (-(a.received_at.timestamp() if a.received_at else 0.0), a.msg_id),
        )
        answers = []
        for answer in kept[:limit]:
            row = state.files.get(answer.original_msg_id)
            answers.append(replace(answer, file_state=row.state if row else None))
        return answers

    def duplicate_answers_by_partner(self) -> dict[str, int]:
        return dict(Counter(partner for partner, _ in self._committed().duplicate_answers))

    def claims(self) -> list[HeldClaim]:
        state = self._committed()
        held = [
            HeldClaim(kind, key, claim.owner, claim.expires_at)
            for (kind, key), claim in state.work_claims.items()
        ]
        by_owner: dict[str, list[datetime]] = {}
        for row in state.outbox.values():
            if row.claimed_by is not None and row.sent_at is None and row.claim_until:
                by_owner.setdefault(row.claimed_by, []).append(row.claim_until)
        held += [
            HeldClaim("outbox", owner, owner, max(untils), len(untils))
            for owner, untils in by_owner.items()
        ]
        return sorted(held, key=lambda c: (c.expires_at, c.kind, c.key))

    def overdue_files(self, partner: str, sent_before: datetime) -> list[str]:
        return [msg_id for msg_id, _ in _overdue(self._committed(), partner, sent_before)]

    def seen_inbound(self, partner: str, sha256: str) -> tuple[SeenAs, str | None] | None:
        state = self._committed()
        if any(
            p == partner and row.sha256 == sha256 for (p, _), row in state.inbound_files.items()
        ):
            return ("applied", None)
        refused = state.quarantine.get((partner, sha256))
        return ("quarantined", refused.reason) if refused else None

    def statement_days(self) -> list[date]:
        return sorted({kept.stmt_date for kept, _ in self._committed().statements.values()})

    def statements_of_day(self, day: date, partner: str | None = None) -> list[StatementRecord]:
        rows = [
            kept
            for kept, _ in self._committed().statements.values()
            if kept.stmt_date == day and (partner is None or kept.partner == partner)
        ]
        rows.sort(key=lambda kept: (kept.partner, kept.account, kept.statement_id))
        return [replace(kept, balances=_json_copy(kept.balances)) for kept in rows]

    def statement_entries(self, partner: str, statement_id: str) -> list[StatementEntryRecord]:
        rows = [
            entry
            for entry in self._committed().statement_entries.values()
            if entry.partner == partner and entry.statement_id == statement_id
        ]
        return sorted(rows, key=lambda entry: entry.bank_ref)

    def booked_payments(self, partner: str, day: date) -> list[Booked]:
        booked = (TxState.SETTLED, TxState.RETURNED)
        rows = [
            o
            for o in self._committed().orders.values()
            if o.partner == partner and o.value_date == day and o.state in booked
        ]
        rows.sort(key=lambda o: o.order_id)
        return [Booked(o.order_id, o.amount, o.currency, o.bank_ref, o.payload) for o in rows]

    def booked_credits(self, partner: str, day: date) -> list[Booked]:
        state = self._committed()
        # Revenue first, then returns, each by bank reference (the order SQLite gives).
        credits: list[tuple[str, Decimal, str]] = []
        for table in (state.revenue, state.returns):
            credits += sorted(
                (kept.bank_ref, kept.amount, kept.currency)
                for kept, _ in table.values()
                if kept.partner == partner and kept.value_date == day
            )
        return [Booked(ref, amount, currency, ref) for ref, amount, currency in credits]

    def received_in_group(self, group_key: str, limit: int) -> list[StoredOrder]:
        return _received_in_group(self._committed(), group_key, limit)

    def orders_in_state(
        self,
        state: TxState | None = None,
        *,
        partner: str | None = None,
        category: str | None = None,
        currency: str | None = None,
        limit: int | None = None,
    ) -> list[StoredOrder]:
        # As in SQL, an empty filter value filters nothing.
        rows = [
            o
            for o in self._committed().orders.values()
            if (not state or o.state == state)
            and (not partner or o.partner == partner)
            and (not category or o.category == category)
            and (not currency or o.currency == currency)
        ]
        return _limited(sorted(rows, key=lambda o: o.order_id), limit)

    def rejected_by_reason(self) -> dict[str | None, int]:
        orders = self._committed().orders.values()
        return dict(Counter(o.reason_code for o in orders if o.state is TxState.REJECTED))

    def sent_files_by_partner(self) -> dict[str, int]:
        files = self._committed().files.values()
        return dict(Counter(row.file.partner for row in files if row.sent_at is not None))

    def orders_by_partner(self) -> dict[str, int]:
        return dict(Counter(o.partner for o in self._committed().orders.values()))

    # --- the operations console ---

    def orders_by_partner_state(self) -> dict[tuple[str, str], int]:
        orders = self._committed().orders.values()
        return dict(Counter((o.partner, o.state.value) for o in orders))

    def files_by_partner_state(self) -> dict[tuple[str, str], int]:
        files = self._committed().files.values()
        return dict(Counter((row.file.partner, row.state.value) for row in files))

    def search_orders(self, text: str, limit: int = 50) -> list[StoredOrder]:
        found = [
            o
            for o in self._committed().orders.values()
            if text in (o.order_id, o.msg_id) or text.lower() in o.payload.lower()
        ]
        return sorted(found, key=lambda o: o.order_id)[:limit]

    def files(
        self, *, partner: str | None = None, state: FileState | None = None, limit: int = 200
    ) -> list[FileRecord]:
        rows = [
            _file_record(row)
            for row in self._committed().files.values()
            if (partner is None or row.file.partner == partner)
            and (state is None or row.state is state)
        ]
        rows.sort(key=lambda f: (f.created_at, f.msg_id), reverse=True)
        return rows[:limit]

    def file(self, msg_id: str) -> FileRecord | None:
        row = self._committed().files.get(msg_id)
        return _file_record(row) if row else None

    def outbox_messages(self, message_ids: Sequence[str]) -> list[OutboxRecord]:
        wanted = set(message_ids)
        rows = sorted(self._committed().outbox.values(), key=lambda row: row.row_id)
        return [
            OutboxRecord(
                row.message.message_id,
                row.message.exchange,
                row.message.routing_key,
                row.message.body,
                row.created_at,
                row.sent_at,
                row.parked_why,
            )
            for row in rows
            if row.message.message_id in wanted
        ]

    def inbound_files(self, partner: str, since: datetime | None = None) -> list[InboundFileRecord]:
        rows = [
            InboundFileRecord(p, m, row.message_type, row.received_at, row.raw)
            for (p, m), row in self._committed().inbound_files.items()
            if p == partner and (since is None or row.received_at >= since)
        ]
        return sorted(rows, key=lambda r: (r.received_at, r.msg_id))

    def inbound_file(self, partner: str, msg_id: str) -> InboundFileRecord | None:
        row = self._committed().inbound_files.get((partner, msg_id))
        if row is None:
            return None
        return InboundFileRecord(partner, msg_id, row.message_type, row.received_at, row.raw)

    def quarantined_file(self, quarantine_id: int) -> QuarantinedFile | None:
        return next(
            (q for q in self._numbered_quarantine() if q.quarantine_id == quarantine_id), None
        )

    def returns_of(self, order_id: str) -> list[ReturnRecord]:
        kept = sorted(self._committed().returns.values(), key=lambda r: (r[1], r[0].bank_ref))
        return [record for record, _ in kept if record.order_id == order_id]

    def audit_trail(
        self, *, limit: int | None = None, newest_first: bool = False
    ) -> list[AuditRecord]:
        rows = sorted(self._committed().audit, key=lambda r: r.seq, reverse=newest_first)
        return rows if limit is None else rows[:limit]

    def audit_seqs(self, *, limit: int | None = None, newest_first: bool = False) -> list[int]:
        return [row.seq for row in self.audit_trail(limit=limit, newest_first=newest_first)]

    def audit_row(self, seq: int) -> AuditRecord | None:
        return next((row for row in self._committed().audit if row.seq == seq), None)

    def audit_head(self) -> tuple[int, str]:
        return self._committed().audit_head

    def users(self) -> list[ConsoleUser]:
        return sorted(self._committed().users.values(), key=lambda u: u.name)

    def user(self, name: str) -> ConsoleUser | None:
        return self._committed().users.get(name)


def _file_record(row: FileRow) -> FileRecord:
    f = row.file
    return FileRecord(
        f.msg_id, f.partner, f.message_type, row.state, f.nb_of_txs, f.ctrl_sum,
        row.created_at, row.sent_at, row.status_at, row.attempts,
    )  # fmt: skip


# --- the storage ---------------------------------------------------------------------------------


class MemoryStorage:
    """The gateway's database in memory, for unit tests."""

    def __init__(self, *, relay_locks: bool = False) -> None:
        self._lock = threading.RLock()
        self._state = MemoryState()
        self._writing = False
        self._queries = MemoryQueries(lambda: self._state)
        # As PostgreSQL (True) or SQLite (False), for the relay's tests of either way.
        self._relay_locks = relay_locks

    @property
    def relay_locks(self) -> bool:
        return self._relay_locks

    @property
    def overlapping_units(self) -> bool:
        """One unit at a time holds the store."""
        return False

    @property
    def kind(self) -> str:
        return "memory"

    @property
    def queries(self) -> Queries:
        return self._queries

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        return self._unit()

    def run_unit(self, step: Callable[[UnitOfWork], T]) -> T:
        """`step` in a unit of work (in memory nothing is gained by preparing it)."""
        with self._unit() as uow:
            return step(uow)

    @contextmanager
    def _unit(self) -> Iterator[UnitOfWork]:
        """Hold the lock, work on a copy, and commit it only when the block ends normally."""
        with self._lock:
            if self._writing:
                raise RuntimeError("a unit of work is open already in this thread")
            self._writing = True
            tx = _Tx(copy.deepcopy(self._state))
            try:
                yield MemoryUnitOfWork(tx)
                assert tx.state is not None
                self._state = tx.state
            finally:
                tx.state = None
                self._writing = False

    def snapshot(self) -> MemoryState:
        """A copy of the committed state, for tests to inspect."""
        return copy.deepcopy(self._state)

    def describe(self) -> str:
        # Each store its own: the relays keep their holds by it.
        return f"memory:{id(self):x}"

    def schema(self) -> tuple[int, int]:
        """No schema to migrate: always current."""
        return 1, 1

    def upgrade(self) -> list[int]:
        """Nothing to apply."""
        return []

    def claim_instance(self, roles: Sequence[str] = INSTANCE_ROLES) -> None:
        """One process holds the memory: nothing to claim."""

    def clock_offset(self, now: datetime) -> float | None:
        """In this process: no other clock."""
        return None

    def close(self) -> None:
        """Nothing to release."""


class MemoryQuarantine:
    """Refused files' bytes by SHA-256, in memory (the port `QuarantineFiles`, for unit tests)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def keep(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        self.files.setdefault(sha256, bytes(data))
        return sha256

    def read(self, sha256: str) -> bytes | None:
        return self.files.get(sha256)
