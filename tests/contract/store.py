"""The behaviour every storage backend must show, as one abstract test case.

`StoreContract` is never collected itself (its name does not start with `Test`); each backend
subclasses it in test_backends.py and says how to `make()` a fresh, empty `Storage`. The model
is eventsourcing's abstract recorder test case: one set of tests, three recorders. The SQL
statements of gateway/adapters/persistence/sql.py are the reference semantics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain.states import FileState, TxState
from gateway.errors import InvalidMessage, TransientError
from gateway.reasons import ReasonClass
from gateway.service.channels import LEDGER_EXCHANGE, PRIORITY_HEADER, TO_BANK_EXCHANGE
from gateway.service.ports import (
    BankAnswer,
    Booked,
    ConcurrentChange,
    DlqAction,
    DuplicateAnswer,
    NewOrder,
    OutboxMessage,
    OutboxStatus,
    Revenue,
    Storage,
    UnitOfWork,
    UnmatchedLine,
    WaitingGroup,
)
from tests.contract.console_store import ConsoleContract
from tests.contract.values import (
    DAY,
    GROUP,
    HANOI,
    OTHER_PARTNER,
    PARTNER,
    T0,
    UndoError,
    at,
    entry,
    message,
    new_order,
    order_id,
    outbound_file,
    returned,
    revenue,
    run_threads,
    same_decimal,
    sha256,
    statement,
)

# --- the contract --------------------------------------------------------------------------------


class StoreContract(ConsoleContract):
    """What every `Storage` backend must do; subclasses say how to `make()` one."""

    # What `Storage.kind` says for this backend.
    kind = ""

    def make(self, request: pytest.FixtureRequest) -> Storage:
        """A fresh, empty storage (cleanup of anything but `close()` goes to request)."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest) -> Iterator[Storage]:
        """The backend under test, closed after the test."""
        storage = self.make(request)
        try:
            yield storage
        finally:
            storage.close()

    # --- helpers ---------------------------------------------------------------------------

    def add_orders(self, store: Storage, *orders: NewOrder, now: datetime = T0) -> None:
        """Store orders in one unit of work."""
        with store.unit_of_work() as uow:
            for one in orders:
                assert uow.orders.add(one, now) == "new"

    def move(
        self,
        store: Storage,
        n: int,
        *targets: TxState,
        answer: BankAnswer | None = None,
        now: datetime = T0,
    ) -> None:
        """Move order n through the targets, one unit of work each."""
        for target in targets:
            with store.unit_of_work() as uow:
                current = uow.orders.get(order_id(n))
                assert current is not None
                uow.orders.move(current, target, answer or BankAnswer(), now)

    def enqueue(self, store: Storage, *messages: OutboxMessage, now: datetime = T0) -> None:
        """Add messages to the outbox in one unit of work."""
        with store.unit_of_work() as uow:
            for one in messages:
                assert uow.outbox.enqueue(one, now)

    def claim(self, store: Storage, owner: str, limit: int = 10, **kw: Any) -> list[str]:
        """Message ids claimed by owner at T0 (or kw's now) for a minute."""
        now = kw.pop("now", T0)
        with store.unit_of_work() as uow:
            got = uow.outbox.claim(owner, limit, now, now + timedelta(minutes=1), **kw)
        return [pending.message.message_id for pending in got]

    def row_ids(self, store: Storage, owner: str = "ids") -> dict[str, int]:
        """Row ids of every pending message by message id (claims them, then releases)."""
        with store.unit_of_work() as uow:
            got = uow.outbox.claim(owner, 1000, T0, at(1))
            uow.outbox.release([pending.row_id for pending in got], owner)
        return {pending.message.message_id: pending.row_id for pending in got}

    def sent_file(self, store: Storage, msg_id: str, sent_at: datetime, **kw: Any) -> None:
        """Build a file and send it at `sent_at`."""
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file(msg_id, **kw), sent_at - timedelta(seconds=5))
            uow.files.sent(msg_id, sent_at)

    # --- the backend itself ----------------------------------------------------------------

    def test_kind(self, store: Storage) -> None:
        """The storage names its backend; only PostgreSQL's relays hold messages by locks, and
        only there may a thread hold two units of work open at once."""
        assert store.kind == self.kind
        assert store.relay_locks is (self.kind == "postgresql")
        assert store.overlapping_units is (self.kind == "postgresql")

    def test_describe_is_a_line(self, store: Storage) -> None:
        """describe() is one non-empty line for the logs."""
        text = store.describe()
        assert text.strip()
        assert "\n" not in text

    def test_fresh_storage_is_empty(self, store: Storage) -> None:
        """Every query of a fresh storage finds nothing."""
        q = store.queries
        assert q.order(order_id(1)) is None
        assert q.orders_by_state() == {}
        assert q.invalid_count() == 0
        assert q.files_by_state() == {}
        assert q.outbox_pending() == (0, None)
        assert q.outbox_parked() == []
        assert q.outbox_by_status() == {s: 0 for s in OutboxStatus if s is not OutboxStatus.SENT}
        assert q.quarantined_count() == 0
        assert q.quarantine_reasons() == []
        assert q.quarantine_by_class() == []
        assert q.unmatched_by_partner() == {}
        assert q.applied_by_type() == []
        assert q.overdue_files(PARTNER, at(3600)) == []
        assert q.seen_inbound(PARTNER, sha256(b"x")) is None
        assert q.statement_days() == []
        assert q.statements_of_day(DAY) == []
        assert q.statement_entries(PARTNER, "S1") == []
        assert q.booked_payments(PARTNER, DAY) == []
        assert q.booked_credits(PARTNER, DAY) == []
        assert q.orders_in_state() == []
        assert q.rejected_by_reason() == {}
        assert q.sent_files_by_partner() == {}
        assert q.orders_by_partner() == {}

    # --- intake ------------------------------------------------------------------------------

    def test_add_new_order(self, store: Storage) -> None:
        """A new order is stored as received."""
        with store.unit_of_work() as uow:
            assert uow.orders.add(new_order(1), T0) == "new"
        assert store.queries.orders_by_state() == {"received": 1}

    def test_add_same_id_same_hash_is_duplicate(self, store: Storage) -> None:
        """The same order again is a duplicate and changes nothing."""
        self.add_orders(store, new_order(1))
        with store.unit_of_work() as uow:
            assert uow.orders.add(new_order(1), at(60)) == "duplicate"
        stored = store.queries.order(order_id(1))
        assert stored is not None
        assert stored.received_at == T0
        assert store.queries.orders_by_state() == {"received": 1}

    def test_add_same_id_other_hash_is_conflict(self, store: Storage) -> None:
        """Another order under a known id is a conflict; the first is kept."""
        self.add_orders(store, new_order(1, amount="606000"))
        other = new_order(1, amount="999000")
        assert other.content_hash != new_order(1).content_hash
        with store.unit_of_work() as uow:
            assert uow.orders.add(other, at(60)) == "conflict"
        stored = store.queries.order(order_id(1))
        assert stored is not None
        assert stored.amount == Decimal("606000")

    def test_add_many_stores_a_chunk_and_tells_ids_stored_meanwhile(self, store: Storage) -> None:
        """A chunk is stored in one call; an id already there (stored by another instance after
        the chunk was read) is a duplicate with the same content, a conflict with other."""
        self.add_orders(store, new_order(2), new_order(3, amount="606000"))
        chunk = [new_order(1), new_order(2), new_order(3, amount="999000"), new_order(4)]
        with store.unit_of_work() as uow:
            assert uow.orders.add_many(chunk, at(60)) == ["new", "duplicate", "conflict", "new"]
            assert uow.orders.add_many([], at(60)) == []
        assert store.queries.orders_by_state() == {"received": 4}
        third = store.queries.order(order_id(3))
        assert third is not None and third.amount == Decimal("606000")

    def test_content_hashes_of_stored_orders_only(self, store: Storage) -> None:
        """The hashes of the stored orders among the ids asked for, in any number."""
        self.add_orders(store, *(new_order(n) for n in range(1, 1201)))
        asked = [order_id(n) for n in range(1, 1301)] + [order_id(5)]
        with store.unit_of_work() as uow:
            hashes = uow.orders.content_hashes(asked)
        assert len(hashes) == 1200
        assert hashes[order_id(7)] == new_order(7).content_hash

    def test_add_invalid_once_per_subject(self, store: Storage) -> None:
        """A refused message is kept once per subject."""
        with store.unit_of_work() as uow:
            assert uow.orders.add_invalid(
                subject="sha:abc", order_id=None, raw=b"\xff{", reason="not JSON", now=T0
            )
        with store.unit_of_work() as uow:
            assert not uow.orders.add_invalid(
                subject="sha:abc", order_id="X", raw=b"\xff{", reason="again", now=at(1)
            )
            assert uow.orders.add_invalid(
                subject="sha:def", order_id="X", raw=b"{}", reason="no amount", now=at(1)
            )
        assert store.queries.invalid_count() == 2
        assert store.queries.orders_by_state() == {}

    def test_get_returns_what_was_stored(self, store: Storage) -> None:
        """An order comes back field for field, with typed values."""
        order = new_order(1, amount="12.50", currency="USD", category="salary")
        self.add_orders(store, order)
        with store.unit_of_work() as uow:
            got = uow.orders.get(order.order_id)
        assert got is not None
        assert (got.order_id, got.payload, got.partner) == (order.order_id, order.payload, PARTNER)
        assert (got.group_key, got.category, got.currency) == (GROUP, "salary", "USD")
        assert same_decimal(got.amount, "12.50")
        assert type(got.state) is TxState
        assert got.state is TxState.RECEIVED
        assert (got.msg_id, got.pmt_inf_id, got.bank_ref, got.value_date) == (None,) * 4
        assert (got.status_code, got.reason_code, got.reason_text) == (None,) * 3
        assert got.received_at.utcoffset() is not None
        assert got.received_at == T0
        assert got.updated_at == T0
        assert store.queries.order(order.order_id) == got

    @pytest.mark.parametrize(
        "amount", ["606000", "12.50", "0.001", "123456789012345.67", "1000.000"]
    )
    def test_amount_keeps_its_exponent(self, store: Storage, amount: str) -> None:
        """An amount comes back equal and written the same (no added or lost decimals)."""
        self.add_orders(store, new_order(1, amount=amount))
        got = store.queries.order(order_id(1))
        assert got is not None
        assert got.amount == Decimal(amount)
        assert same_decimal(got.amount, amount), f"{got.amount!r} != Decimal({amount!r})"

    def test_get_unknown_order_is_none(self, store: Storage) -> None:
        """get() of an unknown id is None."""
        with store.unit_of_work() as uow:
            assert uow.orders.get("nope") is None

    def test_times_in_another_offset_are_the_same_instant(self, store: Storage) -> None:
        """A time given in +07:00 comes back aware and equal as an instant."""
        hanoi = datetime(2026, 11, 2, 8, 30, 15, 654321, tzinfo=HANOI)
        self.add_orders(store, new_order(1), now=hanoi)
        self.move(store, 1, TxState.BATCHED, now=hanoi + timedelta(microseconds=1))
        got = store.queries.order(order_id(1))
        assert got is not None
        assert got.received_at.utcoffset() is not None
        assert got.received_at == hanoi
        assert got.received_at.astimezone(UTC) == datetime(
            2026, 11, 2, 1, 30, 15, 654321, tzinfo=UTC
        )
        assert got.updated_at == hanoi + timedelta(microseconds=1)

    def test_value_date_is_a_date(self, store: Storage) -> None:
        """A value date comes back as a date, not text or a datetime."""
        self.add_orders(store, new_order(1))
        self.move(store, 1, TxState.SETTLED, answer=BankAnswer(value_date=DAY))
        got = store.queries.order(order_id(1))
        assert got is not None
        assert type(got.value_date) is date
        assert got.value_date == DAY

    # --- forward-only moves ------------------------------------------------------------------

    def test_move_forward_keeps_earlier_answer(self, store: Storage) -> None:
        """A move sets the answer's fields; None keeps what an earlier move set."""
        self.add_orders(store, new_order(1))
        first = BankAnswer(status_code="ACSP", reason_text="in process", bank_ref="B-1")
        self.move(store, 1, TxState.ACKNOWLEDGED, answer=first, now=at(10))
        later = BankAnswer(status_code="ACSC", value_date=DAY)
        self.move(store, 1, TxState.SETTLED, answer=later, now=at(20))
        got = store.queries.order(order_id(1))
        assert got is not None
        assert got.state is TxState.SETTLED
        assert (got.status_code, got.reason_text, got.bank_ref) == ("ACSC", "in process", "B-1")
        assert (got.reason_code, got.value_date) == (None, DAY)
        assert (got.received_at, got.updated_at) == (T0, at(20))

    def test_orders_read_ahead_are_what_get_reads_and_never_stale(self, store: Storage) -> None:
        """prefetch reads many orders at once; get then answers as it would have (absent ones
        None), and after a move, an insert or a file sent in the same unit, the new state."""
        self.add_orders(store, new_order(1), new_order(2))
        with store.unit_of_work() as uow:
            plain = uow.orders.get(order_id(1))
            uow.orders.prefetch([order_id(1), order_id(2), order_id(3), order_id(1)])
            assert uow.orders.get(order_id(1)) == plain
            assert uow.orders.get(order_id(3)) is None
            first = uow.orders.get(order_id(1))
            assert first is not None
            uow.orders.move(first, TxState.REJECTED, BankAnswer(status_code="RJCT"), at(10))
            moved = uow.orders.get(order_id(1))
            assert moved is not None and moved.state is TxState.REJECTED
            assert uow.orders.add(new_order(3), at(10)) == "new"
            assert uow.orders.get(order_id(3)) is not None
            uow.orders.prefetch([order_id(2)])
            uow.orders.mark_batched([(order_id(2), "P-1")], "F-1", at(11))
            second = uow.orders.get(order_id(2))
            assert second is not None and second.state is TxState.BATCHED
            uow.orders.prefetch([order_id(2)])
            uow.files.sent("F-1", at(12))
            second = uow.orders.get(order_id(2))
            assert second is not None and second.state is TxState.SENT

    def test_run_unit_commits_what_the_step_writes_and_returns_its_result(
        self, store: Storage
    ) -> None:
        """`run_unit` gives the step's result and commits its reads' consequences; a step
        that raises writes nothing, and a move of an order read stale is a ConcurrentChange."""
        self.add_orders(store, new_order(1), new_order(2))

        def accept(uow: UnitOfWork) -> list[str]:
            uow.orders.prefetch([order_id(1), order_id(2)])
            moved = []
            for n in (1, 2):
                order = uow.orders.get(order_id(n))
                assert order is not None
                uow.orders.move(order, TxState.REJECTED, BankAnswer(status_code="RJCT"), at(1))
                uow.outbox.add(message(n), at(1))
                moved.append(order.order_id)
            return moved

        assert store.run_unit(accept) == [order_id(1), order_id(2)]
        assert store.queries.orders_by_state() == {"rejected": 2}
        assert store.queries.outbox_pending()[0] == 2

        def fail(uow: UnitOfWork) -> None:
            uow.outbox.add(message(3), at(2))
            raise UndoError

        with pytest.raises(UndoError):
            store.run_unit(fail)
        assert store.queries.outbox_pending()[0] == 2
        self.add_orders(store, new_order(4))
        stale = store.queries.order(order_id(4))
        assert stale is not None
        with store.unit_of_work() as uow:
            uow.orders.move(stale, TxState.REJECTED, BankAnswer(status_code="RJCT"), at(3))

        def late(uow: UnitOfWork) -> None:
            uow.orders.move(stale, TxState.REJECTED, BankAnswer(), at(4))

        with pytest.raises(ConcurrentChange):
            store.run_unit(late)

    def test_move_with_stale_order_is_concurrent_change(self, store: Storage) -> None:
        """Moving an order read before another move raises ConcurrentChange."""
        self.add_orders(store, new_order(1))
        stale = store.queries.order(order_id(1))
        assert stale is not None
        self.move(store, 1, TxState.ACKNOWLEDGED)
        with pytest.raises(ConcurrentChange), store.unit_of_work() as uow:
            uow.orders.move(stale, TxState.SETTLED, BankAnswer(bank_ref="LATE"), at(5))
        got = store.queries.order(order_id(1))
        assert got is not None
        assert (got.state, got.bank_ref) == (TxState.ACKNOWLEDGED, None)

    @pytest.mark.parametrize(
        ("path", "target"),
        [
            ((TxState.SETTLED,), TxState.ACKNOWLEDGED),
            ((TxState.ACKNOWLEDGED,), TxState.ACKNOWLEDGED),
            ((TxState.REJECTED,), TxState.SETTLED),
            ((), TxState.RETURNED),
        ],
    )
    def test_move_not_forward_is_refused(
        self, store: Storage, path: tuple[TxState, ...], target: TxState
    ) -> None:
        """A move can_move refuses raises ValueError and changes nothing."""
        self.add_orders(store, new_order(1))
        self.move(store, 1, *path)
        with store.unit_of_work() as uow:
            current = uow.orders.get(order_id(1))
            assert current is not None
            with pytest.raises(ValueError, match="cannot move"):
                uow.orders.move(current, target, BankAnswer(bank_ref="NO"), at(5))
        got = store.queries.order(order_id(1))
        assert got is not None
        assert got.state is (path[-1] if path else TxState.RECEIVED)
        assert got.bank_ref is None

    def test_states_in_file_names_only_that_files_orders(self, store: Storage) -> None:
        """states_in_file gives each named order's state when it was sent in that file; orders
        of another file, not yet batched, or unknown are left out."""
        self.add_orders(store, *(new_order(n) for n in range(1, 5)))
        with store.unit_of_work() as uow:
            uow.orders.mark_batched([(order_id(1), "P"), (order_id(2), "P")], "MSG-1", at(1))
            uow.orders.mark_batched([(order_id(3), "P")], "MSG-2", at(1))
        self.move(store, 2, TxState.ACKNOWLEDGED)
        named = [order_id(n) for n in (1, 2, 3, 4, 9)] + [order_id(1), ""]
        with store.unit_of_work() as uow:
            assert uow.orders.states_in_file(named, "MSG-1") == {
                order_id(1): TxState.BATCHED,
                order_id(2): TxState.ACKNOWLEDGED,
            }
            assert uow.orders.states_in_file([], "MSG-1") == {}

    def test_move_together_moves_each_as_move_would(self, store: Storage) -> None:
        """Orders moved together (more than a thousand) get the state and the answer, keep
        what the answer leaves None, and are read anew by get in the same unit."""
        orders = [new_order(n) for n in range(1, 1203)]
        self.add_orders(store, *orders)
        ids = [o.order_id for o in orders]
        self.move(store, 1, TxState.ACKNOWLEDGED, answer=BankAnswer(bank_ref="B-1"))
        answer = BankAnswer(status_code="RJCT", reason_code="AC04", reason_text="closed")
        with store.unit_of_work() as uow:
            uow.orders.prefetch(ids[:3])
            uow.orders.move_together(ids[1:], TxState.RECEIVED, TxState.REJECTED, answer, at(9))
            moved = uow.orders.get(ids[2])
            assert moved is not None and moved.state is TxState.REJECTED
        assert store.queries.orders_by_state() == {"rejected": 1201, "acknowledged": 1}
        got = store.queries.order(ids[1201])
        assert got is not None
        assert (got.status_code, got.reason_code, got.reason_text) == ("RJCT", "AC04", "closed")
        assert (got.bank_ref, got.updated_at) == (None, at(9))
        with store.unit_of_work() as uow:
            ack = BankAnswer(status_code="ACCP")
            uow.orders.move_together(ids[:1], TxState.ACKNOWLEDGED, TxState.SETTLED, ack, at(10))
        first = store.queries.order(ids[0])
        assert first is not None
        assert (first.state, first.status_code, first.bank_ref) == (TxState.SETTLED, "ACCP", "B-1")

    def test_move_together_with_a_moved_order_rolls_back(self, store: Storage) -> None:
        """One order no longer in the state named makes the unit raise ConcurrentChange and
        undo every move; a move that would not go forward is refused outright."""
        self.add_orders(store, new_order(1), new_order(2))
        self.move(store, 2, TxState.REJECTED)
        answer = BankAnswer(status_code="ACCP")
        with pytest.raises(ConcurrentChange), store.unit_of_work() as uow:
            uow.orders.move_together(
                [order_id(1), order_id(2)], TxState.RECEIVED, TxState.ACKNOWLEDGED, answer, at(3)
            )
        first = store.queries.order(order_id(1))
        assert first is not None and first.state is TxState.RECEIVED
        with pytest.raises(ValueError, match="cannot move"), store.unit_of_work() as uow:
            uow.orders.move_together(
                [order_id(2)], TxState.REJECTED, TxState.ACKNOWLEDGED, answer, at(3)
            )

    def test_mark_batched_moves_received_orders(self, store: Storage) -> None:
        """mark_batched puts received orders into a file and PmtInf."""
        self.add_orders(store, new_order(1), new_order(2), new_order(3))
        with store.unit_of_work() as uow:
            uow.orders.mark_batched(
                [(order_id(1), "PI-1"), (order_id(2), "PI-2"), (order_id(3), "PI-1")],
                "MSG-1",
                at(30),
            )
        with store.unit_of_work() as uow:
            got = uow.orders.get(order_id(2))
            assert uow.orders.ids_in_file("MSG-1") == [order_id(1), order_id(2), order_id(3)]
            assert uow.orders.ids_in_group("MSG-1", "PI-1") == [order_id(1), order_id(3)]
            assert uow.orders.ids_in_file("MSG-2") == []
        assert got is not None
        assert (got.state, got.msg_id, got.pmt_inf_id) == (TxState.BATCHED, "MSG-1", "PI-2")
        assert got.updated_at == at(30)

    def test_mark_batched_a_large_file_in_several_groups(self, store: Storage) -> None:
        """A file of more than a thousand orders in two PmtInf: every order in its own group."""
        orders = [new_order(n) for n in range(1, 2502)]
        self.add_orders(store, *orders)
        assignments = [(o.order_id, "PI-A" if n % 3 else "PI-B") for n, o in enumerate(orders)]
        with store.unit_of_work() as uow:
            uow.orders.mark_batched(assignments, "MSG-BIG", at(30))
        with store.unit_of_work() as uow:
            assert len(uow.orders.ids_in_file("MSG-BIG")) == len(orders)
            assert uow.orders.ids_in_group("MSG-BIG", "PI-B") == sorted(
                oid for oid, group in assignments if group == "PI-B"
            )

    def test_mark_batched_with_moved_order_rolls_back(self, store: Storage) -> None:
        """One order no longer received makes mark_batched raise and undo the whole unit."""
        self.add_orders(store, new_order(1), new_order(2))
        self.move(store, 2, TxState.REJECTED)
        with pytest.raises(ConcurrentChange), store.unit_of_work() as uow:
            uow.files.add(outbound_file("MSG-1"), T0)
            uow.orders.mark_batched([(order_id(1), "PI-1"), (order_id(2), "PI-1")], "MSG-1", T0)
        first = store.queries.order(order_id(1))
        assert first is not None
        assert (first.state, first.msg_id) == (TxState.RECEIVED, None)
        assert store.queries.files_by_state() == {}

    def test_files_sent_moves_file_and_its_batched_orders(self, store: Storage) -> None:
        """files.sent moves the file built→sent and its batched orders to sent, only those."""
        self.add_orders(store, new_order(1), new_order(2), new_order(3), new_order(4))
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file("MSG-1"), T0)
            uow.files.add(outbound_file("MSG-2"), T0)
            uow.orders.mark_batched([(order_id(1), "A"), (order_id(2), "A")], "MSG-1", T0)
            uow.orders.mark_batched([(order_id(3), "A")], "MSG-2", T0)
        self.move(store, 2, TxState.ACKNOWLEDGED)  # the bank answered before the confirm
        with store.unit_of_work() as uow:
            uow.files.sent("MSG-1", at(5))
        states = {o.order_id: o.state for o in store.queries.orders_in_state()}
        assert states == {
            order_id(1): TxState.SENT,
            order_id(2): TxState.ACKNOWLEDGED,
            order_id(3): TxState.BATCHED,
            order_id(4): TxState.RECEIVED,
        }
        assert store.queries.files_by_state() == {"sent": 1, "built": 1}
        assert store.queries.sent_files_by_partner() == {PARTNER: 1}

    def test_files_sent_keeps_a_status_that_arrived_first(self, store: Storage) -> None:
        """A file whose status arrived before its confirm keeps that status when sent."""
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file("MSG-1"), T0)
            uow.files.set_status("MSG-1", FileState.ACKNOWLEDGED, at(1))
        with store.unit_of_work() as uow:
            uow.files.sent("MSG-1", at(2))
        assert store.queries.files_by_state() == {"acknowledged": 1}
        assert store.queries.sent_files_by_partner() == {PARTNER: 1}

    @pytest.mark.parametrize("final", [FileState.REJECTED, FileState.PARTIALLY_REJECTED])
    def test_set_status_never_overwrites_a_rejection(
        self, store: Storage, final: FileState
    ) -> None:
        """A rejected or partially rejected file keeps that status."""
        self.sent_file(store, "MSG-1", T0)
        with store.unit_of_work() as uow:
            uow.files.set_status("MSG-1", final, at(1))
        with store.unit_of_work() as uow:
            uow.files.set_status("MSG-1", FileState.ACKNOWLEDGED, at(2))
            uow.files.sent("MSG-1", at(3))
        assert store.queries.files_by_state() == {final.value: 1}

    def test_set_status_moves_a_sent_file(self, store: Storage) -> None:
        """A status on a sent file replaces sent."""
        self.sent_file(store, "MSG-1", T0)
        with store.unit_of_work() as uow:
            uow.files.set_status("MSG-1", FileState.ACKNOWLEDGED, at(1))
        assert store.queries.files_by_state() == {"acknowledged": 1}

    # --- groups ------------------------------------------------------------------------------

    def test_received_in_group_oldest_first_with_limit(self, store: Storage) -> None:
        """received_in_group gives received orders of one group by time then id, up to limit."""
        self.add_orders(store, new_order(5), now=at(1))
        self.add_orders(store, new_order(3), new_order(4), now=at(2))
        self.add_orders(store, new_order(1), now=at(3))
        self.add_orders(store, new_order(2), now=at(0))
        self.add_orders(store, new_order(6, group_key="other"), now=at(0))
        self.move(store, 2, TxState.BATCHED)
        with store.unit_of_work() as uow:
            everything = uow.orders.received_in_group(GROUP, 10)
            first_two = uow.orders.received_in_group(GROUP, 2)
            assert uow.orders.received_in_group("none", 10) == []
        assert [o.order_id for o in everything] == [order_id(n) for n in (5, 3, 4, 1)]
        assert [o.order_id for o in first_two] == [order_id(5), order_id(3)]
        assert all(o.state is TxState.RECEIVED for o in everything)
        # The same question as committed, outside a unit of work (the batcher's read).
        assert store.queries.received_in_group(GROUP, 10) == everything
        assert store.queries.received_in_group(GROUP, 2) == first_two
        assert store.queries.received_in_group("none", 10) == []

    def test_waiting_groups_count_received_orders_with_the_newest_arrival(
        self, store: Storage
    ) -> None:
        """waiting_groups gives every group of received orders, by key, with its count, its
        partner (from the partner column, not from the key's wording) and its newest arrival;
        orders moved on are not counted."""
        quiet = dict(group_key="b-quiet", partner=OTHER_PARTNER)
        self.add_orders(store, new_order(1, **quiet), now=at(0))
        self.add_orders(store, new_order(2, **quiet), now=at(10))
        self.add_orders(store, new_order(3, group_key="c-busy"), now=at(100))
        self.add_orders(store, *(new_order(n, group_key="a-full") for n in (4, 5, 6)), now=at(99))
        self.add_orders(store, new_order(7, group_key="a-full"), now=at(120))
        self.move(store, 7, TxState.BATCHED)
        self.add_orders(store, new_order(8, group_key="e-gone"), now=at(50))
        self.move(store, 8, TxState.REJECTED)
        with store.unit_of_work() as uow:
            waiting = uow.orders.waiting_groups()
        assert waiting == [
            WaitingGroup("a-full", 3, PARTNER, at(99)),
            WaitingGroup("b-quiet", 2, OTHER_PARTNER, at(10)),
            WaitingGroup("c-busy", 1, PARTNER, at(100)),
        ]
        assert all(type(group.newest) is datetime for group in waiting)

    # --- outbox ------------------------------------------------------------------------------

    def test_enqueue_repeated_message_id_is_false(self, store: Storage) -> None:
        """A message id is enqueued once; a repeat is False and not added."""
        self.enqueue(store, message(1))
        with store.unit_of_work() as uow:
            assert not uow.outbox.enqueue(message(1), at(1))
        assert store.queries.outbox_pending() == (1, T0)

    def test_claim_oldest_first_up_to_limit(self, store: Storage) -> None:
        """claim gives the oldest messages by row id, up to the limit, as written."""
        for n in range(1, 6):
            self.enqueue(store, message(n), now=at(n))
        with store.unit_of_work() as uow:
            got = uow.outbox.claim("relay-a", 3, at(10), at(70))
        assert [p.message for p in got] == [message(1), message(2), message(3)]
        assert [p.row_id for p in got] == sorted(p.row_id for p in got)
        assert len({p.row_id for p in got}) == 3

    def test_claimed_messages_skip_other_owners(self, store: Storage) -> None:
        """Another owner never gets messages claimed and not expired."""
        self.enqueue(store, message(1), message(2), message(3))
        assert self.claim(store, "relay-a", 2) == ["msg-0001", "msg-0002"]
        assert self.claim(store, "relay-b", 10) == ["msg-0003"]
        assert self.claim(store, "relay-c", 10) == []

    def test_same_owner_reclaims_its_own(self, store: Storage) -> None:
        """An owner claiming again gets its own claimed messages back."""
        self.enqueue(store, message(1), message(2))
        assert self.claim(store, "relay-a", 1) == ["msg-0001"]
        assert self.claim(store, "relay-a", 10) == ["msg-0001", "msg-0002"]

    def test_expired_claim_is_taken_over(self, store: Storage) -> None:
        """A claim whose time has passed can be taken by another owner."""
        self.enqueue(store, message(1))
        with store.unit_of_work() as uow:
            assert len(uow.outbox.claim("relay-a", 10, T0, at(30))) == 1
        assert self.claim(store, "relay-b", now=at(30)) == []  # until is not yet past
        assert self.claim(store, "relay-b", now=at(31)) == ["msg-0001"]
        assert self.claim(store, "relay-a", now=at(32)) == []

    def test_mark_sent_leaves_pending(self, store: Storage) -> None:
        """A sent message is no longer pending nor claimable; oldest pending time follows."""
        self.enqueue(store, message(1), now=at(1))
        self.enqueue(store, message(2), now=at(2))
        self.enqueue(store, message(3), now=at(3))
        assert store.queries.outbox_pending() == (3, at(1))
        with store.unit_of_work() as uow:
            got = uow.outbox.claim("relay-a", 1, at(5), at(65))
            uow.outbox.mark_sent([p.row_id for p in got], at(6))
        assert store.queries.outbox_pending() == (2, at(2))
        assert self.claim(store, "relay-a") == ["msg-0002", "msg-0003"]

    def test_release_frees_claims(self, store: Storage) -> None:
        """Released messages are claimable by another owner at once."""
        self.enqueue(store, message(1), message(2))
        with store.unit_of_work() as uow:
            got = uow.outbox.claim("relay-a", 10, T0, at(60))
        with store.unit_of_work() as uow:
            uow.outbox.release([got[0].row_id], "relay-a")
        assert self.claim(store, "relay-b") == ["msg-0001"]

    def test_release_leaves_a_claim_taken_over_since(self, store: Storage) -> None:
        """A relay that gives up messages after its claim expired and another relay took them
        over releases nothing of the other's: they stay claimed until that one is done."""
        self.enqueue(store, message(1))
        with store.unit_of_work() as uow:
            (got,) = uow.outbox.claim("relay-a", 10, T0, at(30))
        assert self.claim(store, "relay-b", now=at(31)) == ["msg-0001"]
        with store.unit_of_work() as uow:
            uow.outbox.release([got.row_id], "relay-a")
        assert self.claim(store, "relay-c", now=at(32)) == []
        with store.unit_of_work() as uow:
            uow.outbox.release([got.row_id], "relay-b")
        assert self.claim(store, "relay-c", now=at(33)) == ["msg-0001"]

    def test_claim_file_partners_and_files_only(self, store: Storage) -> None:
        """Files for file-exchange partners are left out, or alone with files_only."""
        self.enqueue(
            store,
            message(1, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER),
            message(2, exchange=TO_BANK_EXCHANGE, routing_key=OTHER_PARTNER),
            message(3, exchange=LEDGER_EXCHANGE, routing_key=PARTNER),
            message(4, exchange=TO_BANK_EXCHANGE, routing_key="SHB"),
        )
        partners = [PARTNER, "SHB"]
        assert self.claim(store, "broker", file_partners=partners) == ["msg-0002", "msg-0003"]
        assert self.claim(store, "files", file_partners=partners, files_only=True) == [
            "msg-0001",
            "msg-0004",
        ]
        assert self.claim(store, "nothing", files_only=True) == []

    def test_claim_puts_files_to_banks_before_postings(self, store: Storage) -> None:
        """A file written after many postings is claimed first (an urgent payment does not wait
        behind a run's postings); postings keep their order, up to the limit."""
        self.enqueue(store, message(1), message(2), message(3))
        self.enqueue(store, message(4, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER))
        self.enqueue(store, message(5), message(6, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER))
        assert self.claim(store, "relay-a", 3) == ["msg-0004", "msg-0006", "msg-0001"]
        assert self.claim(store, "relay-b", 10) == ["msg-0002", "msg-0003", "msg-0005"]
        assert self.claim(store, "relay-a", 1) == ["msg-0004"]  # its own, files first again

    def test_claim_urgent_only_takes_only_urgent_files(self, store: Storage) -> None:
        """The urgent lane's claim takes only files to banks whose header says urgent, oldest
        first: a bulk run's older files and postings are left to the relay."""
        bulk = message(1, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER)
        urgent = [
            replace(
                message(n, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER),
                headers={"msg_id": f"msg-{n:04d}", PRIORITY_HEADER: "urgent"},
            )
            for n in (3, 5)
        ]
        self.enqueue(store, bulk, message(2), urgent[0], message(4), urgent[1])
        assert self.claim(store, "urgent", urgent_only=True) == ["msg-0003", "msg-0005"]
        assert self.claim(store, "relay", 10) == ["msg-0001", "msg-0002", "msg-0004"]

    def test_claim_without_file_partners_takes_all(self, store: Storage) -> None:
        """With no file partners every pending message is claimable."""
        self.enqueue(
            store,
            message(1, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER),
            message(2),
        )
        assert self.claim(store, "relay-a") == ["msg-0001", "msg-0002"]

    def lock(self, store: Storage, owner: str, limit: int = 10, **kw: Any) -> list[str]:
        """Message ids `lock_pending` takes at T0, in a unit that then ends, marking nothing."""
        with store.unit_of_work() as uow:
            got = uow.outbox.lock_pending(owner, limit, T0, timedelta(seconds=30), **kw)
        return [pending.message.message_id for pending in got]

    def test_lock_pending_takes_as_claim_and_writes_nothing(self, store: Storage) -> None:
        """lock_pending takes what claim would (files to banks first, oldest first, up to the
        limit; urgent files alone with urgent_only; file-exchange partners left out), and
        leaves no claim behind: once its unit ends, another relay takes the same messages."""
        urgent = replace(
            message(5, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER),
            headers={"msg_id": "msg-0005", PRIORITY_HEADER: "urgent"},
        )
        self.enqueue(store, message(1), message(2))
        self.enqueue(store, message(3, exchange=TO_BANK_EXCHANGE, routing_key=PARTNER))
        self.enqueue(store, message(4, exchange=TO_BANK_EXCHANGE, routing_key="SHB"), urgent)
        assert self.lock(store, "relay-a", 3) == ["msg-0003", "msg-0004", "msg-0005"]
        assert self.lock(store, "relay-a", 10, file_partners=["SHB"]) == [
            "msg-0003",
            "msg-0005",
            "msg-0001",
            "msg-0002",
        ]
        assert self.lock(store, "urgent", 10, urgent_only=True) == ["msg-0005"]
        assert self.claim(store, "relay-b", 2) == ["msg-0003", "msg-0004"]
        # Claimed by another relay (not expired): skipped; its own claims it takes again.
        assert self.lock(store, "relay-a", 10) == ["msg-0005", "msg-0001", "msg-0002"]
        assert self.lock(store, "relay-b", 2) == ["msg-0003", "msg-0004"]

    def test_lock_pending_then_mark_in_one_unit(self, store: Storage) -> None:
        """Taken, marked sent and parked in the unit that locked them: sent stays sent,
        parked is parked, the rest is still pending for the next relay."""
        self.enqueue(store, message(1), message(2), message(3))
        with store.unit_of_work() as uow:
            got = uow.outbox.lock_pending("relay-a", 10, T0, timedelta(seconds=30))
            uow.outbox.mark_sent([got[0].row_id], at(1))
            uow.outbox.park(got[1].row_id, "NO_ROUTE", at(1))
        assert self.lock(store, "relay-b") == ["msg-0003"]
        assert [p.message_id for p in store.queries.outbox_parked()] == ["msg-0002"]
        assert store.queries.outbox_pending() == (1, T0)

    def test_park_and_unpark(self, store: Storage) -> None:
        """A parked message leaves the line with its reason; unpark puts it back once."""
        self.enqueue(store, message(1), now=at(1))
        self.enqueue(store, message(2), now=at(2))
        ids = self.row_ids(store)
        with store.unit_of_work() as uow:
            uow.outbox.claim("relay-a", 10, at(3), at(60))
            uow.outbox.park(ids["msg-0001"], "NO_ROUTE", at(4))
        assert store.queries.outbox_pending() == (1, at(2))
        [parked] = store.queries.outbox_parked()
        assert (parked.message_id, parked.exchange, parked.routing_key) == (
            "msg-0001",
            LEDGER_EXCHANGE,
            "posting.settled",
        )
        assert (parked.parked_at, parked.parked_why) == (at(4), "NO_ROUTE")
        assert (parked.body, parked.status) == (message(1).body, OutboxStatus.PARKED)
        assert store.queries.outbox_by_status()[OutboxStatus.PARKED] == 1
        with store.unit_of_work() as uow:
            assert [p.message_id for p in uow.outbox.parked()] == ["msg-0001"]
            assert uow.outbox.parked(["msg-0002", "msg-9999"]) == []
            assert uow.outbox.parked([]) == []
            assert uow.outbox.unpark("msg-0001")
            assert not uow.outbox.unpark("msg-0001")
            assert not uow.outbox.unpark("msg-9999")
        assert store.queries.outbox_parked() == []
        assert store.queries.outbox_pending() == (2, at(1))
        # The park dropped relay-a's claim: another relay gets it at once.
        assert self.claim(store, "relay-b", now=at(5)) == ["msg-0001"]

    def test_drop_keeps_message_out_for_good(self, store: Storage) -> None:
        """A dropped message has the status dropped, is no longer parked, keeps why it was
        parked, and cannot be unparked."""
        self.enqueue(store, message(1), message(2))
        ids = self.row_ids(store)
        with store.unit_of_work() as uow:
            assert not uow.outbox.drop("msg-0001", at(1))  # not parked
            uow.outbox.park(ids["msg-0001"], "NO_ROUTE", at(2))
            uow.outbox.park(ids["msg-0002"], "NO_ROUTE", at(2))
        with store.unit_of_work() as uow:
            assert uow.outbox.drop("msg-0001", at(3))
            assert not uow.outbox.drop("msg-0001", at(4))
        with store.unit_of_work() as uow:
            assert not uow.outbox.unpark("msg-0001")
        [parked] = store.queries.outbox_parked()
        assert (parked.message_id, parked.parked_why) == ("msg-0002", "NO_ROUTE")
        assert store.queries.outbox_by_status() == {
            OutboxStatus.PENDING: 0,
            OutboxStatus.PARKED: 1,
            OutboxStatus.DROPPED: 1,
        }
        assert store.queries.outbox_pending() == (0, None)
        assert self.claim(store, "relay-a") == []

    def test_parked_means_one_thing(self, store: Storage) -> None:
        """Parked is one status: a message sent meanwhile (by another instance whose claim
        outlived ours) is not parked by a late park, and counts agree with the list."""
        self.enqueue(store, message(1), message(2), message(3))
        ids = self.row_ids(store)
        with store.unit_of_work() as uow:
            uow.outbox.mark_sent([ids["msg-0001"]], at(1))
            uow.outbox.park(ids["msg-0001"], "NO_ROUTE", at(2))  # too late: it was sent
            uow.outbox.park(ids["msg-0002"], "NO_ROUTE", at(2))
            uow.outbox.park(ids["msg-0003"], "NO_ROUTE", at(2))
        with store.unit_of_work() as uow:
            assert uow.outbox.drop("msg-0003", at(3))
        parked = store.queries.outbox_parked()
        assert [p.message_id for p in parked] == ["msg-0002"]
        counts = store.queries.outbox_by_status()
        assert counts[OutboxStatus.PARKED] == len(parked) == 1
        assert counts[OutboxStatus.DROPPED] == 1
        assert counts[OutboxStatus.PENDING] == store.queries.outbox_pending()[0] == 0
        with store.unit_of_work() as uow:
            # A parked message the broker confirmed after all (a late relay) is sent.
            uow.outbox.mark_sent([ids["msg-0002"]], at(4))
        assert store.queries.outbox_parked() == []

    # --- counters ----------------------------------------------------------------------------

    def test_counters_count_from_one_per_name(self, store: Storage) -> None:
        """Each named counter gives 1, 2, 3… on its own, across units of work."""
        with store.unit_of_work() as uow:
            got = [uow.counters.next_value("msg"), uow.counters.next_value("msg")]
            got.append(uow.counters.next_value("pmtinf"))
        with store.unit_of_work() as uow:
            got += [uow.counters.next_value("msg"), uow.counters.next_value("pmtinf")]
        assert got == [1, 2, 1, 3, 2]

    def test_committed_counter_values_never_repeat(self, store: Storage) -> None:
        """Values handed out by committed units never repeat, rolled-back units in between."""
        committed: list[int] = []
        for round_ in range(4):
            with store.unit_of_work() as uow:
                committed.append(uow.counters.next_value("msg"))
            with pytest.raises(UndoError), store.unit_of_work() as uow:
                uow.counters.next_value("msg")
                raise UndoError(round_)
        assert len(set(committed)) == len(committed)
        assert committed == sorted(committed)
        assert committed[0] == 1

    # --- inbound -----------------------------------------------------------------------------

    def test_first_sight_then_seen(self, store: Storage) -> None:
        """The same file from a partner is new once, then seen."""
        raw = b"<Document>camt.054</Document>"
        with store.unit_of_work() as uow:
            assert uow.inbound.first_sight(PARTNER, "M-1", "camt.054", raw, T0)
        with store.unit_of_work() as uow:
            assert not uow.inbound.first_sight(PARTNER, "M-1", "camt.054", raw, at(1))
        assert store.queries.applied_by_type() == [(PARTNER, "camt.054", 1)]

    def test_known_file_keeps_nothing(self, store: Storage) -> None:
        """known_file says what first_sight would, without keeping the file."""
        with store.unit_of_work() as uow:
            assert not uow.inbound.known_file(PARTNER, "M-1", sha256(b"first"))
        with store.unit_of_work() as uow:
            assert uow.inbound.first_sight(PARTNER, "M-1", "camt.054", b"first", T0)
            assert uow.inbound.known_file(PARTNER, "M-1", sha256(b"first"))
            assert not uow.inbound.known_file(OTHER_PARTNER, "M-1", sha256(b"first"))
        with pytest.raises(InvalidMessage), store.unit_of_work() as uow:
            uow.inbound.known_file(PARTNER, "M-1", sha256(b"second"))
        assert store.queries.applied_by_type() == [(PARTNER, "camt.054", 1)]

    def test_reused_msg_id_with_other_bytes_is_invalid(self, store: Storage) -> None:
        """A partner's MsgId reused for other bytes is refused; another partner's is fine."""
        with store.unit_of_work() as uow:
            assert uow.inbound.first_sight(PARTNER, "M-1", "camt.054", b"first", T0)
        with pytest.raises(InvalidMessage), store.unit_of_work() as uow:
            uow.inbound.first_sight(PARTNER, "M-1", "camt.054", b"second", at(1))
        with store.unit_of_work() as uow:
            assert uow.inbound.first_sight(OTHER_PARTNER, "M-1", "camt.054", b"second", at(1))
        assert store.queries.seen_inbound(PARTNER, sha256(b"first")) == ("applied", None)
        assert store.queries.seen_inbound(PARTNER, sha256(b"second")) is None

    def test_quarantine_once_per_partner_and_bytes(self, store: Storage) -> None:
        """A refused file is kept once per (partner, bytes)."""
        with store.unit_of_work() as uow:
            assert uow.inbound.quarantine(PARTNER, sha256(b"bad"), 3, "bad signature", T0)
            assert not uow.inbound.quarantine(PARTNER, sha256(b"bad"), 3, "other", at(1))
            assert uow.inbound.quarantine(OTHER_PARTNER, sha256(b"bad"), 3, "bad signature", at(1))
            assert uow.inbound.quarantine(PARTNER, sha256(b"worse"), 5, "not XML", at(2))
        assert store.queries.quarantined_count() == 3
        assert store.queries.quarantine_reasons() == [
            (OTHER_PARTNER, "bad signature", 1),
            (PARTNER, "bad signature", 1),
            (PARTNER, "not XML", 1),
        ]
        assert store.queries.quarantine_by_class() == [
            (OTHER_PARTNER, "signature", 1),
            (PARTNER, "content", 1),
            (PARTNER, "signature", 1),
        ]

    def test_quarantine_keeps_the_class_it_is_given(self, store: Storage) -> None:
        """The class given with a reason is kept as given; without one it is read from the
        reason's wording once, when the file is kept."""
        with store.unit_of_work() as uow:
            uow.inbound.quarantine(PARTNER, sha256(b"a"), 1, "bad signature", T0, ReasonClass.LIMIT)
            uow.inbound.quarantine(PARTNER, sha256(b"b"), 1, "x fails its XSD: line 1", T0)
            uow.inbound.quarantine(PARTNER, sha256(b"c"), 1, "fault while reading the file: E", T0)
        assert store.queries.quarantine_by_class() == [
            (PARTNER, "fault", 1),
            (PARTNER, "limit", 1),
            (PARTNER, "schema", 1),
        ]

    def test_quarantined_rows_keep_hash_and_size(self, store: Storage) -> None:
        """A quarantine row keeps the file's hash, size, reason and time (its bytes are in the
        quarantine folder), newest first; no bytes are read back from the database."""
        with store.unit_of_work() as uow:
            uow.inbound.quarantine(PARTNER, sha256(b"bad"), 3, "bad signature", T0)
            uow.inbound.quarantine(OTHER_PARTNER, sha256(b"worse"), 5, "not XML", at(2))
        rows = store.queries.quarantined()
        assert [(r.partner, r.sha256, r.size, r.reason) for r in rows] == [
            (OTHER_PARTNER, sha256(b"worse"), 5, "not XML"),
            (PARTNER, sha256(b"bad"), 3, "bad signature"),
        ]
        assert rows[0].received_at == at(2)
        assert store.queries.quarantined(limit=1) == rows[:1]
        assert store.queries.quarantined_raw(sha256(b"bad")) is None

    def test_seen_inbound(self, store: Storage) -> None:
        """seen_inbound tells applied from quarantined (with its reason) from never seen."""
        with store.unit_of_work() as uow:
            uow.inbound.first_sight(PARTNER, "M-1", "pain.002", b"good", T0)
            uow.inbound.quarantine(PARTNER, sha256(b"bad"), len(b"bad"), "bad signature", T0)
        q = store.queries
        assert q.seen_inbound(PARTNER, sha256(b"good")) == ("applied", None)
        assert q.seen_inbound(PARTNER, sha256(b"bad")) == ("quarantined", "bad signature")
        assert q.seen_inbound(OTHER_PARTNER, sha256(b"good")) is None
        assert q.seen_inbound(OTHER_PARTNER, sha256(b"bad")) is None
        assert q.seen_inbound(PARTNER, sha256(b"never")) is None

    def test_entries_applied_once_per_partner(self, store: Storage) -> None:
        """An applied entry is remembered by partner and bank reference."""
        with store.unit_of_work() as uow:
            assert not uow.inbound.entry_applied(PARTNER, "REF-1")
            uow.inbound.add_entry(PARTNER, "REF-1", "M-1", "settled", T0)
            uow.inbound.add_entry(PARTNER, "REF-1", "M-2", "settled", at(1))
        with store.unit_of_work() as uow:
            assert uow.inbound.entry_applied(PARTNER, "REF-1")
            assert not uow.inbound.entry_applied(OTHER_PARTNER, "REF-1")
            assert not uow.inbound.entry_applied(PARTNER, "REF-2")

    def test_applied_entries_in_one_question(self, store: Storage) -> None:
        """applied_entries answers entry_applied for many references at once, written in the
        same unit of work included."""
        with store.unit_of_work() as uow:
            uow.inbound.add_entry(PARTNER, "REF-1", "M-1", "settled", T0)
            uow.inbound.add_entry(OTHER_PARTNER, "REF-2", "M-1", "settled", T0)
            odd = 'REF "7", {ệ}\\'  # quotes, a comma, braces, a backslash: passed as data
            uow.inbound.add_entry(PARTNER, odd, "M-1", "settled", T0)
            refs = [f"REF-{n}" for n in range(1, 2500)]
            assert uow.inbound.applied_entries(PARTNER, refs) == {"REF-1"}
            assert uow.inbound.applied_entries(PARTNER, [odd, "REF-1", odd]) == {odd, "REF-1"}
        with store.unit_of_work() as uow:
            assert uow.inbound.applied_entries(OTHER_PARTNER, ["REF-1", "REF-2"]) == {"REF-2"}
            assert uow.inbound.applied_entries(PARTNER, []) == set()

    def test_writes_nothing_waits_for_are_done_by_the_end_of_the_unit(self, store: Storage) -> None:
        """outbox.add and a move may be sent with the next statements: what they wrote is read
        back in the same unit and after it, a repeated message id leaves the first, and a
        stale move still undoes the whole unit (at the latest when it ends)."""
        self.add_orders(store, new_order(1), new_order(2))
        with store.unit_of_work() as uow:
            uow.outbox.add(message(1), T0)
            uow.outbox.add(replace(message(1), routing_key="other"), at(1))
            first = uow.orders.get(order_id(1))
            assert first is not None
            uow.orders.move(first, TxState.ACKNOWLEDGED, BankAnswer(), at(2))
            moved = uow.orders.get(order_id(1))
            assert moved is not None and moved.state is TxState.ACKNOWLEDGED
        with store.unit_of_work() as uow:
            [pending] = uow.outbox.claim("relay", 10, at(5), at(6))
        assert pending.message == message(1)
        stale = store.queries.order(order_id(2))
        assert stale is not None
        self.move(store, 2, TxState.ACKNOWLEDGED)
        with pytest.raises(ConcurrentChange), store.unit_of_work() as uow:
            uow.outbox.add(message(2), at(3))
            uow.orders.move(stale, TxState.SETTLED, BankAnswer(bank_ref="LATE"), at(5))
        assert self.claim(store, "relay-2", now=at(10)) == ["msg-0001"]  # message 2 undone
        self.add_orders(store, new_order(3))
        fresh = store.queries.order(order_id(3))
        assert fresh is not None
        with pytest.raises(ConcurrentChange), store.unit_of_work() as uow:
            uow.orders.move(fresh, TxState.ACKNOWLEDGED, BankAnswer(), at(6))
            uow.orders.move(stale, TxState.SETTLED, BankAnswer(bank_ref="LATE"), at(6))
        third = store.queries.order(order_id(3))
        assert third is not None and third.state is TxState.RECEIVED  # undone with the unit

    def test_duplicate_file_answers_kept_once_with_their_files_state(self, store: Storage) -> None:
        """A duplicate-file answer is kept once per partner and MsgId; the queries give the
        latest first, with the state of the file it refers to now, and count them per partner."""
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file("F-1"), T0)
            uow.files.sent("F-1", at(1))
            first = DuplicateAnswer(PARTNER, "D-1", "F-1", "duplicate file")
            assert uow.inbound.record_duplicate_answer(first, at(2))
            assert not uow.inbound.record_duplicate_answer(first, at(3))
            assert uow.inbound.record_duplicate_answer(
                DuplicateAnswer(PARTNER, "D-2", "F-1"), at(4)
            )
            other = DuplicateAnswer(OTHER_PARTNER, "D-1", "F-9", None)
            assert uow.inbound.record_duplicate_answer(other, at(5))
        with store.unit_of_work() as uow:
            uow.files.set_status("F-1", FileState.ACKNOWLEDGED, at(6))
        q = store.queries
        assert q.duplicate_answers_by_partner() == {PARTNER: 2, OTHER_PARTNER: 1}
        answers = q.duplicate_answers()
        assert [(a.partner, a.msg_id) for a in answers] == [
            (OTHER_PARTNER, "D-1"),
            (PARTNER, "D-2"),
            (PARTNER, "D-1"),
        ]
        assert [a.file_state for a in answers] == [
            None,
            FileState.ACKNOWLEDGED,
            FileState.ACKNOWLEDGED,
        ]
        assert (answers[2].reason_text, answers[2].received_at) == ("duplicate file", at(2))
        assert [a.msg_id for a in q.duplicate_answers(limit=1)] == ["D-1"]

    def test_unmatched_counted_by_partner(self, store: Storage) -> None:
        """UnmatchedLine lines are kept and counted per partner."""
        detail = {"amount": Decimal("606000.00"), "day": DAY, "note": "không khớp"}
        with store.unit_of_work() as uow:
            uow.inbound.unmatched(UnmatchedLine(PARTNER, "M-1", "E2E-1", "unknown", detail), T0)
            uow.inbound.unmatched(UnmatchedLine(PARTNER, "M-1", None, "no ref", {}), T0)
            uow.inbound.unmatched(UnmatchedLine(OTHER_PARTNER, "M-9", "X", "unknown", {}), T0)
        assert store.queries.unmatched_by_partner() == {PARTNER: 2, OTHER_PARTNER: 1}

    # --- evidence ----------------------------------------------------------------------------

    def test_revenue_first_insert_wins(self, store: Storage) -> None:
        """A collection is recorded once per bank reference; the first amount stays."""
        with store.unit_of_work() as uow:
            assert uow.evidence.add_revenue(revenue("R-1", amount="1500000"), T0)
        with store.unit_of_work() as uow:
            assert not uow.evidence.add_revenue(revenue("R-1", amount="1"), at(1))
        assert store.queries.booked_credits(PARTNER, DAY) == [
            Booked("R-1", Decimal("1500000"), "VND", "R-1")
        ]

    def test_return_repeated_is_kept_once(self, store: Storage) -> None:
        """A return repeated by its bank reference is kept once, the first one."""
        with store.unit_of_work() as uow:
            uow.evidence.add_return(returned("RT-1", 1, amount="606000.00"), T0)
            uow.evidence.add_return(returned("RT-1", 1, amount="5"), at(1))
        [credit] = store.queries.booked_credits(PARTNER, DAY)
        assert credit == Booked("RT-1", Decimal("606000.00"), "VND", "RT-1")
        assert same_decimal(credit.amount, "606000.00")

    def test_booked_credits_of_the_day(self, store: Storage) -> None:
        """booked_credits gives revenue and returns of one partner and value date."""
        with store.unit_of_work() as uow:
            uow.evidence.add_revenue(revenue("R-1", amount="100.5"), T0)
            uow.evidence.add_revenue(revenue("R-2", day=DAY + timedelta(days=1)), T0)
            uow.evidence.add_revenue(revenue("R-3", day=None), T0)
            uow.evidence.add_return(returned("RT-1", 1), T0)
            other = Revenue(OTHER_PARTNER, "R-9", "M", Decimal(1), "VND", DAY, None)
            uow.evidence.add_revenue(other, T0)
        got = store.queries.booked_credits(PARTNER, DAY)
        assert sorted(got, key=lambda b: b.reference) == [
            Booked("R-1", Decimal("100.5"), "VND", "R-1"),
            Booked("RT-1", Decimal("606000"), "VND", "RT-1"),
        ]

    def test_statements_kept_once_with_exact_balances(self, store: Storage) -> None:
        """A statement is kept once and comes back equal, negative and zero balances exact."""
        kept = statement("S-1")
        with store.unit_of_work() as uow:
            assert uow.evidence.add_statement(kept, T0)
        with store.unit_of_work() as uow:
            assert not uow.evidence.add_statement(statement("S-1", opening="1"), at(1))
        [got] = store.queries.statements_of_day(DAY)
        assert got == kept
        assert same_decimal(got.opening, "-1250000.50")
        assert same_decimal(got.closing, "0.00")
        assert type(got.stmt_date) is date

    def test_statement_without_balances(self, store: Storage) -> None:
        """A statement without opening and closing keeps them None."""
        kept = statement("S-1", opening=None, closing=None)
        with store.unit_of_work() as uow:
            uow.evidence.add_statement(kept, T0)
        assert store.queries.statements_of_day(DAY) == [kept]

    def test_statements_of_day_by_partner_and_account(self, store: Storage) -> None:
        """statements_of_day is ordered by partner then account, and narrows to one partner."""
        with store.unit_of_work() as uow:
            uow.evidence.add_statement(statement("S-3", account="2"), T0)
            uow.evidence.add_statement(statement("S-2", account="1"), T0)
            uow.evidence.add_statement(statement("S-1", partner=OTHER_PARTNER, account="9"), T0)
            uow.evidence.add_statement(statement("S-4", day=DAY + timedelta(days=1)), T0)
        q = store.queries
        assert [s.statement_id for s in q.statements_of_day(DAY)] == ["S-1", "S-2", "S-3"]
        assert [s.statement_id for s in q.statements_of_day(DAY, PARTNER)] == ["S-2", "S-3"]
        assert q.statements_of_day(DAY, "NOBODY") == []
        assert q.statement_days() == [DAY, DAY + timedelta(days=1)]

    def test_statement_entries_by_bank_ref(self, store: Storage) -> None:
        """Statement entries are kept once per bank reference and listed by it."""
        with store.unit_of_work() as uow:
            assert uow.evidence.add_statement_entry(entry("B-2", "S-1", amount="-0.50"))
            assert uow.evidence.add_statement_entry(entry("B-1", "S-1"))
            assert not uow.evidence.add_statement_entry(entry("B-1", "S-2"))
            assert uow.evidence.add_statement_entry(entry("B-3", "S-2"))
        got = store.queries.statement_entries(PARTNER, "S-1")
        assert got == [entry("B-1", "S-1"), entry("B-2", "S-1", amount="-0.50")]
        assert same_decimal(got[0].amount, "606000.00")
        assert same_decimal(got[1].amount, "-0.50")
        assert store.queries.statement_entries(OTHER_PARTNER, "S-1") == []

    def test_booked_payments_settled_and_returned(self, store: Storage) -> None:
        """booked_payments gives settled and returned orders of a partner and value date."""
        orders = [new_order(n, amount="606000.00") for n in (1, 2, 3, 4)]
        self.add_orders(store, *orders, new_order(5, partner=OTHER_PARTNER))
        paid = BankAnswer(status_code="ACSC", bank_ref="B-1", value_date=DAY)
        self.move(store, 2, TxState.SETTLED, answer=paid)
        self.move(store, 1, TxState.SETTLED, TxState.RETURNED, answer=paid)
        self.move(store, 3, TxState.ACKNOWLEDGED, answer=paid)
        late = BankAnswer(bank_ref="B-4", value_date=DAY + timedelta(days=1))
        self.move(store, 4, TxState.SETTLED, answer=late)
        self.move(store, 5, TxState.SETTLED, answer=paid)
        got = store.queries.booked_payments(PARTNER, DAY)
        assert got == [
            Booked(order_id(n), Decimal("606000.00"), "VND", "B-1", orders[n - 1].payload)
            for n in (1, 2)
        ]
        assert same_decimal(got[0].amount, "606000.00")

    # --- files -------------------------------------------------------------------------------

    def test_file_partner_of(self, store: Storage) -> None:
        """partner_of names the partner a file was built for, None for an unknown file."""
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file("MSG-1", partner=OTHER_PARTNER), T0)
        with store.unit_of_work() as uow:
            assert uow.files.partner_of("MSG-1") == OTHER_PARTNER
            assert uow.files.partner_of("MSG-2") is None
        assert store.queries.files_by_state() == {"built": 1}

    def test_overdue_unflagged(self, store: Storage) -> None:
        """overdue_unflagged lists sent files without status, not flagged, oldest first."""
        self.sent_file(store, "LATE-2", at(20))
        self.sent_file(store, "LATE-1", at(10))
        self.sent_file(store, "RECENT", at(100))
        self.sent_file(store, "ANSWERED", at(10))
        self.sent_file(store, "FLAGGED", at(10))
        self.sent_file(store, "OTHER", at(10), partner=OTHER_PARTNER)
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file("BUILT"), at(0))
            uow.files.status_reported("ANSWERED", at(30))
            assert uow.files.flag_overdue("FLAGGED", PARTNER, at(40))
        with store.unit_of_work() as uow:
            got = uow.files.overdue_unflagged(PARTNER, at(50))
        assert got == [("LATE-1", at(10)), ("LATE-2", at(20))]
        assert all(sent.utcoffset() is not None for _, sent in got)
        # The query ignores flags; LATE-1 and FLAGGED were sent at the same time.
        overdue = store.queries.overdue_files(PARTNER, at(50))
        assert sorted(overdue[:2]) == ["FLAGGED", "LATE-1"]
        assert overdue[2:] == ["LATE-2"]

    def test_flag_overdue_once(self, store: Storage) -> None:
        """A file is flagged overdue once, by whichever instance comes first."""
        self.sent_file(store, "MSG-1", T0)
        with store.unit_of_work() as uow:
            assert uow.files.flag_overdue("MSG-1", PARTNER, at(10))
        with store.unit_of_work() as uow:
            assert not uow.files.flag_overdue("MSG-1", PARTNER, at(20))
            assert uow.files.overdue_unflagged(PARTNER, at(30)) == []

    def test_a_reported_file_is_not_flagged(self, store: Storage) -> None:
        """A file whose report was applied after the deadline watch listed it is not flagged
        (nothing would ever clear the flag), nor is a file the database does not hold."""
        self.sent_file(store, "MSG-1", T0)
        with store.unit_of_work() as uow:
            assert uow.files.overdue_unflagged(PARTNER, at(10)) == [("MSG-1", T0)]
        with store.unit_of_work() as uow:
            uow.files.status_reported("MSG-1", at(11))
        with store.unit_of_work() as uow:
            assert not uow.files.flag_overdue("MSG-1", PARTNER, at(12))
            assert not uow.files.flag_overdue("NO-SUCH-FILE", PARTNER, at(12))
        with store.unit_of_work() as uow:
            assert uow.files.clear_overdue("MSG-1", PARTNER, at(13)) is None

    def test_clear_overdue_once(self, store: Storage) -> None:
        """clear_overdue gives the flag time once, then None; None for a file never flagged."""
        self.sent_file(store, "MSG-1", T0)
        with store.unit_of_work() as uow:
            assert uow.files.clear_overdue("MSG-1", PARTNER, at(5)) is None
            uow.files.flag_overdue("MSG-1", PARTNER, at(10))
        with store.unit_of_work() as uow:
            assert uow.files.clear_overdue("MSG-1", PARTNER, at(20)) == at(10)
        with store.unit_of_work() as uow:
            assert uow.files.clear_overdue("MSG-1", PARTNER, at(30)) is None

    def test_status_reported_ends_overdue(self, store: Storage) -> None:
        """A file with a status report is no longer overdue."""
        self.sent_file(store, "MSG-1", T0)
        assert store.queries.overdue_files(PARTNER, at(10)) == ["MSG-1"]
        assert store.queries.overdue_files(PARTNER, T0) == []
        assert store.queries.overdue_files(OTHER_PARTNER, at(10)) == []
        with store.unit_of_work() as uow:
            uow.files.status_reported("MSG-1", at(5))
            uow.files.status_reported("MSG-1", at(6))
        assert store.queries.overdue_files(PARTNER, at(10)) == []

    def test_overdue_compares_instants_across_offsets(self, store: Storage) -> None:
        """A file sent at 08:00+07:00 is before a 02:00Z limit, whatever the offsets."""
        sent = datetime(2026, 11, 2, 8, 0, tzinfo=HANOI)  # 01:00Z
        self.sent_file(store, "MSG-1", sent)
        limit = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
        assert store.queries.overdue_files(PARTNER, limit) == ["MSG-1"]
        with store.unit_of_work() as uow:
            assert uow.files.overdue_unflagged(PARTNER, limit) == [("MSG-1", sent)]
        assert store.queries.overdue_files(PARTNER, datetime(2026, 11, 2, 0, 30, tzinfo=UTC)) == []

    def test_outbox_oldest_across_offsets(self, store: Storage) -> None:
        """The oldest pending message is the earliest instant, whatever the offsets."""
        self.enqueue(store, message(1), now=datetime(2026, 11, 2, 1, 30, tzinfo=UTC))
        self.enqueue(store, message(2), now=datetime(2026, 11, 2, 8, 0, tzinfo=HANOI))
        assert store.queries.outbox_pending() == (2, datetime(2026, 11, 2, 1, 0, tzinfo=UTC))

    # --- work claims -------------------------------------------------------------------------

    def test_work_claim_free_then_held(self, store: Storage) -> None:
        """A free claim is taken; another owner cannot take it while it is valid."""
        with store.unit_of_work() as uow:
            assert uow.claims.claim("batch", GROUP, "gw-1", T0, at(30))
        with store.unit_of_work() as uow:
            assert not uow.claims.claim("batch", GROUP, "gw-2", at(10), at(40))
            assert uow.claims.holds("batch", GROUP, "gw-1", at(10))
            assert not uow.claims.holds("batch", GROUP, "gw-2", at(10))
            assert uow.claims.claim("batch", "other-group", "gw-2", at(10), at(40))
            assert uow.claims.claim("file", GROUP, "gw-2", at(10), at(40))

    def test_work_claim_taken_over_after_expiry(self, store: Storage) -> None:
        """After its expiry another owner takes the claim; the old holder no longer holds it."""
        with store.unit_of_work() as uow:
            assert uow.claims.claim("batch", GROUP, "gw-1", T0, at(30))
        with store.unit_of_work() as uow:
            assert uow.claims.claim("batch", GROUP, "gw-2", at(31), at(60))
        with store.unit_of_work() as uow:
            assert uow.claims.holds("batch", GROUP, "gw-2", at(32))
            assert not uow.claims.holds("batch", GROUP, "gw-1", at(32))
            assert not uow.claims.claim("batch", GROUP, "gw-1", at(32), at(90))

    def test_work_claim_held_until_its_exact_expiry(self, store: Storage) -> None:
        """At the very instant a claim expires it is still held (expiry is `until < now`)."""
        with store.unit_of_work() as uow:
            assert uow.claims.claim("batch", GROUP, "gw-1", T0, at(30))
        with store.unit_of_work() as uow:
            assert not uow.claims.claim("batch", GROUP, "gw-2", at(30), at(60))
            assert uow.claims.claim("batch", GROUP, "gw-2", at(30.000001), at(60))

    def test_work_claim_renewed_by_its_owner(self, store: Storage) -> None:
        """The holder may claim again, extending its claim."""
        with store.unit_of_work() as uow:
            assert uow.claims.claim("batch", GROUP, "gw-1", T0, at(30))
            assert uow.claims.claim("batch", GROUP, "gw-1", at(20), at(90))
        with store.unit_of_work() as uow:
            assert not uow.claims.claim("batch", GROUP, "gw-2", at(60), at(120))

    def test_work_claim_extended_only_while_held(self, store: Storage) -> None:
        """extend moves the holder's expiry; a claim taken over, or released, is not taken back
        by it."""
        with store.unit_of_work() as uow:
            assert uow.claims.claim("batch", GROUP, "gw-1", T0, at(30))
            assert uow.claims.extend("batch", GROUP, "gw-1", at(90))
        with store.unit_of_work() as uow:
            assert not uow.claims.claim("batch", GROUP, "gw-2", at(60), at(120))
            assert uow.claims.claim("batch", GROUP, "gw-2", at(91), at(150))
            assert not uow.claims.extend("batch", GROUP, "gw-1", at(200))
            assert uow.claims.holds("batch", GROUP, "gw-2", at(92))
            uow.claims.release("batch", GROUP, "gw-2")
        with store.unit_of_work() as uow:
            assert not uow.claims.extend("batch", GROUP, "gw-1", at(200))
            assert uow.claims.claim("batch", GROUP, "gw-3", at(93), at(120))

    def test_work_claim_release_by_owner_only(self, store: Storage) -> None:
        """release by another owner does nothing; by the holder frees the work."""
        with store.unit_of_work() as uow:
            uow.claims.claim("batch", GROUP, "gw-1", T0, at(30))
        with store.unit_of_work() as uow:
            uow.claims.release("batch", GROUP, "gw-2")
        with store.unit_of_work() as uow:
            assert uow.claims.holds("batch", GROUP, "gw-1", at(1))
            assert not uow.claims.claim("batch", GROUP, "gw-2", at(1), at(40))
            uow.claims.release("batch", GROUP, "gw-1")
        with store.unit_of_work() as uow:
            assert not uow.claims.holds("batch", GROUP, "gw-1", at(2))
            assert uow.claims.claim("batch", GROUP, "gw-2", at(2), at(40))

    def test_claims_show_groups_and_outbox_by_owner(self, store: Storage) -> None:
        """queries.claims lists held groups and, per owner, the outbox messages claimed but not
        sent, soonest expiry first; sent and released messages leave it."""
        with store.unit_of_work() as uow:
            uow.claims.claim("batch", GROUP, "gw-1", T0, at(60))
            for n in range(3):
                uow.outbox.enqueue(message(n), T0)
            claimed = uow.outbox.claim("gw-2", 10, T0, at(30))
        held = store.queries.claims()
        assert [(c.kind, c.key, c.owner, c.messages) for c in held] == [
            ("outbox", "gw-2", "gw-2", 3),
            ("batch", GROUP, "gw-1", 0),
        ]
        assert [c.expires_at for c in held] == [at(30), at(60)]
        with store.unit_of_work() as uow:
            uow.outbox.mark_sent([claimed[0].row_id], at(1))
            uow.outbox.release([claimed[1].row_id], "gw-2")
            uow.claims.release("batch", GROUP, "gw-1")
        [left] = store.queries.claims()
        assert (left.kind, left.owner, left.messages) == ("outbox", "gw-2", 1)

    # --- rollback and admin -----------------------------------------------------------------

    def test_error_in_unit_of_work_writes_nothing(self, store: Storage) -> None:
        """An exception in a unit of work undoes all of it and comes out unchanged."""
        self.enqueue(store, message(1))
        with pytest.raises(UndoError, match="undo"), store.unit_of_work() as uow:
            uow.orders.add(new_order(1), T0)
            uow.orders.add_invalid(subject="s", order_id=None, raw=b"x", reason="r", now=T0)
            uow.files.add(outbound_file("MSG-1"), T0)
            uow.outbox.enqueue(message(2), T0)
            [pending] = uow.outbox.claim("relay-a", 1, T0, at(60))
            uow.outbox.mark_sent([pending.row_id], T0)
            uow.inbound.first_sight(PARTNER, "M-1", "camt.054", b"raw", T0)
            uow.inbound.quarantine(PARTNER, sha256(b"bad"), len(b"bad"), "why", T0)
            uow.inbound.add_entry(PARTNER, "REF-1", "M-1", "settled", T0)
            uow.evidence.add_revenue(revenue("R-1"), T0)
            uow.evidence.add_statement(statement("S-1"), T0)
            uow.claims.claim("batch", GROUP, "gw-1", T0, at(60))
            uow.counters.next_value("msg")
            raise UndoError("undo")
        q = store.queries
        assert q.order(order_id(1)) is None
        assert (q.orders_by_state(), q.invalid_count(), q.files_by_state()) == ({}, 0, {})
        assert q.outbox_pending() == (1, T0)
        assert (q.applied_by_type(), q.quarantined_count()) == ([], 0)
        assert (q.booked_credits(PARTNER, DAY), q.statement_days()) == ([], [])
        assert self.claim(store, "relay-b") == ["msg-0001"]
        with store.unit_of_work() as uow:
            assert not uow.inbound.entry_applied(PARTNER, "REF-1")
            assert uow.claims.claim("batch", GROUP, "gw-2", T0, at(60))

    def test_unit_of_work_commits_on_normal_exit(self, store: Storage) -> None:
        """Writes of a unit that ends normally are visible to the next one and to queries."""
        with store.unit_of_work() as uow:
            uow.orders.add(new_order(1), T0)
        with store.unit_of_work() as uow:
            assert uow.orders.get(order_id(1)) is not None
        assert store.queries.orders_by_partner() == {PARTNER: 1}

    def test_queries_see_only_committed_state(self, store: Storage) -> None:
        """Queries asked while a unit of work is open do not see its uncommitted writes."""
        with store.unit_of_work() as uow:
            uow.orders.add(new_order(1), T0)
            uow.outbox.enqueue(message(1), T0)
            assert store.queries.order(order_id(1)) is None
            assert store.queries.outbox_pending() == (0, None)
        assert store.queries.order(order_id(1)) is not None

    def test_record_dlq_action(self, store: Storage) -> None:
        """An admin's action is kept without error, and undone with its unit."""
        action = DlqAction(
            action="drop",
            queue="gateway.orders.parking",
            message_id="m-1",
            reason="sai số tài khoản",
            parked_why="InvalidMessage",
            body=b"\x00\xff",
            headers={"x-death": [{"count": 1}], "when": T0},
            actor="admin@kbnn",
        )
        with store.unit_of_work() as uow:
            uow.admin.record_dlq_action(action, T0)
            uow.admin.record_dlq_action(action, T0)
        with pytest.raises(UndoError), store.unit_of_work() as uow:
            uow.admin.record_dlq_action(action, at(1))
            uow.orders.add(new_order(1), at(1))
            raise UndoError
        assert store.queries.order(order_id(1)) is None

    # --- read-only queries ----------------------------------------------------------------

    def test_order_counts(self, store: Storage) -> None:
        """orders_by_state, orders_by_partner and rejected_by_reason count stored orders."""
        self.add_orders(store, *(new_order(n) for n in range(1, 6)))
        self.add_orders(store, new_order(6, partner=OTHER_PARTNER))
        self.move(store, 1, TxState.REJECTED, answer=BankAnswer(reason_code="AC01"))
        self.move(store, 2, TxState.REJECTED, answer=BankAnswer(reason_code="AC01"))
        self.move(store, 3, TxState.REJECTED)
        self.move(store, 4, TxState.SETTLED, answer=BankAnswer(reason_code="XX"))
        q = store.queries
        assert q.orders_by_state() == {"rejected": 3, "settled": 1, "received": 2}
        assert q.orders_by_partner() == {PARTNER: 5, OTHER_PARTNER: 1}
        assert q.rejected_by_reason() == {"AC01": 2, None: 1}

    def test_orders_in_state_filters_and_limit(self, store: Storage) -> None:
        """orders_in_state narrows by state, partner, category, currency, by id, up to limit."""
        self.add_orders(
            store,
            new_order(4),
            new_order(2, category="salary"),
            new_order(3, currency="USD", amount="10.00"),
            new_order(1, partner=OTHER_PARTNER),
            new_order(5),
        )
        self.move(store, 5, TxState.SETTLED)

        def ids(**kw: Any) -> list[str]:
            return [o.order_id for o in store.queries.orders_in_state(**kw)]

        assert ids() == [order_id(n) for n in (1, 2, 3, 4, 5)]
        assert ids(state=TxState.RECEIVED) == [order_id(n) for n in (1, 2, 3, 4)]
        assert ids(state=TxState.RECEIVED, limit=2) == [order_id(1), order_id(2)]
        assert ids(partner=PARTNER, category="social") == [order_id(n) for n in (3, 4, 5)]
        assert ids(currency="USD") == [order_id(3)]
        assert ids(state=TxState.SETTLED, partner=OTHER_PARTNER) == []
        assert ids(limit=0) == []
        [usd] = store.queries.orders_in_state(currency="USD")
        assert same_decimal(usd.amount, "10.00")

    def test_sent_files_by_partner(self, store: Storage) -> None:
        """sent_files_by_partner counts files that reached their partner, not built ones."""
        self.sent_file(store, "MSG-1", T0)
        self.sent_file(store, "MSG-2", T0)
        self.sent_file(store, "MSG-3", T0, partner=OTHER_PARTNER)
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file("MSG-4"), T0)
        assert store.queries.sent_files_by_partner() == {PARTNER: 2, OTHER_PARTNER: 1}
        assert store.queries.files_by_state() == {"sent": 3, "built": 1}

    def test_applied_by_type(self, store: Storage) -> None:
        """applied_by_type counts files taken in per partner and message type, sorted."""
        with store.unit_of_work() as uow:
            uow.inbound.first_sight(PARTNER, "M-1", "pain.002", b"1", T0)
            uow.inbound.first_sight(PARTNER, "M-2", "pain.002", b"2", T0)
            uow.inbound.first_sight(PARTNER, "M-3", "camt.054", b"3", T0)
            uow.inbound.first_sight(OTHER_PARTNER, "M-1", "camt.053", b"4", T0)
        assert store.queries.applied_by_type() == [
            (OTHER_PARTNER, "camt.053", 1),
            (PARTNER, "camt.054", 1),
            (PARTNER, "pain.002", 2),
        ]

    # --- concurrency: two workers never claim the same work ---------------------------------

    def each_sent_once(self, store: Storage, total: int, drain: Callable[[str], list[str]]) -> None:
        """Two relays draining at once (`drain(owner)`: the message ids it sent) sent each of
        the `total` messages exactly once, and none is left."""
        first, second = run_threads([lambda: drain("relay-a"), lambda: drain("relay-b")])
        assert isinstance(first, list), first
        assert isinstance(second, list), second
        assert set(first) & set(second) == set()
        assert len(first) + len(second) == total
        assert set(first) | set(second) == {message(n).message_id for n in range(total)}
        assert store.queries.outbox_pending() == (0, None)

    def test_concurrent_relays_never_share_a_message(self, store: Storage) -> None:
        """Two relays draining the outbox at once claim every message exactly once."""
        total = 40
        self.enqueue(store, *(message(n) for n in range(total)))

        def drain(owner: str) -> list[str]:
            got: list[str] = []
            while True:
                with store.unit_of_work() as uow:
                    batch = uow.outbox.claim(owner, 3, T0, at(600))
                if not batch:
                    return got
                got += [p.message.message_id for p in batch]
                with store.unit_of_work() as uow:
                    uow.outbox.mark_sent([p.row_id for p in batch], T0)

        self.each_sent_once(store, total, drain)

    def test_relays_holding_locks_never_share_a_message(self, store: Storage) -> None:
        """Relays that hold their messages by a unit's locks while they publish take every
        message exactly once, and none is left (PostgreSQL: the other skips the locked rows;
        elsewhere one unit at a time)."""
        total = 40
        self.enqueue(store, *(message(n) for n in range(total)))

        def drain(owner: str) -> list[str]:
            got: list[str] = []
            while True:
                with store.unit_of_work() as uow:
                    batch = uow.outbox.lock_pending(owner, 3, T0, timedelta(seconds=30))
                    time.sleep(0.01)  # published meanwhile: the other relay looks now
                    uow.outbox.mark_sent([p.row_id for p in batch], T0)
                if not batch:
                    return got
                got += [p.message.message_id for p in batch]

        self.each_sent_once(store, total, drain)

    def test_concurrent_work_claims_have_one_winner(self, store: Storage) -> None:
        """Of many instances claiming one group at once, exactly one wins."""

        def claimer(owner: str) -> bool:
            with store.unit_of_work() as uow:
                return uow.claims.claim("batch", GROUP, owner, T0, at(60))

        results = run_threads([lambda i=i: claimer(f"gw-{i}") for i in range(8)])
        assert all(isinstance(r, bool) for r in results), results
        assert results.count(True) == 1
        winner = f"gw-{results.index(True)}"
        with store.unit_of_work() as uow:
            assert uow.claims.holds("batch", GROUP, winner, at(1))

    def test_concurrent_moves_post_once(self, store: Storage) -> None:
        """Two workers settling the same order at once: one moves it and posts, never both."""
        self.add_orders(store, new_order(1))
        self.move(store, 1, TxState.SENT)

        def settle(worker: str) -> str:
            try:
                with store.unit_of_work() as uow:
                    current = uow.orders.get(order_id(1))
                    assert current is not None
                    if current.state is not TxState.SENT:
                        return "saw-moved"
                    time.sleep(0.05)  # let the other worker read the same state if it can
                    answer = BankAnswer(status_code="ACSC", bank_ref=f"REF-{worker}")
                    uow.orders.move(current, TxState.SETTLED, answer, at(1))
                    # A distinct message id per worker: a second posting would show.
                    uow.outbox.enqueue(message({"a": 1, "b": 2}[worker]), at(1))
            except ConcurrentChange:
                return "conflict"
            except TransientError:
                return "retry"  # the unit is rolled back; a retry would see the move
            return f"moved:{worker}"

        results = run_threads([lambda: settle("a"), lambda: settle("b")])
        moved = [r for r in results if isinstance(r, str) and r.startswith("moved:")]
        assert len(moved) == 1, results
        assert all(r in {"saw-moved", "conflict", "retry"} for r in results if r not in moved)
        winner = moved[0].removeprefix("moved:")
        got = store.queries.order(order_id(1))
        assert got is not None
        assert (got.state, got.bank_ref) == (TxState.SETTLED, f"REF-{winner}")
        assert store.queries.outbox_pending()[0] == 1
