"""The storage port in SQL, shared by the SQLite and PostgreSQL adapters.

The statements are written once, in the SQL both databases speak (`?` placeholders, which the
PostgreSQL executor turns into `%s`; `ON CONFLICT`; `RETURNING`). What differs is behind the
`Executor`: how values are passed (SQLite stores text, PostgreSQL its own types), and the row
locks (`FOR UPDATE` and `SKIP LOCKED` on PostgreSQL; SQLite has one writer at a time).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from gateway.domain import audit as audit_chain
from gateway.domain.states import FileState, TxState, can_move
from gateway.errors import InvalidMessage
from gateway.reasons import ReasonClass
from gateway.reasons import reason_class as classify
from gateway.service.channels import PRIORITY_HEADER, TO_BANK_EXCHANGE
from gateway.service.ports import (
    AddResult,
    AuditEntry,
    AuditRecord,
    BankAnswer,
    Booked,
    ConcurrentChange,
    ConsoleUser,
    DlqAction,
    DuplicateAnswer,
    FileRecord,
    HeldClaim,
    InboundFileRecord,
    NewOrder,
    OutboundFile,
    OutboxMessage,
    OutboxRecord,
    OutboxStatus,
    ParkedOutbox,
    PendingMessage,
    QuarantinedFile,
    ReturnRecord,
    Revenue,
    SeenAs,
    StatementEntryRecord,
    StatementRecord,
    StoredOrder,
    UnmatchedLine,
    WaitingGroup,
)

Row = tuple[Any, ...]

ORDER_COLUMNS = (
    "order_id, payload, partner, group_key, category, amount, currency, state, msg_id, "
    "pmt_inf_id, status_code, reason_code, reason_text, bank_ref, value_date, received_at, "
    "updated_at"
)
# The orders with their stored payloads (kept in a table of their own: an order's state changes
# three times, and each change rewrote the payload with the row).
ORDERS = "orders JOIN order_payloads USING (order_id)"
# Where `state` is among ORDER_COLUMNS.
_STATE = 7
FILE_COLUMNS = (
    "msg_id, partner, message_type, state, nb_of_txs, ctrl_sum, created_at, sent_at,"
    " status_at, attempts"
)
AUDIT_COLUMNS = "seq, at, actor, via, action, subject, detail, prev_hash, row_hash"
USER_COLUMNS = "name, role, password_hash, disabled, created_at, updated_at"
# The outbox's statuses as SQL literals (a literal lets the (status, id) index serve).
PENDING, SENT = f"'{OutboxStatus.PENDING}'", f"'{OutboxStatus.SENT}'"
PARKED, DROPPED = f"'{OutboxStatus.PARKED}'", f"'{OutboxStatus.DROPPED}'"
# The condition of the outbox's indexes (migration 10): the messages not sent yet, a few among
# millions sent. A query that uses them states it as it stands here (SQLite's planner takes a
# partial index only for a condition written as the index's).
UNSENT = f"status <> {SENT}"
PARKED_COLUMNS = "message_id, exchange, routing_key, parked_at, parked_why, body, status"


def parked_from_row(row: Row) -> ParkedOutbox:
    """A row of PARKED_COLUMNS as a ParkedOutbox."""
    message_id, exchange, key, at, why, body, status = row
    return ParkedOutbox(
        message_id, exchange, key, as_time(at), why or "", bytes(body), OutboxStatus(status)
    )


class Executor(Protocol):
    """One connection inside one transaction, as the repositories use it."""

    # " FOR UPDATE" where the database locks rows read in a transaction, else "".
    lock: str
    # " FOR UPDATE SKIP LOCKED" where rows locked by others can be skipped, else "".
    skip_locked: str
    # The join that keeps `each`'s subquery the outer loop: SQLite's CROSS JOIN (its planner
    # could otherwise read the table and run the subquery for every row), PostgreSQL's JOIN.
    keyed_join: str

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute; the number of rows changed."""

    def each(self, texts: Sequence[str]) -> tuple[str, Any]:
        """A subquery of one column `value`, a row per text, and the one argument it takes:
        joined (`keyed_join`) to a table by its key, each text is looked up by the key whatever
        the table's statistics say (an `IN` list of many values on a table not analyzed yet
        looks to PostgreSQL like the whole table, and is read whole)."""

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Execute once per row of arguments; the number of rows changed."""

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row, or None."""

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Every row."""

    def later(
        self,
        sql: str,
        args: Sequence[Any] = (),
        *,
        expect: int | None = None,
        error: Exception | None = None,
    ) -> None:
        """Execute a write whose result nothing waits for, at the latest before the next
        statement that reads or the commit (held, one `executemany` a statement: `HeldWrites`);
        `error` is raised then if the rows changed are not `expect`."""

    def flush(self) -> None:
        """Execute the writes `later` holds (before a commit)."""

    def end_idle_after(self, seconds: float) -> None:
        """Have the database close this unit's session, its transaction rolled back, if it
        stays idle (no statement running) longer than `seconds` (PostgreSQL; nowhere else)."""

    # True where the unit's reads are made before the write lock and its writes held until it
    # is taken (`Storage.run_unit` on SQLite): what a decision of the unit rests on is then
    # read again under the lock (`check`), and a write whose result the unit needs at once
    # (`run`) has the unit run again under the lock from the start.
    prepared: bool

    def check(self, sql: str, args: Sequence[Any], rows: list[Row]) -> None:
        """A prepared unit is kept only if `sql` still returns `rows` under the write lock
        (else it is run again under the lock); nothing where the unit reads under the lock."""


# A write held by `Executor.later`: its arguments, the rows it must change, the error if not.
Held = tuple[tuple[Any, ...], int | None, Exception | None]


class HeldWrites:
    """Writes nothing waits for (`Executor.later`), sent together: one batch per statement
    (the statement parsed once), each statement's rows in the order they were held. The held
    writes touch rows nothing else held touches (a move, a posting, an applied entry, an order's
    payload), or commute (a file's status and the time it was reported), so their order across
    statements is free. `expect` is the number of rows a write must change (one for a
    guarded move, a thousand for a thousand orders moved together), so that a batch's rows
    changed add up to what its rows expect."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, bool], list[Held]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def add(
        self, sql: str, args: Sequence[Any], expect: int | None, error: Exception | None
    ) -> None:
        self._held.setdefault((sql, expect is not None), []).append((tuple(args), expect, error))

    def send(
        self,
        execute_many: Callable[[str, list[tuple[Any, ...]]], int],
        mismatch: Callable[[list[Held], int], Exception] | None = None,
    ) -> None:
        """Execute every batch; the first batch some of whose writes changed fewer rows than
        they expect raises what `mismatch` makes of them and the number missing (by default
        the writes' own error: `_mismatch_error`)."""
        held, self._held = self._held, {}
        for (sql, checked), rows in held.items():
            changed = execute_many(sql, [args for args, _, _ in rows])
            expected = sum(expect or 0 for _, expect, _ in rows)
            if checked and changed != expected:
                raise (mismatch or _mismatch_error)(rows, expected - changed)


def _mismatch_error(rows: list[Held], missing: int) -> Exception:
    """The error of a batch of held writes some of which changed no row: the write's own error
    when the batch was one write, else one of its kind saying how many (which ones, a batch
    does not tell)."""
    errors = [error for _, _, error in rows if error is not None]
    if len(rows) == 1 and errors:
        return errors[0]
    kind = type(errors[0]) if errors else RuntimeError
    return kind(f"{missing} of {len(rows)} writes found their row changed meanwhile")


