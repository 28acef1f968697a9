"""The storage port: what the services ask of the gateway's database, in domain values.

A `Storage` opens units of work (one write transaction each: committed when the block ends,
rolled back on any error) whose repositories change the gateway's state, and offers a read-only
`Queries` port for status, metrics, reports and commands. Three adapters implement it, in
gateway/adapters/persistence/: memory (unit tests), SQLite (the default) and PostgreSQL (several
gateway instances); tests/contract/ holds the behaviour all three must show.

Values cross the port typed: `Decimal` amounts, timezone-aware `datetime`, `date`, the state
enums, ids. Only the adapters turn them into text or columns. Every fault of the database that
may pass (busy, locked, gone, a concurrent change) is raised as `TransientError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

from gateway.domain import audit as audit_chain
from gateway.domain.states import FileState, TxState
from gateway.errors import ConfigError, TransientError

T = TypeVar("T")

AddResult = Literal["new", "duplicate", "conflict"]
# What a partner's exact bytes became when they were taken in before.
SeenAs = Literal["applied", "quarantined"]


class ConcurrentChange(TransientError):  # noqa: N818 - names what happened, as STYLE.md has it
    """Another unit of work changed the same row first: the whole unit is retried."""


class ClaimLost(TransientError):  # noqa: N818 - same reason
    """A claim expired and was taken over before its work was committed: the work is dropped,
    the new holder does it."""


class SchemaTooNew(ConfigError):  # noqa: N818 - same reason
    """The database was upgraded by a newer gateway than this one."""

    @classmethod
    def at(cls, current: int, newest: int, database: str = "the database") -> SchemaTooNew:
        """The refusal of a database at schema version `current`, this gateway knowing up to
        `newest` (every command words it so)."""
        return cls(
            f"{database} was upgraded by a newer gateway: it is at schema version {current},"
            f" newer than this gateway knows ({newest}): run the gateway release that upgraded"
            " it, or a newer one"
        )


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A valid order as intake stores it."""

    order_id: str
    content_hash: str
    payload: str
    partner: str
    group_key: str
    category: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the gateway keeps it, with where it stands."""

    order_id: str
    payload: str
    partner: str
    group_key: str
    category: str
    amount: Decimal
    currency: str
    state: TxState
    msg_id: str | None
    pmt_inf_id: str | None
    status_code: str | None
    reason_code: str | None
    reason_text: str | None
    bank_ref: str | None
    value_date: date | None
    received_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BankAnswer:
    """What a bank said of one order when it moves: kept on the order (None keeps the old)."""

    status_code: str | None = None
    reason_code: str | None = None
    reason_text: str | None = None
    bank_ref: str | None = None
    value_date: date | None = None


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """A pain.001 file as built, before it is sent."""

    msg_id: str
    partner: str
    message_type: str
    nb_of_txs: int
    ctrl_sum: Decimal
    sha256: str


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to publish, written in the same transaction as the change that caused it."""

    message_id: str
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An outbox message not yet confirmed by the broker."""

    row_id: int
    message: OutboxMessage


@dataclass(frozen=True, slots=True)
class WaitingGroup:
    """Received orders under one group key: how many, their partner, the newest one's arrival."""

    group_key: str
    count: int
    partner: str
    newest: datetime


@dataclass(frozen=True, slots=True)
class UnmatchedLine:
    """A line of a verified bank file that could not be applied, with the reason."""

    partner: str
    msg_id: str
    reference: str | None
    reason: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    """A refused inbound file as its row keeps it: its bytes are in the quarantine folder (those
    of a file refused before schema 7 in its row: `Queries.quarantined_raw`)."""

    partner: str
    sha256: str
    size: int
    reason: str
    received_at: datetime
    # The reason's class (`gateway.reasons.ReasonClass` value).
    reason_class: str = "content"
    # The row's number (0 until stored).
    quarantine_id: int = 0


class QuarantineFiles(Protocol):
    """Where the bytes of refused inbound files are kept, by their SHA-256 (not the database:
    a refused file may be as large as a partner's size limit)."""

    def keep(self, data: bytes) -> str:
        """Keep `data` (once, whoever sends it again) and return its SHA-256 in hex."""

    def read(self, sha256: str) -> bytes | None:
        """The kept bytes with this SHA-256, or None."""


