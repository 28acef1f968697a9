"""PostgreSQL: a large batch of one-row INSERTs is copied through a temporary table and
inserted by one statement (`PostgresExecutor._insert_copied`), with what executing it row by
row gave: the rows in their order (the outbox's ids are the relay's order), conflicts ignored
where the statement says so, the count of rows inserted, two batches in one unit, nothing
left after a rollback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.adapters.persistence.postgres import COPY_FROM, PostgresStorage
from gateway.domain.states import TxState
from tests.contract.values import T0, at, message, new_order, order_id

MANY = COPY_FROM * 3


@pytest.fixture
def storage(postgres_url: str) -> Iterator[PostgresStorage]:
    made = PostgresStorage(postgres_url)
    try:
        yield made
    finally:
        made.close()


def _pending_ids(storage: PostgresStorage) -> list[str]:
    rows = storage.query("SELECT message_id FROM outbox WHERE status <> 'sent' ORDER BY id")
    return [str(row[0]) for row in rows]


def test_a_large_batch_keeps_its_order_and_its_bytes(storage: PostgresStorage) -> None:
    held = [message(n) for n in reversed(range(1, MANY + 1))]  # ids not in name order
    with storage.unit_of_work() as uow:
        for item in held:
            uow.outbox.add(item, T0)
    assert _pending_ids(storage) == [item.message_id for item in held]
    bodies = storage.query("SELECT body, headers, created_at FROM outbox ORDER BY id")
    assert [bytes(row[0]) for row in bodies] == [item.body for item in held]
    assert all(row[2] == T0 for row in bodies)


def test_conflicts_are_ignored_within_the_batch_and_against_stored_rows(
    storage: PostgresStorage,
) -> None:
    with storage.unit_of_work() as uow:
        assert uow.outbox.enqueue(message(1), T0)
    with storage.unit_of_work() as uow:
        for n in [1, *range(2, MANY), 2]:  # one stored before, one twice in the batch
            uow.outbox.add(message(n), at(1))
    assert _pending_ids(storage) == [message(n).message_id for n in range(1, MANY)]
    first = storage.query("SELECT created_at FROM outbox WHERE message_id = 'msg-0001'")
    assert first[0][0] == T0  # the stored row kept, not replaced


def test_two_batches_in_one_unit_are_each_inserted_once(storage: PostgresStorage) -> None:
    with storage.unit_of_work() as uow:
        for n in range(1, MANY + 1):
            uow.outbox.add(message(n), T0)
        assert uow.outbox.claim("relay-1", 1, T0, at(60)) != []  # a read sends the batch
        for n in range(MANY + 1, 2 * MANY + 1):
            uow.outbox.add(message(n), T0)
    assert len(_pending_ids(storage)) == 2 * MANY


def test_a_batch_rolled_back_leaves_nothing(storage: PostgresStorage) -> None:
    with pytest.raises(RuntimeError), storage.unit_of_work() as uow:
        for n in range(1, MANY + 1):
            uow.outbox.add(message(n), T0)
        uow.outbox.claim("relay-1", 1, T0, at(60))
        raise RuntimeError("the unit fails after its batch was sent")
    assert _pending_ids(storage) == []
    with storage.unit_of_work() as uow:  # the same connection's table is used again
        for n in range(1, MANY + 1):
            uow.outbox.add(message(n), T0)
    assert len(_pending_ids(storage)) == MANY


def test_a_chunk_of_orders_is_stored_and_counted_as_new(storage: PostgresStorage) -> None:
    with storage.unit_of_work() as uow:
        uow.orders.add_many([new_order(1)], T0)
    chunk = [new_order(n) for n in range(1, MANY + 1)]
    with storage.unit_of_work() as uow:
        results = uow.orders.add_many(chunk, at(1))
    assert results == ["duplicate"] + ["new"] * (MANY - 1)
    states = storage.query("SELECT state, COUNT(*) FROM orders GROUP BY state")
    assert states == [(TxState.RECEIVED.value, MANY)]
    payloads = storage.query("SELECT COUNT(*) FROM order_payloads")
    assert payloads == [(MANY,)]
    with storage.unit_of_work() as uow:
        stored = uow.orders.get(order_id(MANY))
    assert stored is not None and stored.payload == chunk[-1].payload