# The batcher's question, up to five times a second: each group of received orders, its partner,
# count and newest arrival. Answered from the index orders_waiting (0011) of the orders in no
# file yet, whose condition (`msg_id IS NULL`) it states, as SQLite's planner requires.
WAITING_GROUPS = (
    "SELECT group_key, partner, COUNT(*), MAX(received_at) FROM orders"
    " WHERE msg_id IS NULL AND state = ? GROUP BY group_key, partner ORDER BY group_key"
)


# A file's orders, found by its msg_id in orders_by_msg, the index of the orders in files
# (0011: `WHERE msg_id IS NOT NULL`, which `msg_id = ?` implies on both databases).
FILE_ORDER_IDS = "SELECT order_id FROM orders WHERE msg_id = ? ORDER BY order_id"
FILE_ORDERS_MOVED = "UPDATE orders SET state = ?, updated_at = ? WHERE msg_id = ? AND state = ?"


def mark_batched_statement(count: int) -> str:
    """Move `count` orders, named by id, from one state (the last parameter before the ids) to
    batched in a file.

    The orders are found by their ids: `IS TRUE` keeps the state out of the index choice. Both
    databases otherwise walked every received order in the state index of 0009 (tens of
    thousands during a bulk intake) for each thousand ids."""
    marks = ", ".join("?" * count)
    return (
        "UPDATE orders SET state = ?, msg_id = ?, pmt_inf_id = ?, updated_at = ?"  # noqa: S608 - placeholders only
        f" WHERE (state = ?) IS TRUE AND order_id IN ({marks})"
    )


# An order's move: its new state and time, and the bank's answer (None keeps what was there).
_MOVE = (
    "UPDATE orders SET state = ?, updated_at = ?,"
    " status_code = COALESCE(?, status_code), reason_code = COALESCE(?, reason_code),"
    " reason_text = COALESCE(?, reason_text), bank_ref = COALESCE(?, bank_ref),"
    " value_date = COALESCE(?, value_date)"
)


def _move_values(target: TxState, answer: BankAnswer, now: datetime) -> tuple[Any, ...]:
    """The values of `_MOVE`'s placeholders."""
    return (
        target.value,
        now,
        answer.status_code,
        answer.reason_code,
        answer.reason_text,
        answer.bank_ref,
        answer.value_date,
    )


def move_together_statement(count: int) -> str:
    """Move `count` orders, named by id, from one state to another as `SqlOrders.move` moves
    one: found by their ids, as in `mark_batched_statement`."""
    marks = ", ".join("?" * count)
    return f"{_MOVE} WHERE (state = ?) IS TRUE AND order_id IN ({marks})"


# --- reading columns back into domain values ---------------------------------------------------


def as_time(value: Any) -> datetime:
    """A stored time (SQLite text or a PostgreSQL timestamptz) as an aware datetime."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_opt_time(value: Any) -> datetime | None:
    """A stored time or NULL."""
    return None if value is None else as_time(value)


def as_day(value: Any) -> date | None:
    """A stored date (text or a date) or NULL."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def as_money(value: Any) -> Decimal:
    """A stored amount (text or numeric) as an exact Decimal."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def as_opt_money(value: Any) -> Decimal | None:
    """A stored amount or NULL."""
    return None if value is None else as_money(value)


def order_from_row(row: Row) -> StoredOrder:
    """A row of ORDER_COLUMNS as a StoredOrder."""
    return StoredOrder(
        order_id=row[0],
        payload=row[1],
        partner=row[2],
        group_key=row[3],
        category=row[4],
        amount=as_money(row[5]),
        currency=row[6],
        state=TxState(row[7]),
        msg_id=row[8],
        pmt_inf_id=row[9],
        status_code=row[10],
        reason_code=row[11],
        reason_text=row[12],
        bank_ref=row[13],
        value_date=as_day(row[14]),
        received_at=as_time(row[15]),
        updated_at=as_time(row[16]),
    )


def file_from_row(row: Row) -> FileRecord:
    """A row of FILE_COLUMNS as a FileRecord."""
    return FileRecord(
        msg_id=row[0],
        partner=row[1],
        message_type=row[2],
        state=FileState(row[3]),
        nb_of_txs=int(row[4]),
        ctrl_sum=as_money(row[5]),
        created_at=as_time(row[6]),
        sent_at=as_opt_time(row[7]),
        status_at=as_opt_time(row[8]),
        attempts=int(row[9]),
    )


def audit_from_row(row: Row) -> AuditRecord:
    """A row of AUDIT_COLUMNS as an AuditRecord."""
    return AuditRecord(
        seq=int(row[0]),
        at=as_time(row[1]),
        actor=row[2],
        via=row[3],
        action=row[4],
        subject=row[5],
        detail_json=row[6],
        prev_hash=row[7],
        row_hash=row[8],
    )


def user_from_row(row: Row) -> ConsoleUser:
    """A row of USER_COLUMNS as a ConsoleUser."""
    return ConsoleUser(row[0], row[1], row[2], bool(row[3]), as_time(row[4]), as_time(row[5]))


# --- repositories --------------------------------------------------------------------------------


# Orders read ahead in one unit of work, by id (None: not stored); any change to orders in the
# unit drops what it may have made stale.
ReadAhead = dict[str, StoredOrder | None]


def received_in_group(ex: Executor, group_key: str, limit: int) -> list[StoredOrder]:
    """A group's received orders, oldest first (in a unit of work or as committed)."""
    rows = ex.all(
        f"SELECT {ORDER_COLUMNS} FROM {ORDERS} WHERE msg_id IS NULL AND state = ?"  # noqa: S608 - fixed columns
        " AND group_key = ? ORDER BY received_at, order_id LIMIT ?",
        (TxState.RECEIVED.value, group_key, limit),
    )
    return [order_from_row(row) for row in rows]


_KEEP_PAYLOAD = (
    "INSERT INTO order_payloads (order_id, payload) VALUES (?, ?) ON CONFLICT (order_id) DO NOTHING"
)


def _added(known: str | None, content_hash: str) -> AddResult:
    """What adding an order is, by the content hash stored under its id before (if any)."""
    if known is None:
        return "new"
    return "duplicate" if known == content_hash else "conflict"