@dataclass(frozen=True, slots=True)
class DuplicateAnswer:
    """A bank's "duplicate file" answer (pain.002 group RJCT, reason DUPL) to one of our files:
    it has that MsgId already and refuses the copy. Read back with when it came and the state
    of the file now."""

    partner: str
    msg_id: str
    original_msg_id: str
    reason_text: str | None = None
    received_at: datetime | None = None
    file_state: FileState | None = None


@dataclass(frozen=True, slots=True)
class Revenue:
    """A collection a bank credited to the treasury, by the bank's reference."""

    partner: str
    bank_ref: str
    msg_id: str
    amount: Decimal
    currency: str
    value_date: date | None
    payer: str | None


@dataclass(frozen=True, slots=True)
class ReturnRecord:
    """A settled payment that came back, by the return's bank reference."""

    partner: str
    bank_ref: str
    order_id: str
    msg_id: str
    amount: Decimal
    currency: str
    value_date: date | None
    reason_code: str | None
    reason_text: str | None


@dataclass(frozen=True, slots=True)
class StatementRecord:
    """One account's end-of-day statement, kept as evidence for reconciliation."""

    partner: str
    statement_id: str
    msg_id: str
    account: str
    stmt_date: date
    currency: str | None
    opening: Decimal | None
    closing: Decimal | None
    balances: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class StatementEntryRecord:
    """One entry of a kept statement, by the bank's reference."""

    partner: str
    bank_ref: str
    statement_id: str
    credit_debit: str
    status: str
    amount: Decimal
    currency: str
    value_date: date | None
    end_to_end_id: str | None
    return_reason: str | None


@dataclass(frozen=True, slots=True)
class DlqAction:
    """What an admin did with a parked message (a dropped one keeps its body)."""

    action: str
    queue: str
    message_id: str | None
    reason: str | None
    parked_why: str | None
    body: bytes | None
    headers: dict[str, Any]
    actor: str


class OutboxStatus(StrEnum):
    """Where an outbox message stands (a column of its own, the one truth of "parked")."""

    # Waiting for a relay (or claimed by one).
    PENDING = "pending"
    # Confirmed by the broker, or written to the partner's folder.
    SENT = "sent"
    # Set aside with its reason for an admin (`gateway dlq`): the broker could not take it.
    PARKED = "parked"
    # Taken out of line for good by an admin, with a reason kept in the admin record.
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class ParkedOutbox:
    """An outbox message set aside for an admin (parked, or dropped since)."""

    message_id: str
    exchange: str
    routing_key: str
    parked_at: datetime
    parked_why: str
    body: bytes
    status: OutboxStatus = OutboxStatus.PARKED


@dataclass(frozen=True, slots=True)
class HeldClaim:
    """Work an instance holds: a batch group, or outbox messages (`messages` of them)."""

    kind: str
    key: str
    owner: str
    expires_at: datetime
    messages: int = 0


@dataclass(frozen=True, slots=True)
class Booked:
    """A payment or credit the gateway knows was booked on a day, for reconciliation."""

    reference: str
    amount: Decimal
    currency: str
    bank_ref: str | None
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An admin action to append to the audit trail: who, through what, did what to what."""

    actor: str
    # `console` or `cli`.
    via: str
    # e.g. `dlq.replay`, `dlq.drop`, `quarantine.reprocess`, `keys.rotate`, `users.add`.
    action: str
    # What the action was done to (a message id, a user name, a key), or "".
    subject: str
    # Anything else worth keeping (a reason, a queue), as JSON-able text values.
    detail: dict[str, str]

    def sealed_after(self, head_seq: int, head_hash: str, now: datetime) -> AuditRecord:
        """This action as the row following the head (its seq and hash), sealed; what every
        storage appends."""
        seq, at = head_seq + 1, now.astimezone(UTC)
        detail_json = audit_chain.canonical_detail(self.detail)
        row_hash = audit_chain.seal(
            seq=seq,
            at=at,
            actor=self.actor,
            via=self.via,
            action=self.action,
            subject=self.subject,
            detail_json=detail_json,
            prev_hash=head_hash,
        )
        return AuditRecord(
            seq, at, self.actor, self.via, self.action, self.subject, detail_json,
            head_hash, row_hash,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the audit trail as kept, sealed by the hash of the row before it (see
    gateway/domain/audit.py for the canonical encoding)."""

    seq: int
    at: datetime
    actor: str
    via: str
    action: str
    subject: str
    # The detail as the canonical JSON text it was sealed with.
    detail_json: str
    prev_hash: str
    row_hash: str


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """A person allowed into the operations console, with a role (`viewer` or `operator`)."""

    name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An outbound file and how far it went."""

    msg_id: str
    partner: str
    message_type: str
    state: FileState
    nb_of_txs: int
    ctrl_sum: Decimal
    created_at: datetime
    sent_at: datetime | None
    status_at: datetime | None
    attempts: int


@dataclass(frozen=True, slots=True)
class InboundFileRecord:
    """A verified bank file kept as received."""

    partner: str
    msg_id: str
    message_type: str
    received_at: datetime
    raw: bytes


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An outbox message and where it stands."""

    message_id: str
    exchange: str
    routing_key: str
    body: bytes
    created_at: datetime
    sent_at: datetime | None
    parked_why: str | None


