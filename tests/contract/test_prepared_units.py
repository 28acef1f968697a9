"""SQLite's prepared units (`SqliteStorage.run_unit`): a step runs before the write lock, on a
snapshot, with its writes held; it is kept only if what it read is unchanged under the lock,
and else run again under the lock. Each test makes another writer change the database while
the step runs (the step holds no lock then), and shows that nothing stale is kept."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.domain.states import TxState
from gateway.service.ports import BankAnswer, OutboxMessage, UnitOfWork
from tests.contract.values import T0, at, message, new_order, order_id, outbound_file


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def storage(path: Path) -> Iterator[SqliteStorage]:
    store = SqliteStorage(path)
    with store.unit_of_work() as uow:
        uow.orders.add(new_order(1), T0)
        uow.files.add(outbound_file("F-1"), T0)
        uow.orders.mark_batched([(order_id(1), "P-1")], "F-1", T0)
    yield store
    store.close()


def other_writer(path: Path) -> SqliteStorage:
    """A second storage on the file: its units take the write lock as another process's do."""
    return SqliteStorage(path, upgrade=False)


def note(state: TxState) -> OutboxMessage:
    """A message that says which state the step read (a write no guard covers)."""
    return OutboxMessage(
        message_id="seen",
        exchange="gateway.admin",
        routing_key="seen",
        body=state.encode(),
        headers={},
    )


def test_the_step_runs_while_another_writer_holds_the_lock(
    storage: SqliteStorage, path: Path
) -> None:
    """The step's reads and work happen outside the write lock: it runs (and reads) while
    another connection holds the lock, and its writes are made once the lock is free."""
    ran = threading.Event()
    results: list[bool] = []

    def step(uow: UnitOfWork) -> bool:
        order = uow.orders.get(order_id(1))
        assert order is not None
        uow.orders.move(order, TxState.ACKNOWLEDGED, BankAnswer(status_code="ACCP"), at(1))
        ran.set()
        return True

    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        worker = threading.Thread(target=lambda: results.append(storage.run_unit(step)))
        worker.start()
        assert ran.wait(10), "the step waited for the write lock"
        assert storage.queries.order(order_id(1)).state is TxState.BATCHED  # type: ignore[union-attr]
        other.execute("ROLLBACK")
        worker.join(10)
    assert results == [True]
    assert storage.queries.order(order_id(1)).state is TxState.ACKNOWLEDGED  # type: ignore[union-attr]


def test_a_step_that_only_reads_returns_without_the_write_lock(
    storage: SqliteStorage, path: Path
) -> None:
    """Another process holds the write lock for as long as the test likes: a step that only
    reads (the relay's look for pending messages) returns what its snapshot holds meanwhile,
    and a step that writes waits for the lock."""
    with storage.unit_of_work() as uow:
        uow.outbox.enqueue(message(1), at(1))
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        other.execute("DELETE FROM outbox")  # not committed: the snapshot does not see it
        read: list[list[str]] = []
        reader = threading.Thread(
            target=lambda: read.append(
                storage.run_unit(
                    lambda uow: [
                        p.message.message_id
                        for p in uow.outbox.lock_pending("relay", 10, at(2), timedelta(seconds=30))
                    ]
                )
            )
        )
        reader.start()
        reader.join(10)
        assert read == [[message(1).message_id]], "the read waited for the write lock"
        wrote = threading.Event()
        writer = threading.Thread(
            target=lambda: (
                storage.run_unit(lambda uow: uow.outbox.add(message(2), at(2))),
                wrote.set(),
            )
        )
        writer.start()
        assert not wrote.wait(0.5)  # a write waits for the lock
        other.execute("ROLLBACK")
        writer.join(10)
        assert wrote.is_set()


def test_a_step_whose_read_changed_runs_again_under_the_lock(
    storage: SqliteStorage, path: Path
) -> None:
    """Another writer moves the order between the step's read and its commit: the prepared run
    is dropped (its note too, which no guard covers) and the step runs again on what is now."""
    seen: list[TxState] = []
    other = other_writer(path)

    def step(uow: UnitOfWork) -> str:
        order = uow.orders.get(order_id(1))
        assert order is not None
        seen.append(order.state)
        uow.outbox.add(note(order.state), at(2))
        if len(seen) == 1:
            with other.unit_of_work() as meanwhile:
                meanwhile.files.sent("F-1", at(1))
        return order.state.value

    try:
        assert storage.run_unit(step) == TxState.SENT.value
    finally:
        other.close()
    assert seen == [TxState.BATCHED, TxState.SENT]
    (kept,) = storage.queries.outbox_messages(["seen"])
    assert kept.body == TxState.SENT.encode()