class SqlOrders:
    """Payment orders and refused messages."""

    def __init__(self, ex: Executor, read_ahead: ReadAhead | None = None) -> None:
        self._ex = ex
        self._ahead: ReadAhead = {} if read_ahead is None else read_ahead

    def prefetch(self, order_ids: Sequence[str]) -> None:
        ids = [i for i in dict.fromkeys(order_ids) if i and i not in self._ahead]
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            rows = self._ex.all(
                f"SELECT {ORDER_COLUMNS} FROM {ORDERS} WHERE order_id IN ({marks})"  # noqa: S608 - fixed columns, placeholders
                f" ORDER BY order_id{self._ex.lock}",
                part,
            )
            self._ahead.update(dict.fromkeys(part))
            self._ahead.update((row[0], order_from_row(row)) for row in rows)
            self._check_states(part, [(row[0], row[_STATE]) for row in rows])

    def _check_states(self, order_ids: Sequence[str], states: list[Row]) -> None:
        """In a prepared unit, the orders read keep their states until its writes are made (the
        decisions taken on them stand): `states` are the (order_id, state) pairs read for
        `order_ids`, checked again by id."""
        if not self._ex.prepared:
            return
        marks = ", ".join("?" * len(order_ids))
        self._ex.check(
            f"SELECT order_id, state FROM orders WHERE order_id IN ({marks}) ORDER BY order_id",  # noqa: S608 - placeholders only
            order_ids,
            sorted(states),
        )

    def add(self, order: NewOrder, now: datetime) -> AddResult:
        self._ahead.pop(order.order_id, None)
        inserted = self._ex.run(
            "INSERT INTO orders (order_id, content_hash, partner, group_key, category,"
            " amount, currency, state, received_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
            (
                order.order_id,
                order.content_hash,
                order.partner,
                order.group_key,
                order.category,
                order.amount,
                order.currency,
                TxState.RECEIVED.value,
                now,
                now,
            ),
        )
        if inserted:
            self._ex.later(_KEEP_PAYLOAD, (order.order_id, order.payload))
            return "new"
        row = self._ex.one("SELECT content_hash FROM orders WHERE order_id = ?", (order.order_id,))
        return "duplicate" if row is not None and row[0] == order.content_hash else "conflict"

    def add_many(self, orders: Sequence[NewOrder], now: datetime) -> list[AddResult]:
        if not orders:
            return []
        for order in orders:
            self._ahead.pop(order.order_id, None)
        before = self.content_hashes([o.order_id for o in orders])
        absent = [o for o in orders if o.order_id not in before]
        insert = (
            "INSERT INTO orders (order_id, content_hash, partner, group_key, category,"
            " amount, currency, state, received_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING"
        )
        rows = [
            (
                o.order_id,
                o.content_hash,
                o.partner,
                o.group_key,
                o.category,
                o.amount,
                o.currency,
                TxState.RECEIVED.value,
                now,
                now,
            )
            for o in absent
        ]
        if self._ex.prepared:
            # Read as absent: each is stored under the lock only if it still is (an order
            # stored meanwhile has the unit run again, under the lock, to be told apart).
            error = ConcurrentChange("an order of the chunk was stored meanwhile")
            for row, order in zip(rows, absent, strict=True):
                self._ex.later(insert, row, expect=1, error=error)
                payload = (order.order_id, order.payload)
                self._ex.later(_KEEP_PAYLOAD, payload, expect=1, error=error)
            return [_added(before.get(o.order_id), o.content_hash) for o in orders]
        inserted = self._ex.run_many(insert, rows)
        for order in absent:  # an order stored meanwhile by another instance has its own
            self._ex.later(_KEEP_PAYLOAD, (order.order_id, order.payload))
        # Stored meanwhile by another instance (PostgreSQL): other content is a conflict; the
        # same content is kept once, whoever stored it.
        after = (
            before if inserted == len(absent) else self.content_hashes([o.order_id for o in absent])
        )
        results: list[AddResult] = []
        for order in orders:
            known = before.get(order.order_id)
            if known is not None:
                results.append(_added(known, order.content_hash))
            else:
                stored = after.get(order.order_id, order.content_hash)
                results.append("new" if stored == order.content_hash else "conflict")
        return results

    def content_hashes(self, order_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(order_ids))
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            rows = self._ex.all(
                f"SELECT order_id, content_hash FROM orders WHERE order_id IN ({marks})",  # noqa: S608 - placeholders only
                part,
            )
            found.update((str(order_id), str(digest)) for order_id, digest in rows)
        return found

    def add_invalid(
        self, *, subject: str, order_id: str | None, raw: bytes, reason: str, now: datetime
    ) -> bool:
        return (
            self._ex.run(
                "INSERT INTO invalid_orders (subject, order_id, raw, reason, received_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject) DO NOTHING",
                (subject, order_id, raw, reason, now),
            )
            == 1
        )

    def get(self, order_id: str) -> StoredOrder | None:
        if order_id in self._ahead:
            return self._ahead[order_id]
        row = self._ex.one(
            f"SELECT {ORDER_COLUMNS} FROM {ORDERS} WHERE order_id = ?{self._ex.lock}",  # noqa: S608 - fixed columns
            (order_id,),
        )
        self._check_states([order_id], [(row[0], row[_STATE])] if row else [])
        return order_from_row(row) if row else None

    def received_in_group(self, group_key: str, limit: int) -> list[StoredOrder]:
        return received_in_group(self._ex, group_key, limit)

    def waiting_groups(self) -> list[WaitingGroup]:
        rows = self._ex.all(WAITING_GROUPS, (TxState.RECEIVED.value,))
        return [
            WaitingGroup(key, int(count), partner, as_time(newest))
            for key, partner, count, newest in rows
        ]

    def move(self, order: StoredOrder, target: TxState, answer: BankAnswer, now: datetime) -> None:
        if not can_move(order.state, target):
            raise ValueError(f"order {order.order_id} cannot move from {order.state} to {target}")
        self._ahead.pop(order.order_id, None)
        self._ex.later(
            f"{_MOVE} WHERE order_id = ? AND state = ?",
            (*_move_values(target, answer, now), order.order_id, order.state.value),
            expect=1,
            error=ConcurrentChange(f"order {order.order_id} moved while {target} was applied"),
        )

    def states_in_file(self, order_ids: Sequence[str], msg_id: str) -> dict[str, TxState]:
        ids = [i for i in dict.fromkeys(order_ids) if i]
        states: dict[str, TxState] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" * len(part))
            rows = self._ex.all(
                f"SELECT order_id, state, msg_id FROM orders WHERE order_id IN ({marks})"  # noqa: S608 - placeholders only
                f" ORDER BY order_id{self._ex.lock}",
                part,
            )
            self._check_states(part, [(row[0], row[1]) for row in rows])
            states.update((row[0], TxState(row[1])) for row in rows if row[2] == msg_id)
        return states

    def move_together(
        self,
        order_ids: Sequence[str],
        source: TxState,
        target: TxState,
        answer: BankAnswer,
        now: datetime,
    ) -> None:
        if not can_move(source, target):
            raise ValueError(f"orders cannot move from {source} to {target}")
        for order_id in order_ids:
            self._ahead.pop(order_id, None)
        for start in range(0, len(order_ids), 1000):
            part = order_ids[start : start + 1000]
            self._ex.later(
                move_together_statement(len(part)),
                (*_move_values(target, answer, now), source.value, *part),
                expect=len(part),
                error=ConcurrentChange(
                    f"{len(part)} orders moving to {target} were not all {source} any more"
                ),
            )

    def mark_batched(
        self, assignments: Sequence[tuple[str, str]], msg_id: str, now: datetime
    ) -> None:
        assert can_move(TxState.RECEIVED, TxState.BATCHED)
        self._ahead.clear()
        # One statement per payment group and thousand orders, not one per order: a
        # 20,000-payment file's marks then hold the write lock for a few statements.
        by_group: dict[str, list[str]] = {}
        for order_id, pmt_inf_id in assignments:
            by_group.setdefault(pmt_inf_id, []).append(order_id)
        changed = 0
        for pmt_inf_id, ids in by_group.items():
            for start in range(0, len(ids), 1000):
                part = ids[start : start + 1000]
                changed += self._ex.run(
                    mark_batched_statement(len(part)),
                    (
                        TxState.BATCHED.value,
                        msg_id,
                        pmt_inf_id,
                        now,
                        TxState.RECEIVED.value,
                        *part,
                    ),
                )
        if changed != len(assignments):
            raise ConcurrentChange(
                f"{len(assignments) - changed} order(s) of file {msg_id} were batched elsewhere"
            )

    def ids_in_file(self, msg_id: str) -> list[str]:
        rows = self._ex.all(FILE_ORDER_IDS, (msg_id,))
        return [row[0] for row in rows]

    def ids_in_group(self, msg_id: str, pmt_inf_id: str) -> list[str]:
        rows = self._ex.all(
            "SELECT order_id FROM orders WHERE msg_id = ? AND pmt_inf_id = ? ORDER BY order_id",
            (msg_id, pmt_inf_id),
        )
        return [row[0] for row in rows]