# --- repositories of a unit of work ------------------------------------------------------------


class OrderRepository(Protocol):
    """Payment orders and refused messages."""

    def add(self, order: NewOrder, now: datetime) -> AddResult:
        """Store a new order; same id and hash is a duplicate, same id and other hash a
        conflict."""

    def add_many(self, orders: Sequence[NewOrder], now: datetime) -> list[AddResult]:
        """Store orders read as absent just before, in one statement batch; per order: new, or
        duplicate/conflict when the same id was stored meanwhile (another instance)."""

    def content_hashes(self, order_ids: Sequence[str]) -> dict[str, str]:
        """The content hash of each of these orders that is stored."""

    def add_invalid(
        self, *, subject: str, order_id: str | None, raw: bytes, reason: str, now: datetime
    ) -> bool:
        """Quarantine a refused message; False when the same body was refused before."""

    def get(self, order_id: str) -> StoredOrder | None:
        """One order (held against concurrent changes until the unit ends), or None."""

    def prefetch(self, order_ids: Sequence[str]) -> None:
        """Read these orders ahead in one query (held as `get` holds them): the unit's later
        `get` of any of them needs no query, until a change to orders in the unit."""

    def received_in_group(self, group_key: str, limit: int) -> list[StoredOrder]:
        """Received orders of one group, oldest first."""

    def waiting_groups(self) -> list[WaitingGroup]:
        """Every group of received orders, by key (the batcher decides which are ready)."""

    def move(self, order: StoredOrder, target: TxState, answer: BankAnswer, now: datetime) -> None:
        """Move an order from the state it was read in to `target` (a forward move by
        `can_move`); ConcurrentChange when it moved meanwhile, at the latest when the unit of
        work ends (the write may be sent with the next ones, in one round trip)."""

    def states_in_file(self, order_ids: Sequence[str], msg_id: str) -> dict[str, TxState]:
        """The state of each of these orders that was sent in file msg_id (held against
        concurrent changes until the unit ends, as `get` holds an order)."""

    def move_together(
        self,
        order_ids: Sequence[str],
        source: TxState,
        target: TxState,
        answer: BankAnswer,
        now: datetime,
    ) -> None:
        """Move these orders, each in `source`, to `target` as `move` moves one (a statement
        a thousand orders, not one an order); ConcurrentChange, at the latest when the unit
        ends, when one of them moved meanwhile."""

    def mark_batched(
        self, assignments: Sequence[tuple[str, str]], msg_id: str, now: datetime
    ) -> None:
        """Move received orders (order_id, pmt_inf_id) into file msg_id; ConcurrentChange
        when any of them is no longer received."""

    def ids_in_file(self, msg_id: str) -> list[str]:
        """Ids of the orders sent in one file."""

    def ids_in_group(self, msg_id: str, pmt_inf_id: str) -> list[str]:
        """Ids of the orders sent in one PmtInf of one file."""


