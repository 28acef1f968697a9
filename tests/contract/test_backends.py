"""The storage contract on its three backends, and what only the SQL backends can show.

Each adapter is imported when a test makes it, so a backend that is missing fails its own tests
(ImportError) and leaves the others running.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import TransientError
from gateway.service.ports import Storage
from tests.contract.store import StoreContract
from tests.contract.values import PARTNER, T0, new_order, order_id

CLOSED_PORT_URL = "postgresql://gateway@127.0.0.1:1/gateway_test"


class TestMemory(StoreContract):
    """The in-memory backend (unit tests)."""

    kind = "memory"

    def make(self, request: pytest.FixtureRequest) -> Storage:
        from gateway.adapters.persistence.memory import MemoryStorage  # noqa: PLC0415

        return MemoryStorage()


class TestSQLite(StoreContract):
    """The SQLite backend (the default)."""

    kind = "sqlite"

    def make(self, request: pytest.FixtureRequest) -> Storage:
        from gateway.adapters.persistence.sqlite import SqliteStorage  # noqa: PLC0415

        tmp_path: Path = request.getfixturevalue("tmp_path")
        return SqliteStorage(tmp_path / "gateway.db")

    def test_data_survives_reopening(self, tmp_path: Path) -> None:
        """What one storage committed, a new one on the same file reads."""
        from gateway.adapters.persistence.sqlite import SqliteStorage  # noqa: PLC0415

        first = SqliteStorage(tmp_path / "gateway.db")
        try:
            with first.unit_of_work() as uow:
                uow.orders.add(new_order(1), T0)
        finally:
            first.close()
        again = SqliteStorage(tmp_path / "gateway.db")
        try:
            assert again.queries.orders_by_partner() == {PARTNER: 1}
        finally:
            again.close()

    def test_locked_database_is_transient(self, tmp_path: Path) -> None:
        """A database locked by another writer past the retries raises TransientError."""
        from gateway.adapters.persistence.sqlite import SqliteStorage  # noqa: PLC0415

        path = tmp_path / "gateway.db"
        storage = SqliteStorage(path, busy_timeout=0.2)
        try:
            with storage.unit_of_work() as uow:  # created and migrated before the lock
                uow.counters.next_value("warm-up")
            with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as other:
                other.execute("BEGIN EXCLUSIVE")
                started = time.monotonic()
                with pytest.raises(TransientError), storage.unit_of_work() as uow:
                    uow.orders.add(new_order(1), T0)
                assert time.monotonic() - started < 30, "the retries never gave up"
                other.execute("ROLLBACK")
            with storage.unit_of_work() as uow:  # the lock gone, work goes on
                assert uow.orders.add(new_order(1), T0) == "new"
            assert storage.queries.order(order_id(1)) is not None
        finally:
            storage.close()

    def test_applied_entries_are_looked_up_by_the_key(self, tmp_path: Path) -> None:
        """The references drive the lookup, each found by the table's key: SQLite would
        otherwise read the whole table once per reference (seconds a report part)."""
        from gateway.adapters.persistence.sql import SqlInbound  # noqa: PLC0415
        from gateway.adapters.persistence.sqlite import SqliteExecutor, SqliteStorage  # noqa: PLC0415

        storage = SqliteStorage(tmp_path / "gateway.db")
        try:
            plans: list[str] = []
            conn = storage.connection()
            executor = SqliteExecutor(conn)
            original = executor.all

            def explained(sql: str, args: Any = ()) -> Any:
                plans.extend(str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
                return original(sql, args)

            executor.all = explained  # type: ignore[method-assign]
            assert SqlInbound(executor).applied_entries(PARTNER, ["R-1", "R-2"]) == set()
            assert plans[0].startswith("SCAN json_each"), plans
            assert "(partner=? AND bank_ref=?)" in plans[1], plans
        finally:
            storage.close()

    def test_the_instance_checkpoints_the_log_in_a_thread_of_its_own(self, tmp_path: Path) -> None:
        """Once `gateway run` holds the file, its commits leave the write-ahead log alone (no
        checkpoint inside the write lock) and its own thread copies the log into the file."""
        from gateway.adapters.persistence.sqlite import SqliteStorage  # noqa: PLC0415

        path = tmp_path / "gateway.db"
        storage = SqliteStorage(path)
        try:
            storage.claim_instance()
            assert storage.connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            before = path.stat().st_size
            with storage.unit_of_work() as uow:  # some 3 MB: past SQLite's own 1,000 pages
                for n in range(1, 3001):
                    uow.orders.add_invalid(
                        subject=f"s{n}", order_id=None, raw=b"x" * 1000, reason="r", now=T0
                    )
            deadline = time.monotonic() + 10
            while path.stat().st_size < before + 2_000_000 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert path.stat().st_size >= before + 2_000_000, "the log was never checkpointed"
        finally:
            storage.close()


class TestPostgres(StoreContract):
    """The PostgreSQL backend (several gateway instances), each test in a fresh schema."""

    kind = "postgresql"

    def make(self, request: pytest.FixtureRequest) -> Storage:
        from gateway.adapters.persistence.postgres import PostgresStorage  # noqa: PLC0415

        url: str = request.getfixturevalue("postgres_url")
        return PostgresStorage(url)

    def test_data_survives_reopening(self, postgres_url: str) -> None:
        """What one storage committed, a new one on the same database reads."""
        from gateway.adapters.persistence.postgres import PostgresStorage  # noqa: PLC0415

        first = PostgresStorage(postgres_url)
        try:
            with first.unit_of_work() as uow:
                uow.orders.add(new_order(1), T0)
        finally:
            first.close()
        again = PostgresStorage(postgres_url)
        try:
            assert again.queries.orders_by_partner() == {PARTNER: 1}
        finally:
            again.close()

    @pytest.mark.slow  # waits out the retries against a closed port
    def test_vanished_server_is_transient(self) -> None:
        """A server that does not answer makes the first unit of work raise TransientError."""
        from gateway.adapters.persistence.postgres import PostgresStorage  # noqa: PLC0415

        storage = PostgresStorage(CLOSED_PORT_URL, connect_timeout=2, upgrade=False)
        try:
            started = time.monotonic()
            with pytest.raises(TransientError), storage.unit_of_work() as uow:
                uow.counters.next_value("msg")
            with pytest.raises(TransientError):
                storage.queries.orders_by_state()
            assert time.monotonic() - started < 60, "the retries never gave up"
        finally:
            storage.close()

    @pytest.mark.slow  # same reason
    def test_vanished_server_at_start_is_transient(self) -> None:
        """Opening (and migrating) a database whose server does not answer is transient."""
        from gateway.adapters.persistence.postgres import PostgresStorage  # noqa: PLC0415

        with pytest.raises(TransientError):
            PostgresStorage(CLOSED_PORT_URL, connect_timeout=2).close()

    def test_describe_hides_the_password(self) -> None:
        """describe() names the server but never the password."""
        from gateway.adapters.persistence.postgres import PostgresStorage  # noqa: PLC0415

        url = "postgresql://gateway:s3cr3t-pw@127.0.0.1:1/gateway_test?sslmode=disable"
        storage = PostgresStorage(url, connect_timeout=2, upgrade=False)
        try:
            assert "s3cr3t-pw" not in storage.describe()
            assert "127.0.0.1" in storage.describe()
        finally:
            storage.close()