class SqlFiles:
    """Outbound files and their deadlines."""

    def __init__(self, ex: Executor, read_ahead: ReadAhead | None = None) -> None:
        self._ex = ex
        self._ahead: ReadAhead = {} if read_ahead is None else read_ahead

    def add(self, file: OutboundFile, now: datetime) -> None:
        self._ex.run(
            "INSERT INTO files (msg_id, partner, message_type, state, nb_of_txs, ctrl_sum,"
            " sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                file.msg_id,
                file.partner,
                file.message_type,
                FileState.BUILT.value,
                file.nb_of_txs,
                file.ctrl_sum,
                file.sha256,
                now,
            ),
        )

    def partner_of(self, msg_id: str) -> str | None:
        row = self._ex.one("SELECT partner FROM files WHERE msg_id = ?", (msg_id,))
        return str(row[0]) if row else None

    def sent(self, msg_id: str, now: datetime) -> None:
        # The bank may have answered before the confirm was recorded: its status is kept then.
        self._ex.run(
            "UPDATE files SET state = CASE state WHEN ? THEN ? ELSE state END,"
            " sent_at = COALESCE(sent_at, ?), attempts = attempts + 1 WHERE msg_id = ?",
            (FileState.BUILT.value, FileState.SENT.value, now, msg_id),
        )
        assert can_move(TxState.BATCHED, TxState.SENT)
        self._ahead.clear()  # its orders move
        self._ex.run(FILE_ORDERS_MOVED, (TxState.SENT.value, now, msg_id, TxState.BATCHED.value))

    def set_status(self, msg_id: str, state: FileState, now: datetime) -> None:
        self._ex.later(
            "UPDATE files SET state = ?, status_at = ? WHERE msg_id = ? AND state NOT IN (?, ?)",
            (
                state.value,
                now,
                msg_id,
                FileState.REJECTED.value,
                FileState.PARTIALLY_REJECTED.value,
            ),
        )

    def status_reported(self, msg_id: str, now: datetime) -> None:
        self._ex.later(
            "UPDATE files SET status_at = COALESCE(status_at, ?) WHERE msg_id = ?", (now, msg_id)
        )

    def overdue_unflagged(self, partner: str, sent_before: datetime) -> list[tuple[str, datetime]]:
        rows = self._ex.all(
            "SELECT f.msg_id, f.sent_at FROM files f LEFT JOIN overdue_flags o"
            " ON o.msg_id = f.msg_id WHERE f.partner = ? AND f.state = ? AND f.status_at IS NULL"
            " AND f.sent_at < ? AND o.msg_id IS NULL ORDER BY f.sent_at",
            (partner, FileState.SENT.value, sent_before),
        )
        return [(row[0], as_time(row[1])) for row in rows]

    def flag_overdue(self, msg_id: str, partner: str, now: datetime) -> bool:
        # Only while the file has no report, its row locked (PostgreSQL): a unit applying a
        # report has written the file's status_at before it looks for a flag to clear
        # (`clear_overdue`), so this waits for it and then sees the report; or it flags first,
        # and the report's unit, waiting for the row, then finds the flag and clears it.
        return (
            self._ex.run(
                "INSERT INTO overdue_flags (msg_id, partner, flagged_at)"  # noqa: S608 - a fixed clause
                " SELECT msg_id, ?, ? FROM files"
                f" WHERE msg_id = ? AND status_at IS NULL{self._ex.lock}"
                " ON CONFLICT (msg_id) DO NOTHING",
                (partner, now, msg_id),
            )
            == 1
        )

    def clear_overdue(self, msg_id: str, partner: str, now: datetime) -> datetime | None:
        flag = "SELECT flagged_at FROM overdue_flags WHERE msg_id = ?"
        # Read after the unit's held writes are sent (status_at among them, see flag_overdue).
        row = self._ex.one(flag, (msg_id,))
        if row is None:
            # The deadline watch must not flag the file between a prepared read and its write.
            self._ex.check(flag, (msg_id,), [])
            return None
        cleared = self._ex.run(
            "INSERT INTO overdue_cleared (msg_id, partner, cleared_at) VALUES (?, ?, ?)"
            " ON CONFLICT (msg_id) DO NOTHING",
            (msg_id, partner, now),
        )
        return as_time(row[0]) if cleared == 1 else None