class FileRepository(Protocol):
    """Outbound files and their deadlines."""

    def add(self, file: OutboundFile, now: datetime) -> None:
        """Record a file as built."""

    def partner_of(self, msg_id: str) -> str | None:
        """The partner a file was built for, or None for a file we never built."""

    def sent(self, msg_id: str, now: datetime) -> None:
        """A file reached its partner's channel: the file and its batched orders are sent."""

    def set_status(self, msg_id: str, state: FileState, now: datetime) -> None:
        """The status a partner gave a whole file (a rejection is never overwritten)."""

    def status_reported(self, msg_id: str, now: datetime) -> None:
        """A status report on the file arrived (the first one's time is kept)."""

    def overdue_unflagged(self, partner: str, sent_before: datetime) -> list[tuple[str, datetime]]:
        """(msg_id, sent_at) of files without any status report sent before the limit and not
        flagged yet, oldest first."""

    def flag_overdue(self, msg_id: str, partner: str, now: datetime) -> bool:
        """Flag a file overdue; False when it was flagged already (by any instance) or has had
        a status report meanwhile (one being applied is waited for: its flag would be left
        for nothing to clear)."""

    def clear_overdue(self, msg_id: str, partner: str, now: datetime) -> datetime | None:
        """Clear a file's overdue flag once: when it was flagged, or None."""


class InboundRepository(Protocol):
    """Bank files taken in, refused, and the lines that could not be applied."""

    def first_sight(
        self, partner: str, msg_id: str, message_type: str, raw: bytes, now: datetime
    ) -> bool:
        """Keep an inbound file; False when this partner already sent this very file. The same
        MsgId with other content raises InvalidMessage."""

    def known_file(self, partner: str, msg_id: str, sha256: str) -> bool:
        """Whether this partner's file was kept already (as `first_sight` would say, without
        keeping it), by the SHA-256 of its bytes (hex: a large file applied in many steps is
        hashed once); the same MsgId with other content raises InvalidMessage."""

    def quarantine(
        self,
        partner: str,
        sha256: str,
        size: int,
        reason: str,
        now: datetime,
        reason_class: str | None = None,
    ) -> bool:
        """Keep the row of a refused file (its bytes are in the quarantine folder, under
        `sha256`) with its reason and the reason's class (a `ReasonClass` value; None: classed
        from the reason's wording); False when this copy is kept already."""

    def unmatched(self, line: UnmatchedLine, now: datetime) -> None:
        """Keep a line that could not be applied."""

    def entry_applied(self, partner: str, bank_ref: str) -> bool:
        """True when an entry with this bank reference was applied before."""

    def applied_entries(self, partner: str, bank_refs: Sequence[str]) -> set[str]:
        """Those of these bank references whose entries were applied before (one query)."""

    def add_entry(
        self, partner: str, bank_ref: str, msg_id: str, outcome: str, now: datetime
    ) -> None:
        """Remember an applied entry by its bank reference."""

    def record_duplicate_answer(self, answer: DuplicateAnswer, now: datetime) -> bool:
        """Keep a bank's duplicate-file answer, which moves nothing; False when this answer
        (partner + MsgId) is kept already."""


class OutboxRepository(Protocol):
    """Messages written with the change that caused them, sent by a relay."""

    def enqueue(self, message: OutboxMessage, now: datetime) -> bool:
        """Add a message; False when the same message id is there already."""

    def add(self, message: OutboxMessage, now: datetime) -> None:
        """Add a message, or leave the one with its id as it is, without waiting to know which
        (the write may be sent with the next ones, in one round trip)."""

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
        """Claim up to `limit` pending messages, files to banks first, each kind oldest first,
        for `owner` until `until`; messages claimed by another owner whose claim has not
        expired are skipped. With `urgent_only`, only files to banks carrying an urgent order
        (header `priority: urgent`): the urgent lane never waits behind a bulk run's files.

        Files for `file_partners` (reached by file exchange, not by the broker) are left out,
        or, with `files_only`, are the only messages claimed."""

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
        """The messages `claim` would claim, held by this unit's row locks instead of a written
        claim: other units skip them until this one ends, and nothing is written to take or
        give them back. The unit is to stay open while they are published, and to mark them
        before it ends; if it stays idle longer than `hold_for`, the database ends it (the
        locks go, and another relay sends the messages). Where the storage has no
        `relay_locks` (see there) it is a plain read, and the relay holds what it read."""

    def mark_sent(self, row_ids: Sequence[int], now: datetime) -> None:
        """Mark messages confirmed by the broker (or written to a partner's folder)."""

    def release(self, row_ids: Sequence[int], owner: str) -> None:
        """Give up `owner`'s claims on messages that were not sent, for any relay to try again
        (a claim another relay has taken over since stays its own)."""

    def park(self, row_id: int, reason: str, now: datetime) -> None:
        """Set aside a pending message the broker cannot route, with the reason (a message
        sent meanwhile, by another instance, stays sent)."""

    def parked(self, message_ids: Sequence[str] | None = None) -> list[ParkedOutbox]:
        """The parked messages (those named, or all), oldest first, held against concurrent
        changes until the unit ends."""

    def unpark(self, message_id: str) -> bool:
        """Put a parked message back in line; False when there is no such parked message."""

    def drop(self, message_id: str, now: datetime) -> bool:
        """Take a parked message out of line for good (kept, status dropped); False when there
        is no such parked message."""


