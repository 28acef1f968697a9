"""PostgreSQL storage (psycopg 3 with its pool), for several gateway instances on one database.

Selected by `GATEWAY_DB_URL=postgresql://...`. A unit of work is one transaction on a pooled
connection (READ COMMITTED). Rows a unit reads to change are locked (`SELECT ... FOR UPDATE`),
so two instances applying reports on one order take turns and the second sees the first's
result; shared work is claimed with `FOR UPDATE SKIP LOCKED`, so two instances never take the
same rows. Amounts are NUMERIC, times TIMESTAMPTZ, dates DATE.

Faults that may pass (the server restarting or gone, a connection dropped, a deadlock, a
serialization failure, no connection free in time) are raised as `TransientError`.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.adapters.persistence import migrations
from gateway.adapters.persistence.sql import HeldWrites, Row, SqlQueries, SqlUnitOfWork
from gateway.errors import ConfigError, TransientError
from gateway.service.clock import utcnow
from gateway.service.ports import INSTANCE_ROLES, Queries, UnitOfWork

T = TypeVar("T")

log = structlog.get_logger("gateway.postgres")

# One constant key for pg_advisory_xact_lock: instances starting together migrate one by one.
_MIGRATION_LOCK = 0x4B424E4E  # "KBNN"

# Faults that say nothing about the statement, only that the database could not serve it now.
_TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection refused or lost, server shutting down
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
    pg_errors.QueryCanceled,
    # The session sat idle in its transaction longer than it allowed (a relay whose broker
    # stalled, `end_idle_after`): its locks went, another relay sends its messages.
    pg_errors.IdleInTransactionSessionTimeout,
    PoolTimeout,
)

_PLACEHOLDER = re.compile(r"\?")

# An INSERT of one row of placeholders, perhaps ignoring conflicts on a key: `_execute_many`
# sends a large batch of it through a temporary table (`_insert_copied`).
_INSERT = re.compile(
    r"INSERT INTO (?P<table>\w+) \((?P<columns>\w+(?:, \w+)*)\)"
    r" VALUES \((?P<marks>%s(?:, %s)*)\)"
    r"(?P<conflict> ON CONFLICT \(\w+(?:, \w+)*\) DO NOTHING)?"
)

# An UPDATE of one row whose every placeholder stands for a column of the table: assigned
# (`column = %s`), kept unless given (`COALESCE(%s, column)`) or matched (`column = %s` in the
# WHERE clause, conditions joined by AND), with no subquery and no FROM of its own.
# `_execute_many` sends a large batch of it through a temporary table too (`_update_copied`).
_UPDATE = re.compile(r"UPDATE (?P<table>\w+) SET (?P<assign>.+) WHERE (?P<match>.+)")
_UPDATE_MARK = re.compile(r"(\w+) = %s|COALESCE\(%s, (\w+)\)")
_MATCH = re.compile(r"\w+ = %s(?: AND \w+ = %s)*")
_NOT_PLAIN = re.compile(r"\b(?:SELECT|FROM|RETURNING)\b", re.IGNORECASE)

# Rows from which a batch of such an INSERT or UPDATE is copied rather than executed row by row.
COPY_FROM = 64


@lru_cache(maxsize=4096)
def _sql(statement: str) -> str:
    """The shared SQL's `?` placeholders as psycopg's `%s` (the shared SQL has no `%`); kept,
    since the same statements come back a hundred thousand times in a run."""
    return _PLACEHOLDER.sub("%s", statement)


def redact(url: str) -> str:
    """The URL without its password, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresExecutor:
    """Statements on one connection inside one transaction, with row locks."""

    lock = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    keyed_join = "JOIN"

    prepared = False

    def __init__(self, conn: psycopg.Connection[Any], *, copies: bool = False) -> None:
        self._conn = conn
        self._later = HeldWrites()
        # Whether large batches may go through temporary tables (`_execute_many`).
        self._copies = copies

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        self.flush()
        return self._conn.execute(_sql(sql), tuple(args)).rowcount

    def each(self, texts: Sequence[str]) -> tuple[str, Any]:
        return "SELECT unnest(?::text[]) AS value", list(texts)

    def later(
        self,
        sql: str,
        args: Sequence[Any] = (),
        *,
        expect: int | None = None,
        error: Exception | None = None,
    ) -> None:
        self._later.add(_sql(sql), args, expect, error)

    def flush(self) -> None:
        """Send the held writes (`HeldWrites`: psycopg pipelines a batch, one round trip)."""
        if self._later:
            self._later.send(self._execute_many)

    def end_idle_after(self, seconds: float) -> None:
        # For this transaction only: PostgreSQL closes the session when it sits idle longer.
        self.run(
            "SELECT set_config('idle_in_transaction_session_timeout', ?, true)",
            (str(max(1, round(seconds * 1000))),),
        )

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if self._copies and len(rows) >= COPY_FROM:
            insert = _INSERT.fullmatch(sql)
            if insert and insert["marks"].count("%s") == insert["columns"].count(",") + 1:
                return self._insert_copied(sql, insert, rows)
            update = _UPDATE.fullmatch(sql)
            plan = _update_plan(update) if update else None
            if update and plan and _one_row_each(plan, rows):
                return self._update_copied(sql, update, plan, rows)
        with self._conn.cursor() as cursor:
            cursor.executemany(sql, [tuple(row) for row in rows])
            return cursor.rowcount

    def _insert_copied(self, sql: str, insert: re.Match[str], rows: Sequence[Sequence[Any]]) -> int:
        """A batch of one-row INSERTs as one: the rows copied (COPY) into a temporary table of
        the same columns, then inserted from it in their order, conflicts ignored as the
        statement says; the rows inserted.

        Executed row by row (psycopg pipelines them), each row costs psycopg's own work in the
        gateway's process: applying a camt.054 entry took 203-213 µs of the reports role's CPU,
        its inserts copied 150-173 (docs/storage.md, "Large batches copied"). The temporary
        table is the connection's, one per statement, made when missing (again after a
        rollback undid it), emptied after each batch (a unit may send two) and at each
        commit."""
        table, columns = insert["table"], insert["columns"]
        return self._through_held(
            _held_name(table, sql),
            f"SELECT 0::bigint AS held_n, {columns} FROM {table}",  # noqa: S608 - names from our own SQL
            f"held_n, {columns}",
            [(n, *row) for n, row in enumerate(rows)],
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {{held}}"  # noqa: S608 - names from our own SQL
            f" ORDER BY held_n{insert['conflict'] or ''}",
        )

    def _update_copied(
        self, sql: str, update: re.Match[str], plan: _UpdatePlan, rows: Sequence[Sequence[Any]]
    ) -> int:
        """A batch of one-row UPDATEs as one: the rows' values copied into a temporary table
        whose columns have the types of the table's columns they stand for, then one `UPDATE
        ... FROM` it; the rows changed. No two held rows can reach one table row (checked by
        `_one_row_each`), so the count is the one row by row would give, and a row that no
        longer matches (an order moved meanwhile) is missing from it as it was."""
        table = update["table"]
        held = _held_name(table, sql)
        marks = [f"p{n}" for n in range(1, len(plan.columns) + 1)]
        picked = ", ".join(
            f"{column} AS {mark}" for column, mark in zip(plan.columns, marks, strict=True)
        )
        names = iter(marks)
        assign, match = (
            _UPDATE_MARK.sub(lambda m: m.group(0).replace("%s", f"h.{next(names)}"), part)
            for part in (update["assign"], update["match"])
        )
        return self._through_held(
            held,
            f"SELECT {picked} FROM {table}",  # noqa: S608 - names from our own SQL
            ", ".join(marks),
            rows,
            f"UPDATE {table} SET {assign} FROM {{held}} AS h WHERE {match}",  # noqa: S608 - names from our own SQL
        )

    def _through_held(
        self, held: str, select: str, columns: str, rows: Sequence[Sequence[Any]], write: str
    ) -> int:
        """Copy `rows` into the temporary table `held` (made when missing, with the columns and
        types of `select`), run `write` (`{held}` names the table), empty the table; the rows
        `write` changed. `write` is planned afresh each time (not prepared): a plan kept from
        when the table written was small could read all of it for each batch."""
        with self._conn.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {held} ON COMMIT DELETE ROWS"
                f" AS {select} WITH NO DATA"
            )
            with cursor.copy(f"COPY {held} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(write.replace("{held}", held), prepare=False)
            changed = cursor.rowcount
            cursor.execute(f"DELETE FROM {held}")  # noqa: S608 - a name from our own SQL
            return changed

    def check(self, sql: str, args: Sequence[Any], rows: list[Row]) -> None:
        """Nothing to check: what a unit reads, it reads in its transaction, rows locked."""

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        self.flush()
        if not rows:
            return 0
        return self._execute_many(_sql(sql), rows)

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        self.flush()
        row = self._conn.execute(_sql(sql), tuple(args)).fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        self.flush()
        return [tuple(row) for row in self._conn.execute(_sql(sql), tuple(args)).fetchall()]


def _held_name(table: str, sql: str) -> str:
    """The temporary table a statement's batches are copied into: one per statement."""
    return f"held_{table}_{zlib.crc32(sql.encode()):08x}"


@dataclass(frozen=True)
class _UpdatePlan:
    """What a one-row UPDATE's placeholders stand for: the column of each, in order, and the
    placeholders matched against columns the statement does not assign (its key, as for an
    order's move: `order_id`, not `state`)."""

    columns: list[str]
    keys: list[int]


def _update_plan(update: re.Match[str]) -> _UpdatePlan | None:
    """The plan of an UPDATE that may be copied; None when a placeholder does not stand for a
    column, or the statement has a subquery or a FROM of its own, or its WHERE clause matches
    no column it leaves unchanged (it is then executed row by row)."""
    if _NOT_PLAIN.search(update["assign"]) or not _MATCH.fullmatch(update["match"]):
        return None
    parts = [
        [m.group(1) or m.group(2) for m in _UPDATE_MARK.finditer(part)]
        for part in (update["assign"], update["match"])
    ]
    assigned, matched = parts
    if len(assigned) != update["assign"].count("%s") or len(matched) != update["match"].count("%s"):
        return None
    keys = [len(assigned) + n for n, column in enumerate(matched) if column not in assigned]
    return _UpdatePlan(assigned + matched, keys) if keys else None


def _one_row_each(plan: _UpdatePlan, rows: Sequence[Sequence[Any]]) -> bool:
    """Whether no two rows name the same values for the columns the statement matches and
    leaves unchanged: then no table row is reached by two of them, neither at once nor one
    after the other (a row moved by one and matched by the next, as row by row would)."""
    keys = {tuple(row[n] for n in plan.keys) for row in rows}
    return len(keys) == len(rows)


class _Reader(PostgresExecutor):
    """Read-only statements, each on a pooled connection of its own, faults made transient."""

    lock = ""
    skip_locked = ""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self._later = HeldWrites()  # a reader holds no writes
        self._copies = False

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        with self._storage.connection() as conn:
            return PostgresExecutor(conn).one(sql, args)

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self._storage.connection() as conn:
            return PostgresExecutor(conn).all(sql, args)


class PostgresStorage:
    """The storage port on a PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 12,
        connect_timeout: float = 10.0,
        upgrade: bool = True,
    ) -> None:
        self.url = url
        _check_url(url)
        self._connect_timeout = connect_timeout
        self._held_lock = threading.Lock()
        self._held_count = 0
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=connect_timeout,
            kwargs={"connect_timeout": max(1, int(connect_timeout)), "autocommit": False},
            # A connection that broke while in the pool (a server restart) is replaced.
            check=ConnectionPool.check_connection,
            open=False,
            name="gateway",
        )
        self._pool.open(wait=False)
        if upgrade:
            self.upgrade()
        self._copies: bool | None = None  # asked of the database at the first unit of work

    @property
    def relay_locks(self) -> bool:
        """Row locks, held while the relay publishes: cheaper than a claim written and cleared."""
        return True

    @property
    def overlapping_units(self) -> bool:
        """Each unit of work has a pooled connection of its own."""
        return True

    @property
    def kind(self) -> str:
        return "postgresql"

    def describe(self) -> str:
        return redact(self.url)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for one transaction; faults that may pass become transient."""
        try:
            with self._pool.connection() as conn, self._held(), conn.transaction():
                yield conn
        except PoolTimeout as exc:
            raise TransientError(f"database unavailable: {self._why_no_connection(exc)}") from exc
        except _TRANSIENT as exc:
            raise TransientError(f"database unavailable: {_first_line(exc)}") from exc

    @contextmanager
    def _held(self) -> Iterator[None]:
        """Counts the pool's connections handed out and not yet given back (the pool's own
        size also counts connections it is still trying to open, after a server was lost)."""
        with self._held_lock:
            self._held_count += 1
        try:
            yield
        finally:
            with self._held_lock:
                self._held_count -= 1

    def _why_no_connection(self, timeout: PoolTimeout) -> str:
        """Why the pool had no connection to give. Every connection it may open handed out
        (`_held`): it was busy, said so without asking the server for one more. Else the server's or
        libpq's own words, from one connection tried directly (the pool only says it waited; its
        attempts' reasons are in its log lines), or the pool's words when that one is made."""
        with self._held_lock:
            held = self._held_count
        if held >= self._pool.max_size:
            return (
                f"all {held} connections of the pool in use for"
                f" {self._connect_timeout:g} s: {_first_line(timeout)}"
            )
        try:
            psycopg.connect(self.url, connect_timeout=max(1, int(self._connect_timeout))).close()
        except psycopg.Error as exc:
            return f"{redact(self.url)}: {_first_line(exc)}"
        return _first_line(timeout)

    def copies(self) -> bool:
        """Whether this role may make temporary tables here (large batches are copied through
        them, `PostgresExecutor._execute_many`); asked once. A database that refuses them
        (`REVOKE TEMPORARY`) has every batch executed row by row, as the log says once."""
        if self._copies is None:
            with self.connection() as conn:
                row = conn.execute(
                    "SELECT has_database_privilege(current_database(), 'TEMPORARY')"
                ).fetchone()
            self._copies = bool(row and row[0])
            if not self._copies:
                log.warning(
                    "postgres.no_temporary_tables",
                    hint="GRANT TEMPORARY ON DATABASE to the gateway's role: large batches are"
                    " then copied, not written row by row",
                )
        return self._copies

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        copies = self.copies()
        with self.connection() as conn:
            executor = PostgresExecutor(conn, copies=copies)
            yield SqlUnitOfWork(executor)
            executor.flush()

    def run_unit(self, step: Callable[[UnitOfWork], T]) -> T:
        """`step` in a unit of work: the rows it reads are locked as it reads them, so nothing
        is prepared before (see the SQLite storage's)."""
        with self.unit_of_work() as uow:
            return step(uow)

    @property
    def queries(self) -> Queries:
        return SqlQueries(_Reader(self))

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Any read-only statement with `?` placeholders, for tests and diagnostics."""
        return _Reader(self).all(sql, args)

    def schema(self) -> tuple[int, int]:
        with self.connection() as conn:
            ex = PostgresExecutor(conn)
            return migrations.current(ex, "postgres"), migrations.newest("postgres")

    def claim_instance(self, roles: Sequence[str] = INSTANCE_ROLES) -> None:
        """Any number of instances share a PostgreSQL database: nothing to hold."""

    def upgrade(self) -> list[int]:
        """Apply the pending migrations, one instance at a time."""
        with self.connection() as conn:
            ex = PostgresExecutor(conn)
            ex.one("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            return migrations.upgrade(ex, "postgres", utcnow())

    def clock_offset(self, now: datetime) -> float | None:
        """The server's `now()` against `now` (a round trip's time apart, on a local network a
        few milliseconds)."""
        row = _Reader(self).one("SELECT now()")
        assert row is not None
        server: datetime = row[0]
        return (server - now).total_seconds()

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()


def _check_url(url: str) -> None:
    """Refuse a URL libpq cannot read (a parameter it does not know, a port that is not a
    number) at once, naming it, instead of retrying it as a server that is down."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"database URL {redact(url)}: {_first_line(exc)}") from None
    for port in str(parts.get("port") or "").split(","):
        if port and not port.isdigit():
            raise ConfigError(f"database URL {redact(url)}: port {port!r} is not a number")


def fresh_schema(url: str, schema: str) -> str:
    """Drop and create `schema` in the database at `url` (everything in it is lost); the URL
    whose connections use it. For the demo, the soak and tests, never for a treasury's data."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
    except _TRANSIENT as exc:
        raise TransientError(f"database unavailable: {_first_line(exc)}") from exc
    return with_schema(url, schema)


def with_schema(url: str, schema: str) -> str:
    """The URL with libpq's `options` setting the search path to `schema`."""
    parts = urlsplit(url)
    query = [p for p in parts.query.split("&") if p and not p.startswith("options=")]
    query.append(f"options=-csearch_path%3D{schema}")
    return urlunsplit(parts._replace(query="&".join(query)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
