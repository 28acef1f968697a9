"""PostgreSQL: a large batch of one-row INSERTs or UPDATEs is copied through a temporary
table and written by one statement (`PostgresExecutor._insert_copied`, `_update_copied`), with
what executing it row by row gave: the rows in their order (the outbox's ids are the relay's
order), conflicts ignored where the statement says so, the count of rows written (an order
moved meanwhile fails the unit), two batches in one unit, nothing left after a rollback.

Each test runs twice: copied, and row by row on a database where the gateway's role may not make
temporary tables (`REVOKE TEMPORARY`, as some administrators do; `PostgresStorage.copies`). That
role and its database are made by the test server's superuser (`postgres`, as scripts/postgres
sets it up); a server without one skips those runs, or fails them on CI."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import psycopg
import pytest
import structlog

from gateway.adapters.persistence.postgres import (
    _UPDATE,
    COPY_FROM,
    PostgresStorage,
    _sql,
    _update_plan,
)
from gateway.adapters.persistence.sql import _MOVE
from gateway.domain.states import TxState
from gateway.service.ports import BankAnswer, ConcurrentChange
from tests.contract.values import HANOI, T0, at, message, new_order, order_id
from tests.postgres import unavailable, with_search_path

MANY = COPY_FROM * 3


def _as(url: str, user: str, database: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}@{host}:{parts.port}" if parts.port else f"{user}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=f"/{database}", query=""))


@pytest.fixture(scope="module")
def no_temp_base(postgres_base_url: str) -> Iterator[str]:
    """A database whose one role may connect and create schemas, but not make temporary
    tables; its URL as that role."""
    name = f"gw_notemp_{uuid.uuid4().hex[:8]}"
    admin_url = _as(postgres_base_url, "postgres", "postgres")
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        unavailable(f"no superuser `postgres` to make a role without TEMPORARY: {exc}")
        raise  # unreachable: unavailable() skips or fails
    try:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"CREATE DATABASE {name} OWNER postgres")
        admin.execute(f"REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC")
        admin.execute(f"GRANT CONNECT, CREATE ON DATABASE {name} TO {name}")
        yield _as(postgres_base_url, name, name)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {name}")
        admin.close()


@pytest.fixture
def no_temp_url(no_temp_base: str) -> str:
    """A fresh schema of that database (it goes with the database)."""
    schema = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(no_temp_base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return with_search_path(no_temp_base, schema)


@pytest.fixture(params=["copied", "row-by-row"])
def storage(request: pytest.FixtureRequest) -> Iterator[PostgresStorage]:
    copied = request.param == "copied"
    url = request.getfixturevalue("postgres_url" if copied else "no_temp_url")
    made = PostgresStorage(url)
    try:
        assert made.copies() is copied
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
    with storage.unit_of_work() as uow:  # the table made again where the rollback undid it
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


def _received(storage: PostgresStorage, count: int) -> None:
    with storage.unit_of_work() as uow:
        uow.orders.add_many([new_order(n) for n in range(1, count + 1)], T0)


def test_a_large_batch_of_moves_writes_each_order_its_own_answer(storage: PostgresStorage) -> None:
    _received(storage, MANY)
    with storage.unit_of_work() as uow:
        uow.orders.prefetch([order_id(n) for n in range(1, MANY + 1)])
        for n in range(1, MANY + 1):
            order = uow.orders.get(order_id(n))
            assert order is not None
            # Every other order has no value date or reason: the stored ones are kept.
            answer = BankAnswer(
                status_code="ACSC",
                bank_ref=f"REF-{n}",
                value_date=date(2026, 11, 2 + n % 2) if n % 2 else None,
                reason_text="Đã hạch toán" if n % 2 else None,
            )
            uow.orders.move(order, TxState.REJECTED, answer, at(n))
    rows = storage.query(
        "SELECT order_id, state, status_code, bank_ref, value_date, reason_text, updated_at"
        " FROM orders ORDER BY order_id"
    )
    assert len(rows) == MANY
    for n, row in enumerate(rows, start=1):
        assert row[1:4] == (TxState.REJECTED.value, "ACSC", f"REF-{n}")
        assert row[4] == (date(2026, 11, 3) if n % 2 else None)
        assert row[5] == ("Đã hạch toán" if n % 2 else None)
        assert row[6] == at(n)


def test_a_batch_of_moves_with_one_order_moved_meanwhile_fails_the_unit(
    storage: PostgresStorage,
) -> None:
    _received(storage, MANY)
    with storage.unit_of_work() as uow:
        orders = [uow.orders.get(order_id(n)) for n in range(1, MANY + 1)]
    with storage.unit_of_work() as other:  # another instance moves one of them first
        first = orders[5]
        assert first is not None
        other.orders.move(first, TxState.REJECTED, BankAnswer(status_code="RJCT"), T0)
    with pytest.raises(ConcurrentChange), storage.unit_of_work() as uow:
        for order in orders:
            assert order is not None
            uow.orders.move(order, TxState.REJECTED, BankAnswer(status_code="ACSC"), at(1))
    states = storage.query("SELECT status_code, COUNT(*) FROM orders GROUP BY 1 ORDER BY 1")
    assert states == [("RJCT", 1), (None, MANY - 1)]  # the batch's writes rolled back


def test_a_batch_of_moves_naming_one_order_twice_is_written_row_by_row(
    storage: PostgresStorage,
) -> None:
    """Row by row, a second move of an order sees the first's state; one UPDATE ... FROM would
    not: such a batch is not copied, and gives what row by row gives."""
    _received(storage, MANY)
    with storage.unit_of_work() as uow:
        orders = [uow.orders.get(order_id(n)) for n in range(1, MANY + 1)]
    with storage.unit_of_work() as uow:
        for order in orders:
            assert order is not None
            uow.orders.move(order, TxState.BATCHED, BankAnswer(), at(1))
        first = orders[0]
        assert first is not None
        batched = dataclasses.replace(first, state=TxState.BATCHED)
        uow.orders.move(batched, TxState.REJECTED, BankAnswer(status_code="RJCT"), at(2))
    states = storage.query("SELECT state, COUNT(*) FROM orders GROUP BY 1 ORDER BY 1")
    assert states == [(TxState.BATCHED.value, MANY - 1), (TxState.REJECTED.value, 1)]


def test_amounts_and_times_keep_their_values_through_the_copy(storage: PostgresStorage) -> None:
    """Decimal amounts and times with an offset, as the port hands them over."""
    in_hanoi = T0.astimezone(HANOI)
    chunk = [
        dataclasses.replace(new_order(n), amount=Decimal(f"{n}123456789012")) for n in range(1, 80)
    ]
    with storage.unit_of_work() as uow:
        uow.orders.add_many(chunk, in_hanoi)
    rows = storage.query("SELECT amount, received_at FROM orders ORDER BY order_id")
    assert [row[0] for row in rows] == [order.amount for order in chunk]
    assert {row[1] for row in rows} == {T0}


def test_only_updates_whose_placeholders_all_stand_for_columns_are_copied() -> None:
    def plan(statement: str) -> tuple[list[str], list[int]] | None:
        update = _UPDATE.fullmatch(_sql(statement))
        found = _update_plan(update) if update else None
        return (found.columns, found.keys) if found else None

    move = f"{_MOVE} WHERE order_id = ? AND state = ?"
    assert plan(move) == (
        [
            "state",
            "updated_at",
            "status_code",
            "reason_code",
            "reason_text",
            "bank_ref",
            "value_date",
            "order_id",
            "state",
        ],
        [7],  # matched by order_id, which the move leaves as it is
    )
    assert plan("UPDATE files SET status = 'x', sent_at = ? WHERE msg_id = ?") == (
        ["sent_at", "msg_id"],
        [1],
    )
    assert plan("UPDATE counters SET value = value + ? WHERE name = ?") is None
    assert plan("UPDATE outbox SET sent_at = ? WHERE id = ? AND status <> 'sent'") is None
    assert plan("UPDATE orders SET state = ? WHERE order_id IN (?, ?)") is None
    assert plan("UPDATE orders SET state = ? WHERE state = ?") is None  # no key left unchanged
    assert plan("UPDATE orders SET a = (SELECT b FROM t WHERE c = ?) WHERE d = ?") is None
    assert plan("UPDATE orders SET a = ? FROM t WHERE d = ?") is None
    assert re.search("%s", _sql(move))  # the shared SQL's marks are psycopg's


def test_without_temporary_tables_the_log_says_so_once(no_temp_url: str) -> None:
    """A role that may not make temporary tables has its batches written row by row (the tests
    above, run that way, hold it to the same rows, counts and refusals); the log says why, once."""
    with structlog.testing.capture_logs() as logs:
        storage = PostgresStorage(no_temp_url)
        try:
            assert storage.copies() is False
            for start in (1, MANY + 1):
                with storage.unit_of_work() as uow:
                    for n in range(start, start + MANY):
                        uow.outbox.add(message(n), T0)
            assert len(_pending_ids(storage)) == 2 * MANY
        finally:
            storage.close()
    refused = [entry for entry in logs if entry["event"] == "postgres.no_temporary_tables"]
    assert len(refused) == 1