class EvidenceRepository(Protocol):
    """What banks booked: revenue, returns, statements."""

    def add_revenue(self, revenue: Revenue, now: datetime) -> bool:
        """Record a collection; False when this bank reference was seen before."""

    def add_return(self, returned: ReturnRecord, now: datetime) -> None:
        """Record a payment that came back (a repeated reference is kept once)."""

    def add_statement(self, statement: StatementRecord, now: datetime) -> bool:
        """Keep a statement; False when this partner sent this statement id before."""

    def add_statement_entry(self, entry: StatementEntryRecord) -> bool:
        """Keep one statement entry; False when its bank reference is kept already."""


class AdminRepository(Protocol):
    """What admins did."""

    def record_dlq_action(self, action: DlqAction, now: datetime) -> None:
        """Keep what an admin did with a parked message."""


class AuditRepository(Protocol):
    """The append-only, hash-chained trail of admin actions."""

    def append(self, entry: AuditEntry, now: datetime) -> AuditRecord:
        """Append one action after the last row, sealed with that row's hash. Appends are
        serialised (the chain's head is locked until the unit ends), so several instances
        never fork the chain."""


class UserRepository(Protocol):
    """The console's users."""

    def add(self, name: str, role: str, password_hash: str, now: datetime) -> bool:
        """Add a user; False when the name is taken."""

    def set_disabled(self, name: str, disabled: bool, now: datetime) -> bool:
        """Disable (or enable again) a user; False when there is no such user."""


class CounterRepository(Protocol):
    """Named sequences."""

    def next_value(self, name: str) -> int:
        """The next number of a named counter, never handed out twice."""