class SqlInbound:
    """Bank files taken in, refused, and the lines that could not be applied."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def first_sight(
        self, partner: str, msg_id: str, message_type: str, raw: bytes, now: datetime
    ) -> bool:
        digest = hashlib.sha256(raw).hexdigest()
        keep = (
            "INSERT INTO inbound_files (partner, msg_id, message_type, received_at, sha256, raw)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner, msg_id) DO NOTHING"
        )
        args = (partner, msg_id, message_type, now, digest, raw)
        if self._ex.prepared:
            # Read first; kept under the lock only if no other unit kept it meanwhile.
            if self._same_file(partner, msg_id, digest):
                return False
            error = ConcurrentChange(f"{partner}'s file {msg_id} was kept meanwhile")
            self._ex.later(keep, args, expect=1, error=error)
            return True
        if self._ex.run(keep, args):
            return True
        self._same_file(partner, msg_id, digest)
        return False

    def known_file(self, partner: str, msg_id: str, sha256: str) -> bool:
        return self._same_file(partner, msg_id, sha256)

    def _same_file(self, partner: str, msg_id: str, digest: str) -> bool:
        """Whether the file kept under this MsgId is these bytes; refused when it is not."""
        kept = "SELECT sha256 FROM inbound_files WHERE partner = ? AND msg_id = ?"
        row = self._ex.one(kept, (partner, msg_id))
        if row is None:
            self._ex.check(kept, (partner, msg_id), [])  # a file once kept stays as it is
        if row is not None and row[0] != digest:
            raise InvalidMessage(
                f"{partner} reused MsgId {msg_id} for a different file; the first is kept"
            )
        return row is not None

    def quarantine(
        self,
        partner: str,
        sha256: str,
        size: int,
        reason: str,
        now: datetime,
        reason_class: str | None = None,
    ) -> bool:
        kind = ReasonClass(reason_class) if reason_class else classify(reason)
        return (
            self._ex.run(
                "INSERT INTO quarantine (partner, sha256, size, reason, reason_class, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner, sha256) DO NOTHING",
                (partner, sha256, size, reason, kind.value, now),
            )
            == 1
        )

    def unmatched(self, line: UnmatchedLine, now: datetime) -> None:
        self._ex.run(
            "INSERT INTO unmatched (partner, msg_id, reference, reason, detail, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                line.partner,
                line.msg_id,
                line.reference,
                line.reason,
                json.dumps(line.detail, default=str),
                now,
            ),
        )

    def entry_applied(self, partner: str, bank_ref: str) -> bool:
        return (
            self._ex.one(
                "SELECT 1 FROM camt_entries WHERE partner = ? AND bank_ref = ?",
                (partner, bank_ref),
            )
            is not None
        )

    def applied_entries(self, partner: str, bank_refs: Sequence[str]) -> set[str]:
        if not bank_refs:
            return set()
        refs, argument = self._ex.each(sorted(set(bank_refs)))
        rows = self._ex.all(
            f"SELECT c.bank_ref FROM ({refs}) AS r {self._ex.keyed_join} camt_entries c"  # noqa: S608 - fixed clauses
            " ON c.partner = ? AND c.bank_ref = r.value",
            (argument, partner),
        )
        return {str(row[0]) for row in rows}

    def add_entry(
        self, partner: str, bank_ref: str, msg_id: str, outcome: str, now: datetime
    ) -> None:
        # A prepared unit read the entry as not applied: it must still be not applied.
        prepared = self._ex.prepared
        self._ex.later(
            "INSERT INTO camt_entries (partner, bank_ref, msg_id, outcome, received_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (partner, bank_ref) DO NOTHING",
            (partner, bank_ref, msg_id, outcome, now),
            expect=1 if prepared else None,
            error=ConcurrentChange(f"entry {bank_ref} applied meanwhile") if prepared else None,
        )

    def record_duplicate_answer(self, answer: DuplicateAnswer, now: datetime) -> bool:
        return (
            self._ex.run(
                "INSERT INTO duplicate_answers (partner, msg_id, original_msg_id, reason_text,"
                " received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (partner, msg_id) DO NOTHING",
                (answer.partner, answer.msg_id, answer.original_msg_id, answer.reason_text, now),
            )
            == 1
        )


def _pending_clause(file_partners: Sequence[str], files_only: bool) -> tuple[str, list[str]]:
    """The WHERE part choosing files for partners reached by file exchange (or all but them)."""
    if not file_partners:
        return ("1 = 0" if files_only else "1 = 1"), []
    marks = ", ".join("?" * len(file_partners))
    to_files = f"(exchange = ? AND routing_key IN ({marks}))"
    return (to_files if files_only else f"NOT {to_files}"), [TO_BANK_EXCHANGE, *file_partners]


_ENQUEUE = (
    "INSERT INTO outbox (message_id, exchange, routing_key, body, headers,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING"
)


# A message's headers as stored: `json.dumps(headers, sort_keys=True)`, by one encoder
# (`json.dumps` with an option makes an encoder per call: a tenth of applying a settlement).
_HEADERS = json.JSONEncoder(sort_keys=True)


def _enqueued(message: OutboxMessage, now: datetime) -> tuple[Any, ...]:
    headers = _HEADERS.encode(message.headers)
    return (message.message_id, message.exchange, message.routing_key, message.body, headers, now)


# What the relays read of a pending message.
_PENDING_COLUMNS = "id, message_id, exchange, routing_key, body, headers"


def _pending_messages(rows: list[Row]) -> list[PendingMessage]:
    """Rows of _PENDING_COLUMNS as messages, in id order (`RETURNING` keeps none)."""
    return [
        PendingMessage(
            int(row_id), OutboxMessage(message_id, exchange, key, bytes(body), json.loads(headers))
        )
        for row_id, message_id, exchange, key, body, headers in sorted(rows)
    ]


class SqlOutbox:
    """Messages written with the change that caused them, sent by a relay."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def enqueue(self, message: OutboxMessage, now: datetime) -> bool:
        return self._ex.run(_ENQUEUE, _enqueued(message, now)) == 1

    def add(self, message: OutboxMessage, now: datetime) -> None:
        self._ex.later(_ENQUEUE, _enqueued(message, now))

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
        def claimed(which: str, args: Sequence[Any], count: int) -> list[Row]:
            return self._ex.all(
                "UPDATE outbox SET claimed_by = ?, claim_until = ? WHERE id IN ("  # noqa: S608 - placeholders only
                f" SELECT id FROM outbox WHERE {which} ORDER BY id LIMIT ?{self._ex.skip_locked})"
                f" RETURNING {_PENDING_COLUMNS}",
                (owner, until, *args, count),
            )

        return self._take(claimed, owner, limit, now, file_partners, files_only, urgent_only)

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
        def locked(which: str, args: Sequence[Any], count: int) -> list[Row]:
            return self._ex.all(
                f"SELECT {_PENDING_COLUMNS} FROM outbox WHERE {which}"  # noqa: S608 - placeholders only
                f" ORDER BY id LIMIT ?{self._ex.skip_locked}",
                (*args, count),
            )

        taken = self._take(locked, owner, limit, now, file_partners, False, urgent_only)
        if taken:  # from now on the unit waits for the broker
            self._ex.end_idle_after(hold_for.total_seconds())
        return taken

    @staticmethod
    def _take(
        take: Callable[[str, Sequence[Any], int], list[Row]],
        owner: str,
        limit: int,
        now: datetime,
        file_partners: Sequence[str],
        files_only: bool,
        urgent_only: bool,
    ) -> list[PendingMessage]:
        """The pending messages `claim` and `lock_pending` take: `take(which, args, count)`
        takes up to `count` of those matching `which`, oldest first."""
        which, which_args = _pending_clause(file_partners, files_only)
        # Pending, not claimed by another relay (or its claim expired), of this kind.
        which = (
            f"status = {PENDING} AND {UNSENT}"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claim_until < ?)"
            f" AND {which}"
        )
        args = [owner, now, *which_args]
        if files_only:
            return _pending_messages(take(which, args, limit))
        if urgent_only:
            # Few rows: the pending files to banks, their headers matched.
            urgent = f'%"{PRIORITY_HEADER}": "urgent"%'
            which = f"exchange = ? AND headers LIKE ? AND {which}"
            return _pending_messages(take(which, [TO_BANK_EXCHANGE, urgent, *args], limit))
        # Files to banks first (an urgent payment must not wait behind a run's postings), then
        # the rest, each in id order.
        files = _pending_messages(
            take(f"exchange = ? AND {which}", [TO_BANK_EXCHANGE, *args], limit)
        )
        if len(files) >= limit:
            return files
        rest = take(f"exchange <> ? AND {which}", [TO_BANK_EXCHANGE, *args], limit - len(files))
        return files + _pending_messages(rest)

    def mark_sent(self, row_ids: Sequence[int], now: datetime) -> None:
        # One statement per thousand rows, not one per row.
        for start in range(0, len(row_ids), 1000):
            part = list(row_ids[start : start + 1000])
            marks = ", ".join("?" * len(part))
            self._ex.run(
                f"UPDATE outbox SET status = {SENT}, sent_at = ?, claimed_by = NULL,"  # noqa: S608 - literals and placeholders
                f" claim_until = NULL WHERE id IN ({marks}) AND status <> {SENT}",
                (now, *part),
            )

    def release(self, row_ids: Sequence[int], owner: str) -> None:
        for start in range(0, len(row_ids), 1000):
            part = list(row_ids[start : start + 1000])
            marks = ", ".join("?" * len(part))
            self._ex.run(
                "UPDATE outbox SET claimed_by = NULL, claim_until = NULL"  # noqa: S608 - placeholders only
                f" WHERE id IN ({marks}) AND claimed_by = ?",
                (*part, owner),
            )

    def park(self, row_id: int, reason: str, now: datetime) -> None:
        self._ex.run(
            f"UPDATE outbox SET status = {PARKED}, parked_at = ?, parked_why = ?,"  # noqa: S608 - a literal
            f" claimed_by = NULL, claim_until = NULL WHERE id = ? AND status = {PENDING}",
            (now, reason, row_id),
        )

    def parked(self, message_ids: Sequence[str] | None = None) -> list[ParkedOutbox]:
        if message_ids is not None and not message_ids:
            return []
        marks = ", ".join("?" * len(message_ids or ()))
        which = f"message_id IN ({marks})" if message_ids is not None else "1 = 1"
        rows = self._ex.all(
            f"SELECT {PARKED_COLUMNS} FROM outbox WHERE status = {PARKED} AND {UNSENT}"  # noqa: S608 - placeholders only
            f" AND {which}"
            f" ORDER BY id{self._ex.lock}",
            tuple(message_ids or ()),
        )
        return [parked_from_row(row) for row in rows]

    def unpark(self, message_id: str) -> bool:
        return (
            self._ex.run(
                f"UPDATE outbox SET status = {PENDING}, parked_at = NULL, parked_why = NULL"  # noqa: S608 - a literal
                f" WHERE message_id = ? AND status = {PARKED}",
                (message_id,),
            )
            == 1
        )

    def drop(self, message_id: str, now: datetime) -> bool:
        # The message keeps when and why it was parked; the admin's reason and the time of
        # the drop are in dlq_actions.
        del now
        return (
            self._ex.run(
                f"UPDATE outbox SET status = {DROPPED} WHERE message_id = ?"  # noqa: S608 - a literal
                f" AND status = {PARKED}",
                (message_id,),
            )
            == 1
        )


