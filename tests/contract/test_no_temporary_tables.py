"""PostgreSQL where the gateway's role may not make temporary tables (`REVOKE TEMPORARY`, as
some database administrators do): large batches are written row by row instead of copied
(`PostgresStorage.copies`), with the same rows, the same counts and the same refusals, and the
log says so once.

The role and its database are made for the test by the test server's superuser (`postgres`,
as scripts/postgres sets it up); a server without one skips the test, or fails it on CI."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import structlog

from gateway.adapters.persistence.postgres import COPY_FROM, PostgresStorage
from gateway.domain.states import TxState
from gateway.service.ports import BankAnswer, ConcurrentChange
from tests.contract.values import T0, at, message, new_order, order_id
from tests.postgres import unavailable

MANY = COPY_FROM * 2


def _as(url: str, user: str, database: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}@{host}:{parts.port}" if parts.port else f"{user}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=f"/{database}", query=""))


@pytest.fixture
def no_temp_url(postgres_base_url: str) -> Iterator[str]:
    """A database whose one role may connect and create, but not make temporary tables."""
    name = f"gw_notemp_{uuid.uuid4().hex[:8]}"
    admin_url = _as(postgres_base_url, "postgres", "postgres")
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        unavailable(f"no superuser `postgres` to make a role without TEMPORARY: {exc}")
    try:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"CREATE DATABASE {name} OWNER postgres")
        admin.execute(f"REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC")
        admin.execute(f"GRANT CONNECT, CREATE ON DATABASE {name} TO {name}")
        with psycopg.connect(_as(postgres_base_url, "postgres", name), autocommit=True) as db:
            db.execute(f"GRANT ALL ON SCHEMA public TO {name}")
        yield _as(postgres_base_url, name, name)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {name}")
        admin.close()


def test_without_temporary_tables_large_batches_are_written_row_by_row(
    no_temp_url: str,
) -> None:
    with structlog.testing.capture_logs() as logs:
        storage = PostgresStorage(no_temp_url)
        try:
            assert storage.copies() is False
            held = [message(n) for n in reversed(range(1, MANY + 1))]
            with storage.unit_of_work() as uow:
                for item in held:
                    uow.outbox.add(item, T0)
            rows = storage.query("SELECT message_id, body FROM outbox ORDER BY id")
            assert [(row[0], bytes(row[1])) for row in rows] == [
                (item.message_id, item.body) for item in held
            ]
            with storage.unit_of_work() as uow:
                results = uow.orders.add_many([new_order(n) for n in range(1, MANY + 1)], T0)
            assert results == ["new"] * MANY
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
            with storage.unit_of_work() as uow:
                for order in orders[6:]:
                    assert order is not None
                    answer = BankAnswer(status_code="ACSC", bank_ref=f"REF-{order.order_id}")
                    uow.orders.move(order, TxState.REJECTED, answer, at(2))
            rows = storage.query(
                "SELECT status_code, COUNT(*), COUNT(DISTINCT bank_ref) FROM orders"
                " GROUP BY 1 ORDER BY 1"
            )
            assert rows == [("ACSC", MANY - 6, MANY - 6), ("RJCT", 1, 0), (None, 5, 0)]
        finally:
            storage.close()
    refused = [entry for entry in logs if entry["event"] == "postgres.no_temporary_tables"]
    assert len(refused) == 1