class ClaimRepository(Protocol):
    """Claims on work shared by several gateway instances (e.g. a batch group)."""

    def claim(self, kind: str, key: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take the work for `owner` until `until`: True when it was free, expired or ours."""

    def holds(self, kind: str, key: str, owner: str, now: datetime) -> bool:
        """True when `owner` still holds the claim (held against takeover until the unit
        ends)."""

    def extend(self, kind: str, key: str, owner: str, until: datetime) -> bool:
        """Hold a claim `owner` still holds until `until`; False when it holds it no longer
        (taken over, or released: then nothing is taken)."""

    def release(self, kind: str, key: str, owner: str) -> None:
        """Give the work up (nothing when another owner holds it now)."""


class UnitOfWork(Protocol):
    """One write transaction and its repositories."""

    @property
    def orders(self) -> OrderRepository:
        """The unit's orders repository."""

    @property
    def files(self) -> FileRepository:
        """The unit's files repository."""

    @property
    def inbound(self) -> InboundRepository:
        """The unit's inbound repository."""

    @property
    def outbox(self) -> OutboxRepository:
        """The unit's outbox repository."""

    @property
    def evidence(self) -> EvidenceRepository:
        """The unit's evidence repository."""

    @property
    def admin(self) -> AdminRepository:
        """The unit's admin repository."""

    @property
    def counters(self) -> CounterRepository:
        """The unit's counters repository."""

    @property
    def claims(self) -> ClaimRepository:
        """The unit's claims repository."""

    @property
    def audit(self) -> AuditRepository:
        """The unit's audit trail."""

    @property
    def users(self) -> UserRepository:
        """The unit's console users."""


# --- the read-only port ------------------------------------------------------------------------


class Queries(Protocol):
    """Read-only questions for status, metrics, reports and commands."""

    def order(self, order_id: str) -> StoredOrder | None:
        """One order, or None."""

    def orders_by_state(self) -> dict[str, int]:
        """Orders per state (stored orders only)."""

    def invalid_count(self) -> int:
        """Messages refused at intake."""

    def files_by_state(self) -> dict[str, int]:
        """Outbound files per state."""

    def outbox_pending(self) -> tuple[int, datetime | None]:
        """Messages waiting to be sent, and when the oldest of them was written."""

    def outbox_parked(self) -> list[ParkedOutbox]:
        """Outbox messages parked for an admin (status parked), oldest first."""

    def outbox_by_status(self) -> dict[OutboxStatus, int]:
        """Outbox messages not sent, per status: pending, parked and dropped (0 when none;
        sent ones are not counted, there are too many)."""

    def quarantined_count(self) -> int:
        """Inbound files refused whole."""

    def quarantine_reasons(self) -> list[tuple[str, str, int]]:
        """(partner, reason, count) of refused inbound files."""

    def quarantined(self, limit: int = 200) -> list[QuarantinedFile]:
        """The latest refused inbound files, newest first."""

    def quarantined_raw(self, sha256: str) -> bytes | None:
        """The bytes of a file quarantined before files were kept in the quarantine folder
        (schema 7 and later keep none in the database)."""

    def quarantine_by_class(self) -> list[tuple[str, str, int]]:
        """(partner, reason class, count) of refused inbound files."""

    def unmatched_by_partner(self) -> dict[str, int]:
        """Lines kept unmatched, per partner."""

    def applied_by_type(self) -> list[tuple[str, str, int]]:
        """(partner, message type, count) of bank files taken in."""

    def duplicate_answers(self, limit: int = 20) -> list[DuplicateAnswer]:
        """The latest duplicate-file answers, newest first, with their file's state now."""

    def duplicate_answers_by_partner(self) -> dict[str, int]:
        """Duplicate-file answers kept, per partner."""

    def claims(self) -> list[HeldClaim]:
        """Work claimed by instances and not finished: batch groups, and per owner the outbox
        messages claimed but not yet sent, soonest expiry first."""

    def overdue_files(self, partner: str, sent_before: datetime) -> list[str]:
        """Files of a partner sent before the limit without any status report."""

    def seen_inbound(self, partner: str, sha256: str) -> tuple[SeenAs, str | None] | None:
        """Whether these exact bytes from a partner were taken in: applied, or quarantined
        with its reason; None when never seen."""

    def statement_days(self) -> list[date]:
        """Days for which statements are kept."""

    def statements_of_day(self, day: date, partner: str | None = None) -> list[StatementRecord]:
        """Statements kept for a day (of one partner, or all), by partner and account."""

    def statement_entries(self, partner: str, statement_id: str) -> list[StatementEntryRecord]:
        """A kept statement's entries, by bank reference."""

    def booked_payments(self, partner: str, day: date) -> list[Booked]:
        """Orders settled (or settled then returned) with this value date."""

    def booked_credits(self, partner: str, day: date) -> list[Booked]:
        """Revenue collected and returns received with this value date."""

    def received_in_group(self, group_key: str, limit: int) -> list[StoredOrder]:
        """Received orders of one group, oldest first, as committed (the batcher reads a
        claimed group's orders here, outside any unit of work and its write lock)."""

    def orders_in_state(
        self,
        state: TxState | None = None,
        *,
        partner: str | None = None,
        category: str | None = None,
        currency: str | None = None,
        limit: int | None = None,
    ) -> list[StoredOrder]:
        """Orders (in one state, or all), narrowed by partner, category or currency, by id."""

    def rejected_by_reason(self) -> dict[str | None, int]:
        """Rejected orders per reason code."""

    def sent_files_by_partner(self) -> dict[str, int]:
        """Files that reached their partner, per partner."""

    def orders_by_partner(self) -> dict[str, int]:
        """Orders per partner."""

    # --- the operations console ---

    def orders_by_partner_state(self) -> dict[tuple[str, str], int]:
        """Orders per (partner, state)."""

    def files_by_partner_state(self) -> dict[tuple[str, str], int]:
        """Outbound files per (partner, state)."""

    def search_orders(self, text: str, limit: int = 50) -> list[StoredOrder]:
        """Orders whose id or MsgId is `text`, or whose payload contains `text` (an account
        number, a name), by id."""

    def files(
        self, *, partner: str | None = None, state: FileState | None = None, limit: int = 200
    ) -> list[FileRecord]:
        """Outbound files, newest first, narrowed by partner or state."""

    def file(self, msg_id: str) -> FileRecord | None:
        """One outbound file, or None."""

    def outbox_messages(self, message_ids: Sequence[str]) -> list[OutboxRecord]:
        """The outbox messages with these ids (a file's by its MsgId, a posting's by its
        posting id), oldest first."""

    def inbound_files(self, partner: str, since: datetime | None = None) -> list[InboundFileRecord]:
        """A partner's kept bank files received at or after `since`, oldest first."""

    def inbound_file(self, partner: str, msg_id: str) -> InboundFileRecord | None:
        """One kept bank file, or None."""

    def quarantined_file(self, quarantine_id: int) -> QuarantinedFile | None:
        """One refused bank file, or None."""

    def returns_of(self, order_id: str) -> list[ReturnRecord]:
        """Returns received for one order."""

    def audit_trail(
        self, *, limit: int | None = None, newest_first: bool = False
    ) -> list[AuditRecord]:
        """The audit trail by sequence (the newest `limit` rows, newest first, on request)."""

    def audit_seqs(self, *, limit: int | None = None, newest_first: bool = False) -> list[int]:
        """The audit trail's seqs, in the order and number `audit_trail` reads its rows."""

    def audit_row(self, seq: int) -> AuditRecord | None:
        """One row of the audit trail, by its seq (None when there is none)."""

    def audit_head(self) -> tuple[int, str]:
        """The sequence number and hash of the last row appended (0 and the zero hash when the
        trail is empty), kept apart from the rows so that removing the last rows shows."""

    def users(self) -> list[ConsoleUser]:
        """The console's users, by name."""

    def user(self, name: str) -> ConsoleUser | None:
        """One console user, or None."""


# What a gateway process can run (`gateway run --role`): `main` takes orders in, builds and
# sends files and postings; `reports` applies the banks' reports and notifications from the
# broker. One process runs both by default; each may run in processes of their own (on SQLite
# one process runs main, any number reports).
MAIN_ROLE = "main"
INSTANCE_ROLES = (MAIN_ROLE, "reports")


class Storage(Protocol):
    """The gateway's database."""

    @property
    def kind(self) -> str:
        """`memory`, `sqlite` or `postgresql`."""

    @property
    def queries(self) -> Queries:
        """The read-only port."""

    @property
    def relay_locks(self) -> bool:
        """Whether the outbox relay holds the messages it publishes by the row locks of one
        unit of work, open from taking them to marking them (`OutboxRepository.lock_pending`):
        PostgreSQL, where a lock costs a fraction of a written claim and a held transaction
        stops no one else. Otherwise every relay on the store runs in one process (SQLite,
        whose one main-role process `claim_instance` ensures, and whose one write lock a held
        unit would keep from every writer; the memory store): a relay reads the messages
        (`lock_pending` in a unit that only reads), the process holds them in memory while
        they are published, and a second unit marks them."""

    @property
    def overlapping_units(self) -> bool:
        """Whether one thread may hold two units of work open at once, each on a connection
        of its own (PostgreSQL): the relay then takes its next batch, by the row locks of a
        second unit, while the first's messages are still being confirmed. SQLite has one
        write lock, the memory store one unit at a time."""

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """A write transaction: committed when the block ends, rolled back on any error."""

    def run_unit(self, step: Callable[[UnitOfWork], T]) -> T:
        """`step` in a write transaction, committed when it returns; what it returns.

        SQLite, whose one write lock every unit of every process waits for, runs the step
        before taking it: its reads on a snapshot, its writes held. Under the lock, what the
        step's decisions rest on is read again and the writes are made; if any of it changed
        meanwhile, or the step needed a write's result at once, the step is run again, under
        the lock. A step may therefore run twice: it must keep nothing across runs but what it
        returns (a log line may be said twice). A step that only read (no write held, nothing
        registered to read again) returns what its snapshot held, without taking the lock."""

    def describe(self) -> str:
        """Where the database is, fit for a log line (never a password)."""

    def schema(self) -> tuple[int, int]:
        """The schema version applied to the database, and the newest this gateway ships."""

    def upgrade(self) -> list[int]:
        """Apply the schema migrations the database lacks; the versions applied.
        SchemaTooNew when the database is newer than this gateway."""

    def claim_instance(self, roles: Sequence[str] = INSTANCE_ROLES) -> None:
        """Register this process as the gateway instance running `roles` on the database:
        SQLite takes one process running the main role (a second is refused with
        ConfigError) and any number running reports alone, PostgreSQL any number of each."""

    def clock_offset(self, now: datetime) -> float | None:
        """Seconds the database server's clock is ahead of `now` (behind: negative), where the
        database runs on a server of its own; None where it runs in this process (SQLite)."""

    def close(self) -> None:
        """Release connections."""