class SqlEvidence:
    """What banks booked: revenue, returns, statements."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def add_revenue(self, revenue: Revenue, now: datetime) -> bool:
        return (
            self._ex.run(
                "INSERT INTO revenue (bank_ref, partner, msg_id, amount, currency, value_date,"
                " payer, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (partner, bank_ref) DO NOTHING",
                (
                    revenue.bank_ref,
                    revenue.partner,
                    revenue.msg_id,
                    revenue.amount,
                    revenue.currency,
                    revenue.value_date,
                    revenue.payer,
                    now,
                ),
            )
            == 1
        )

    def add_return(self, returned: ReturnRecord, now: datetime) -> None:
        self._ex.run(
            "INSERT INTO returns (partner, bank_ref, order_id, msg_id, amount, currency,"
            " value_date, reason_code, reason_text, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (partner, bank_ref) DO NOTHING",
            (
                returned.partner,
                returned.bank_ref,
                returned.order_id,
                returned.msg_id,
                returned.amount,
                returned.currency,
                returned.value_date,
                returned.reason_code,
                returned.reason_text,
                now,
            ),
        )

    def add_statement(self, statement: StatementRecord, now: datetime) -> bool:
        return (
            self._ex.run(
                "INSERT INTO statements (partner, statement_id, msg_id, account, stmt_date,"
                " currency, opening, closing, balances, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (partner, statement_id) DO NOTHING",
                (
                    statement.partner,
                    statement.statement_id,
                    statement.msg_id,
                    statement.account,
                    statement.stmt_date,
                    statement.currency,
                    statement.opening,
                    statement.closing,
                    json.dumps(statement.balances),
                    now,
                ),
            )
            == 1
        )

    def add_statement_entry(self, entry: StatementEntryRecord) -> bool:
        return (
            self._ex.run(
                "INSERT INTO statement_entries (partner, bank_ref, statement_id, credit_debit,"
                " status, amount, currency, value_date, end_to_end_id, return_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (partner, bank_ref) DO NOTHING",
                (
                    entry.partner,
                    entry.bank_ref,
                    entry.statement_id,
                    entry.credit_debit,
                    entry.status,
                    entry.amount,
                    entry.currency,
                    entry.value_date,
                    entry.end_to_end_id,
                    entry.return_reason,
                ),
            )
            == 1
        )


class SqlAdmin:
    """What admins did."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def record_dlq_action(self, action: DlqAction, now: datetime) -> None:
        self._ex.run(
            "INSERT INTO dlq_actions (action, queue, message_id, reason, parked_why, body,"
            " headers, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                action.action,
                action.queue,
                action.message_id,
                action.reason,
                action.parked_why,
                action.body,
                json.dumps(action.headers, default=str, sort_keys=True),
                action.actor,
                now,
            ),
        )


class SqlAudit:
    """The hash-chained audit trail: appends take turns on the locked head row."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def append(self, entry: AuditEntry, now: datetime) -> AuditRecord:
        head = self._ex.one(
            f"SELECT seq, row_hash FROM audit_head WHERE id = 1{self._ex.lock}"  # noqa: S608 - fixed clause
        )
        if head is None:
            raise RuntimeError("the audit trail's head row is missing: run `gateway db upgrade`")
        record = entry.sealed_after(int(head[0]), str(head[1]), now)
        r = record
        self._ex.run(
            f"INSERT INTO audit_trail ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - fixed columns
            (
                r.seq,
                r.at,
                r.actor,
                r.via,
                r.action,
                r.subject,
                r.detail_json,
                r.prev_hash,
                r.row_hash,
            ),
        )
        self._ex.run(
            "UPDATE audit_head SET seq = ?, row_hash = ? WHERE id = 1", (r.seq, r.row_hash)
        )
        return record


class SqlUsers:
    """The console's users."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def add(self, name: str, role: str, password_hash: str, now: datetime) -> bool:
        return (
            self._ex.run(
                f"INSERT INTO console_users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608 - fixed columns
                " ON CONFLICT (name) DO NOTHING",
                (name, role, password_hash, False, now, now),
            )
            == 1
        )

    def set_disabled(self, name: str, disabled: bool, now: datetime) -> bool:
        return (
            self._ex.run(
                "UPDATE console_users SET disabled = ?, updated_at = ? WHERE name = ?",
                (disabled, now, name),
            )
            == 1
        )