def test_a_step_needing_a_writes_result_runs_under_the_lock(storage: SqliteStorage) -> None:
    """A write whose result the step uses (here: whether the message is new) cannot be held:
    the step runs again under the lock, and its writes are made once."""
    calls: list[bool] = []
    entered: list[bool] = []

    def step(uow: UnitOfWork) -> bool:
        entered.append(True)
        new = uow.outbox.enqueue(message(1), at(1))
        calls.append(new)
        return new

    assert storage.run_unit(step) is True
    assert len(entered) == 2  # prepared first, then again under the lock
    assert calls == [True]  # the prepared run stopped at the write, before it returned
    assert len(storage.queries.outbox_messages([message(1).message_id])) == 1


def test_a_file_kept_meanwhile_makes_the_step_a_duplicate(
    storage: SqliteStorage, path: Path
) -> None:
    """The step sees the bank's file as new, another unit keeps it before the commit: the step
    runs again and finds it kept (a duplicate), so the file is applied once."""
    raw = b"<Document>pain.002</Document>"
    other = other_writer(path)
    answers: list[bool] = []

    def step(uow: UnitOfWork) -> bool:
        new = uow.inbound.first_sight("VBA", "R-1", "pain.002", raw, at(1))
        answers.append(new)
        if len(answers) == 1:
            with other.unit_of_work() as meanwhile:
                meanwhile.inbound.first_sight("VBA", "R-1", "pain.002", raw, at(1))
        return new

    try:
        assert storage.run_unit(step) is False
    finally:
        other.close()
    assert answers == [True, False]


def test_an_entry_applied_meanwhile_is_not_applied_twice(
    storage: SqliteStorage, path: Path
) -> None:
    """An entry read as not applied, applied by another unit before the commit: the prepared
    run is dropped and the step sees it applied."""
    other = other_writer(path)
    seen: list[set[str]] = []

    def step(uow: UnitOfWork) -> int:
        applied = uow.inbound.applied_entries("VBA", ["B-1"])
        seen.append(applied)
        if not applied:
            uow.inbound.add_entry("VBA", "B-1", "C-1", "settled", at(1))
            uow.outbox.add(message(1), at(1))
        if len(seen) == 1:
            with other.unit_of_work() as meanwhile:
                meanwhile.inbound.add_entry("VBA", "B-1", "C-0", "settled", at(1))
        return len(applied)

    try:
        assert storage.run_unit(step) == 1
    finally:
        other.close()
    assert seen == [set(), {"B-1"}]
    assert storage.queries.outbox_messages([message(1).message_id]) == []


def test_a_flag_raised_meanwhile_is_cleared_by_the_step(storage: SqliteStorage, path: Path) -> None:
    """The deadline watch flags the file overdue while a report on it is prepared: the report
    runs again and clears the flag, instead of leaving a reported file flagged."""
    other = other_writer(path)
    cleared: list[object] = []

    def step(uow: UnitOfWork) -> None:
        cleared.append(uow.files.clear_overdue("F-1", "VBA", at(3)))
        uow.files.status_reported("F-1", at(3))
        if len(cleared) == 1:
            with other.unit_of_work() as meanwhile:
                assert meanwhile.files.flag_overdue("F-1", "VBA", at(2))

    try:
        storage.run_unit(step)
    finally:
        other.close()
    assert cleared == [None, at(2)]
    assert storage.query("SELECT msg_id FROM overdue_cleared") == [("F-1",)]


def test_a_step_that_fails_writes_nothing(storage: SqliteStorage) -> None:
    """An error in the prepared run reaches the caller and nothing of the step is written."""

    def step(uow: UnitOfWork) -> None:
        uow.outbox.add(message(1), at(1))
        raise ValueError("the file says something impossible")

    with pytest.raises(ValueError, match="impossible"):
        storage.run_unit(step)
    assert storage.queries.outbox_messages([message(1).message_id]) == []


@pytest.mark.parametrize(("amount", "told"), [("606000", "duplicate"), ("707000", "conflict")])
def test_an_order_stored_meanwhile_is_told_apart_under_the_lock(
    storage: SqliteStorage, path: Path, amount: str, told: str
) -> None:
    """Intake's chunk is prepared with the order read as absent; another writer stores the
    same id (same content, or other content) before the commit: the chunk runs again under the
    lock and the order is a duplicate, or a conflict, not stored twice."""
    other = other_writer(path)
    results: list[list[str]] = []

    def step(uow: UnitOfWork) -> list[str]:
        added = list(uow.orders.add_many([new_order(7)], at(1)))
        results.append(added)
        if len(results) == 1:
            with other.unit_of_work() as meanwhile:
                meanwhile.orders.add(new_order(7, amount=amount), at(1))
        return added

    try:
        assert storage.run_unit(step) == [told]
    finally:
        other.close()
    assert results == [["new"], [told]]
    assert storage.query("SELECT COUNT(*) FROM orders WHERE order_id = ?", (order_id(7),)) == [(1,)]