class SqlCounters:
    """Named sequences."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def next_value(self, name: str) -> int:
        row = self._ex.one(
            "INSERT INTO counters (name, value) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            (name,),
        )
        assert row is not None
        return int(row[0])


class SqlClaims:
    """Claims on work shared by several gateway instances."""

    def __init__(self, ex: Executor) -> None:
        self._ex = ex

    def claim(self, kind: str, key: str, owner: str, now: datetime, until: datetime) -> bool:
        return (
            self._ex.run(
                "INSERT INTO work_claims (kind, claim_key, owner, expires_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (kind, claim_key) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at"
                " WHERE work_claims.owner = excluded.owner OR work_claims.expires_at < ?",
                (kind, key, owner, until, now),
            )
            == 1
        )

    def holds(self, kind: str, key: str, owner: str, now: datetime) -> bool:
        row = self._ex.one(
            f"SELECT owner FROM work_claims WHERE kind = ? AND claim_key = ?{self._ex.lock}",  # noqa: S608 - fixed clause
            (kind, key),
        )
        return row is not None and row[0] == owner

    def extend(self, kind: str, key: str, owner: str, until: datetime) -> bool:
        return (
            self._ex.run(
                "UPDATE work_claims SET expires_at = ?"
                " WHERE kind = ? AND claim_key = ? AND owner = ?",
                (until, kind, key, owner),
            )
            == 1
        )

    def release(self, kind: str, key: str, owner: str) -> None:
        self._ex.run(
            "DELETE FROM work_claims WHERE kind = ? AND claim_key = ? AND owner = ?",
            (kind, key, owner),
        )


class SqlUnitOfWork:
    """The repositories of one transaction."""

    def __init__(self, ex: Executor) -> None:
        read_ahead: ReadAhead = {}
        self.orders = SqlOrders(ex, read_ahead)
        self.files = SqlFiles(ex, read_ahead)
        self.inbound = SqlInbound(ex)
        self.outbox = SqlOutbox(ex)
        self.evidence = SqlEvidence(ex)
        self.admin = SqlAdmin(ex)
        self.counters = SqlCounters(ex)
        self.claims = SqlClaims(ex)
        self.audit = SqlAudit(ex)
        self.users = SqlUsers(ex)


# --- the read-only port -------------------------------------------------------------------------


class SqlQueries:
    """Read-only questions, each one statement outside any write transaction."""

    def __init__(self, reader: Executor) -> None:
        self._q = reader

    def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        row = self._q.one(sql, args)
        return int(row[0]) if row else 0

    def _by(self, sql: str, args: Sequence[Any] = ()) -> dict[Any, int]:
        return {key: int(n) for key, n in self._q.all(sql, args)}

    def order(self, order_id: str) -> StoredOrder | None:
        row = self._q.one(
            f"SELECT {ORDER_COLUMNS} FROM {ORDERS} WHERE order_id = ?",  # noqa: S608 - fixed columns
            (order_id,),
        )
        return order_from_row(row) if row else None

    def orders_by_state(self) -> dict[str, int]:
        return self._by("SELECT state, COUNT(*) FROM orders GROUP BY state")

    def invalid_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM invalid_orders")

    def files_by_state(self) -> dict[str, int]:
        return self._by("SELECT state, COUNT(*) FROM files GROUP BY state")

    def outbox_pending(self) -> tuple[int, datetime | None]:
        row = self._q.one(
            f"SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = {PENDING} AND {UNSENT}"  # noqa: S608 - literals
        )
        return (int(row[0]), as_opt_time(row[1])) if row else (0, None)

    def outbox_parked(self) -> list[ParkedOutbox]:
        rows = self._q.all(
            f"SELECT {PARKED_COLUMNS} FROM outbox WHERE status = {PARKED} AND {UNSENT}"  # noqa: S608 - fixed columns
            " ORDER BY id"
        )
        return [parked_from_row(row) for row in rows]

    def outbox_by_status(self) -> dict[OutboxStatus, int]:
        counts = self._by(
            "SELECT status, COUNT(*) FROM outbox"  # noqa: S608 - literals
            f" WHERE status IN ({PENDING}, {PARKED}, {DROPPED}) AND {UNSENT} GROUP BY status"
        )
        return {s: counts.get(s.value, 0) for s in OutboxStatus if s is not OutboxStatus.SENT}

    def quarantined_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM quarantine")

    def quarantine_reasons(self) -> list[tuple[str, str, int]]:
        rows = self._q.all(
            "SELECT partner, reason, COUNT(*) FROM quarantine GROUP BY partner, reason"
            " ORDER BY partner, reason"
        )
        return [(p, r, int(n)) for p, r, n in rows]

    def quarantined(self, limit: int = 200) -> list[QuarantinedFile]:
        rows = self._q.all(
            "SELECT partner, sha256, size, reason, received_at, reason_class, id FROM quarantine"
            " ORDER BY received_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [
            QuarantinedFile(p, sha, int(size), reason, as_time(at), kind, int(number))
            for p, sha, size, reason, at, kind, number in rows
        ]

    def quarantined_raw(self, sha256: str) -> bytes | None:
        row = self._q.one(
            "SELECT raw FROM quarantine WHERE sha256 = ? AND raw IS NOT NULL LIMIT 1", (sha256,)
        )
        return bytes(row[0]) if row else None

    def quarantine_by_class(self) -> list[tuple[str, str, int]]:
        rows = self._q.all(
            "SELECT partner, reason_class, COUNT(*) FROM quarantine"
            " GROUP BY partner, reason_class ORDER BY partner, reason_class"
        )
        return [(p, c, int(n)) for p, c, n in rows]

    def unmatched_by_partner(self) -> dict[str, int]:
        return self._by("SELECT partner, COUNT(*) FROM unmatched GROUP BY partner")

    def applied_by_type(self) -> list[tuple[str, str, int]]:
        rows = self._q.all(
            "SELECT partner, message_type, COUNT(*) FROM inbound_files"
            " GROUP BY partner, message_type ORDER BY partner, message_type"
        )
        return [(p, t, int(n)) for p, t, n in rows]

    def duplicate_answers(self, limit: int = 20) -> list[DuplicateAnswer]:
        rows = self._q.all(
            "SELECT d.partner, d.msg_id, d.original_msg_id, d.reason_text, d.received_at,"
            " f.state FROM duplicate_answers d LEFT JOIN files f ON f.msg_id = d.original_msg_id"
            " ORDER BY d.received_at DESC, d.msg_id LIMIT ?",
            (limit,),
        )
        return [
            DuplicateAnswer(
                partner=row[0],
                msg_id=row[1],
                original_msg_id=row[2],
                reason_text=row[3],
                received_at=as_time(row[4]),
                file_state=FileState(row[5]) if row[5] else None,
            )
            for row in rows
        ]

    def duplicate_answers_by_partner(self) -> dict[str, int]:
        return self._by("SELECT partner, COUNT(*) FROM duplicate_answers GROUP BY 1")

    def claims(self) -> list[HeldClaim]:
        groups = [
            HeldClaim(kind, key, owner, as_time(until))
            for kind, key, owner, until in self._q.all(
                "SELECT kind, claim_key, owner, expires_at FROM work_claims"
            )
        ]
        outbox = [
            HeldClaim("outbox", owner, owner, as_time(until), int(n))
            for owner, n, until in self._q.all(
                "SELECT claimed_by, COUNT(*), MAX(claim_until) FROM outbox"  # noqa: S608 - a literal
                f" WHERE {UNSENT} AND claimed_by IS NOT NULL AND sent_at IS NULL"
                " GROUP BY claimed_by"
            )
        ]
        return sorted(groups + outbox, key=lambda c: (c.expires_at, c.kind, c.key))

    def overdue_files(self, partner: str, sent_before: datetime) -> list[str]:
        rows = self._q.all(
            "SELECT msg_id FROM files WHERE partner = ? AND state = ? AND status_at IS NULL"
            " AND sent_at < ? ORDER BY sent_at",
            (partner, FileState.SENT.value, sent_before),
        )
        return [row[0] for row in rows]

    def seen_inbound(self, partner: str, sha256: str) -> tuple[SeenAs, str | None] | None:
        if self._q.one(
            "SELECT 1 FROM inbound_files WHERE partner = ? AND sha256 = ?", (partner, sha256)
        ):
            return ("applied", None)
        row = self._q.one(
            "SELECT reason FROM quarantine WHERE partner = ? AND sha256 = ?", (partner, sha256)
        )
        return ("quarantined", str(row[0])) if row else None

    def statement_days(self) -> list[date]:
        rows = self._q.all("SELECT DISTINCT stmt_date FROM statements ORDER BY stmt_date")
        return [day for (value,) in rows if (day := as_day(value)) is not None]

    def statements_of_day(self, day: date, partner: str | None = None) -> list[StatementRecord]:
        rows = self._q.all(
            "SELECT partner, statement_id, msg_id, account, stmt_date, currency, opening,"
            " closing, balances FROM statements WHERE stmt_date = ? AND (? OR partner = ?)"
            " ORDER BY partner, account, statement_id",
            (day, partner is None, partner or ""),
        )
        return [
            StatementRecord(
                partner=p,
                statement_id=sid,
                msg_id=m,
                account=a,
                stmt_date=as_day(d) or day,
                currency=c,
                opening=as_opt_money(o),
                closing=as_opt_money(cl),
                balances=json.loads(b),
            )
            for p, sid, m, a, d, c, o, cl, b in rows
        ]

    def statement_entries(self, partner: str, statement_id: str) -> list[StatementEntryRecord]:
        rows = self._q.all(
            "SELECT partner, bank_ref, statement_id, credit_debit, status, amount, currency,"
            " value_date, end_to_end_id, return_reason FROM statement_entries"
            " WHERE partner = ? AND statement_id = ? ORDER BY bank_ref",
            (partner, statement_id),
        )
        return [
            StatementEntryRecord(p, ref, sid, cd, st, as_money(a), c, as_day(v), e2e, rr)
            for p, ref, sid, cd, st, a, c, v, e2e, rr in rows
        ]

    def booked_payments(self, partner: str, day: date) -> list[Booked]:
        rows = self._q.all(
            f"SELECT order_id, amount, currency, bank_ref, payload FROM {ORDERS}"  # noqa: S608 - fixed clause
            " WHERE partner = ? AND value_date = ? AND state IN (?, ?) ORDER BY order_id",
            (partner, day, TxState.SETTLED.value, TxState.RETURNED.value),
        )
        return [Booked(o, as_money(a), c, ref, payload) for o, a, c, ref, payload in rows]

    def booked_credits(self, partner: str, day: date) -> list[Booked]:
        rows = self._q.all(
            "SELECT bank_ref, amount, currency FROM revenue WHERE partner = ? AND value_date = ?"
            " UNION ALL SELECT bank_ref, amount, currency FROM returns"
            " WHERE partner = ? AND value_date = ? ORDER BY 1",
            (partner, day, partner, day),
        )
        return [Booked(ref, as_money(a), c, ref) for ref, a, c in rows]

    def received_in_group(self, group_key: str, limit: int) -> list[StoredOrder]:
        return received_in_group(self._q, group_key, limit)

    def orders_in_state(
        self,
        state: TxState | None = None,
        *,
        partner: str | None = None,
        category: str | None = None,
        currency: str | None = None,
        limit: int | None = None,
    ) -> list[StoredOrder]:
        wanted = {"state": state.value if state else None, "partner": partner}
        wanted |= {"category": category, "currency": currency}
        where = " AND ".join(f"{column} = ?" for column, value in wanted.items() if value) or "1=1"
        args: list[Any] = [value for value in wanted.values() if value]
        rows = self._q.all(
            f"SELECT {ORDER_COLUMNS} FROM {ORDERS} WHERE {where} ORDER BY order_id"  # noqa: S608 - fixed columns
            + (" LIMIT ?" if limit is not None else ""),
            (*args, limit) if limit is not None else args,
        )
        return [order_from_row(row) for row in rows]

    def rejected_by_reason(self) -> dict[str | None, int]:
        return self._by(
            "SELECT reason_code, COUNT(*) FROM orders WHERE state = ? GROUP BY reason_code",
            (TxState.REJECTED.value,),
        )

    def sent_files_by_partner(self) -> dict[str, int]:
        return self._by(
            "SELECT partner, COUNT(*) FROM files WHERE sent_at IS NOT NULL GROUP BY partner"
        )

    def orders_by_partner(self) -> dict[str, int]:
        return self._by("SELECT partner, COUNT(*) FROM orders GROUP BY partner")

    # --- the operations console ---

    def orders_by_partner_state(self) -> dict[tuple[str, str], int]:
        rows = self._q.all("SELECT partner, state, COUNT(*) FROM orders GROUP BY partner, state")
        return {(p, st): int(n) for p, st, n in rows}

    def files_by_partner_state(self) -> dict[tuple[str, str], int]:
        rows = self._q.all("SELECT partner, state, COUNT(*) FROM files GROUP BY partner, state")
        return {(p, st): int(n) for p, st, n in rows}

    def search_orders(self, text: str, limit: int = 50) -> list[StoredOrder]:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._q.all(
            f"SELECT {ORDER_COLUMNS} FROM {ORDERS} WHERE order_id = ? OR msg_id = ?"  # noqa: S608 - fixed columns
            " OR payload LIKE ? ESCAPE '\\' ORDER BY order_id LIMIT ?",
            (text, text, pattern, limit),
        )
        return [order_from_row(row) for row in rows]

    def files(
        self, *, partner: str | None = None, state: FileState | None = None, limit: int = 200
    ) -> list[FileRecord]:
        rows = self._q.all(
            f"SELECT {FILE_COLUMNS} FROM files WHERE (? OR partner = ?) AND (? OR state = ?)"  # noqa: S608 - fixed columns
            " ORDER BY created_at DESC, msg_id DESC LIMIT ?",
            (partner is None, partner or "", state is None, state.value if state else "", limit),
        )
        return [file_from_row(row) for row in rows]

    def file(self, msg_id: str) -> FileRecord | None:
        row = self._q.one(f"SELECT {FILE_COLUMNS} FROM files WHERE msg_id = ?", (msg_id,))  # noqa: S608 - fixed columns
        return file_from_row(row) if row else None

    def outbox_messages(self, message_ids: Sequence[str]) -> list[OutboxRecord]:
        if not message_ids:
            return []
        marks = ", ".join("?" for _ in message_ids)
        rows = self._q.all(
            "SELECT message_id, exchange, routing_key, body, created_at, sent_at, parked_why"  # noqa: S608 - placeholders only
            f" FROM outbox WHERE message_id IN ({marks}) ORDER BY id",
            tuple(message_ids),
        )
        return [
            OutboxRecord(m, e, k, bytes(b), as_time(c), as_opt_time(st), why)
            for m, e, k, b, c, st, why in rows
        ]

    def inbound_files(self, partner: str, since: datetime | None = None) -> list[InboundFileRecord]:
        rows = self._q.all(
            "SELECT partner, msg_id, message_type, received_at, raw FROM inbound_files"
            " WHERE partner = ? AND (? OR received_at >= ?) ORDER BY received_at, msg_id",
            (partner, since is None, since or datetime(1970, 1, 1, tzinfo=UTC)),
        )
        return [InboundFileRecord(p, m, t, as_time(at), bytes(raw)) for p, m, t, at, raw in rows]

    def inbound_file(self, partner: str, msg_id: str) -> InboundFileRecord | None:
        row = self._q.one(
            "SELECT partner, msg_id, message_type, received_at, raw FROM inbound_files"
            " WHERE partner = ? AND msg_id = ?",
            (partner, msg_id),
        )
        if row is None:
            return None
        return InboundFileRecord(row[0], row[1], row[2], as_time(row[3]), bytes(row[4]))

    def quarantined_file(self, quarantine_id: int) -> QuarantinedFile | None:
        row = self._q.one(
            "SELECT partner, sha256, size, reason, received_at, reason_class, id FROM quarantine"
            " WHERE id = ?",
            (quarantine_id,),
        )
        if row is None:
            return None
        p, sha, size, reason, at, kind, number = row
        return QuarantinedFile(p, sha, int(size), reason, as_time(at), kind, int(number))

    def returns_of(self, order_id: str) -> list[ReturnRecord]:
        rows = self._q.all(
            "SELECT partner, bank_ref, order_id, msg_id, amount, currency, value_date,"
            " reason_code, reason_text FROM returns WHERE order_id = ?"
            " ORDER BY received_at, bank_ref",
            (order_id,),
        )
        return [
            ReturnRecord(p, ref, o, m, as_money(a), c, as_day(v), rc, rt)
            for p, ref, o, m, a, c, v, rc, rt in rows
        ]

    def audit_trail(
        self, *, limit: int | None = None, newest_first: bool = False
    ) -> list[AuditRecord]:
        order = "DESC" if newest_first else "ASC"
        rows = self._q.all(
            f"SELECT {AUDIT_COLUMNS} FROM audit_trail ORDER BY seq {order}"  # noqa: S608 - fixed columns
            + (" LIMIT ?" if limit is not None else ""),
            (limit,) if limit is not None else (),
        )
        return [audit_from_row(row) for row in rows]

    def audit_seqs(self, *, limit: int | None = None, newest_first: bool = False) -> list[int]:
        order = "DESC" if newest_first else "ASC"
        rows = self._q.all(
            f"SELECT seq FROM audit_trail ORDER BY seq {order}"  # noqa: S608 - a fixed word
            + (" LIMIT ?" if limit is not None else ""),
            (limit,) if limit is not None else (),
        )
        return [int(row[0]) for row in rows]

    def audit_row(self, seq: int) -> AuditRecord | None:
        row = self._q.one(f"SELECT {AUDIT_COLUMNS} FROM audit_trail WHERE seq = ?", (seq,))  # noqa: S608 - fixed columns
        return audit_from_row(row) if row else None

    def audit_head(self) -> tuple[int, str]:
        row = self._q.one("SELECT seq, row_hash FROM audit_head WHERE id = 1")
        return (int(row[0]), str(row[1])) if row else (0, audit_chain.ZERO_HASH)

    def users(self) -> list[ConsoleUser]:
        rows = self._q.all(f"SELECT {USER_COLUMNS} FROM console_users ORDER BY name")  # noqa: S608 - fixed columns
        return [user_from_row(row) for row in rows]

    def user(self, name: str) -> ConsoleUser | None:
        row = self._q.one(f"SELECT {USER_COLUMNS} FROM console_users WHERE name = ?", (name,))  # noqa: S608 - fixed columns
        return user_from_row(row) if row else None
