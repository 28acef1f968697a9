"""SQLite storage (WAL), the default: one file under var/, one writer at a time.

Each thread has its own connection. A unit of work is one `BEGIN IMMEDIATE` transaction (the
write lock is taken at its start, retried with backoff while another writer holds it); every
SQLite fault (busy, locked, disk full, I/O) is raised as `TransientError`. Values are stored as
text: amounts as plain decimals, times in UTC ISO 8601 with microseconds (sortable), dates ISO.

SQLite takes one gateway instance: `claim_instance()` holds an exclusive lock beside the file for
the life of `gateway run`, and a second instance is refused with one line. Several instances run
on PostgreSQL.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, TypeVar

import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from gateway.adapters.persistence import migrations
from gateway.adapters.persistence.sql import Held, HeldWrites, Row, SqlQueries, SqlUnitOfWork
from gateway.errors import ConfigError, TransientError
from gateway.service.clock import stamp, utcnow
from gateway.service.ports import (
    INSTANCE_ROLES,
    MAIN_ROLE,
    Queries,
    UnitOfWork,
)

log = structlog.get_logger("gateway.sqlite")

T = TypeVar("T")

# Seconds between two checkpoints of the write-ahead log by the instance's own thread.
CHECKPOINT_EVERY = 0.5


@lru_cache(maxsize=64)
def _stamp(moment: datetime) -> str:
    # A unit of work writes the same few moments on many rows.
    return stamp(moment)


def _value(value: Any) -> Any:
    """A domain value as SQLite keeps it."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _stamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


_thread = threading.local()


def prefer_this_thread() -> None:
    """Let this thread's units of work take the write lock before the other threads' waiting
    for it (the urgent lane: an urgent order must not queue behind bulk work)."""
    _thread.preferred = True


class _WriterLock:
    """This process's writers, one at a time; a preferred thread waiting goes first. Reentrant
    (a nested unit then meets SQLite's own refusal, as without the lock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0
        self._preferred_waiting = 0

    def acquire(self, timeout: float) -> bool:
        me = threading.get_ident()
        preferred = getattr(_thread, "preferred", False)
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            self._preferred_waiting += preferred
            try:
                free = self._cond.wait_for(
                    lambda: self._owner is None and (preferred or not self._preferred_waiting),
                    timeout,
                )
            finally:
                self._preferred_waiting -= preferred
            if not free:
                return False
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


# Values SQLite keeps as they are: passed without `_value`'s checks (most of a row's values).
_PLAIN = frozenset({str, int, float, bytes, bool, type(None)})


def _values(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple([v if type(v) in _PLAIN else _value(v) for v in args])


class SqliteExecutor:
    """Statements on one connection; SQLite needs no row locks (one writer at a time)."""

    lock = ""
    skip_locked = ""
    keyed_join = "CROSS JOIN"
    prepared = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._later = HeldWrites()

    def end_idle_after(self, seconds: float) -> None:
        """SQLite ends no transaction by itself (the relay holds none open there)."""

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        self.flush()
        return int(self._conn.execute(sql, _values(args)).rowcount)

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        self.flush()
        if not rows:
            return 0
        return self._execute_many(sql, list(rows))

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return self._execute_held(sql, [_values(r) for r in rows])

    def _execute_held(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Rows whose values are already as SQLite keeps them (`later` converts them)."""
        return int(self._conn.executemany(sql, rows).rowcount)

    def each(self, texts: Sequence[str]) -> tuple[str, Any]:
        return "SELECT value FROM json_each(?)", json.dumps(list(texts))

    def later(
        self,
        sql: str,
        args: Sequence[Any] = (),
        *,
        expect: int | None = None,
        error: Exception | None = None,
    ) -> None:
        # Converted now: a prepared unit (`run_unit`) does it before the write lock.
        self._later.add(sql, _values(args), expect, error)

    def flush(self) -> None:
        """Execute the held writes (`HeldWrites`: one `executemany` a statement)."""
        if self._later:
            self._later.send(self._execute_held)

    def check(self, sql: str, args: Sequence[Any], rows: list[Row]) -> None:
        """Nothing to check: the unit reads under the write lock."""

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        self.flush()
        row = self._conn.execute(sql, _values(args)).fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        self.flush()
        return [tuple(row) for row in self._conn.execute(sql, _values(args)).fetchall()]


class _NeedsLock(Exception):  # noqa: N818 - says what the unit needs, as STYLE.md has it
    """A prepared unit (`SqliteStorage.run_unit`) cannot be kept as prepared: it is run again
    under the write lock."""


def _changed_meanwhile(rows: list[Held], missing: int) -> Exception:
    """What a prepared unit's held writes changing fewer rows than they expect means."""
    return _NeedsLock(f"{missing} of {len(rows)} held writes found their row changed")


class _PreparedExecutor(SqliteExecutor):
    """A unit's statements before the write lock: reads on the snapshot of a read transaction,
    writes held, checks kept; `commit_on` makes them under the lock."""

    prepared = True

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self._checks: list[tuple[str, tuple[Any, ...], list[Row]]] = []

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        raise _NeedsLock("a write whose result the unit needs")

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        raise _NeedsLock("a write whose result the unit needs")

    def flush(self) -> None:
        """Nothing yet: the held writes wait for the lock (`commit_on`)."""

    def check(self, sql: str, args: Sequence[Any], rows: list[Row]) -> None:
        self._checks.append((sql, tuple(args), rows))

    @property
    def pending(self) -> bool:
        """Whether the unit held a write or read something its writes rest on: a unit that
        did neither has nothing to make under the lock."""
        return bool(self._checks) or bool(self._later)

    def commit_on(self, conn: sqlite3.Connection) -> None:
        """In `conn`'s write transaction: the checks read again, then the held writes made;
        _NeedsLock when a check reads otherwise or a write changes fewer rows than it expects
        (the caller rolls back)."""
        locked = SqliteExecutor(conn)
        for sql, args, rows in self._checks:
            if locked.all(sql, args) != rows:
                raise _NeedsLock("what the unit read changed")
        self._later.send(locked._execute_held, _changed_meanwhile)


class _Reader(SqliteExecutor):
    """Read-only statements on the calling thread's connection, faults made transient."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        with _transient("read", self._storage.path):
            return SqliteExecutor(self._storage.reader()).one(sql, args)

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with _transient("read", self._storage.path):
            return SqliteExecutor(self._storage.reader()).all(sql, args)


@contextmanager
def _transient(what: str, path: Path) -> Iterator[None]:
    """SQLite's faults that may pass (busy, locked, an I/O error) as TransientError naming the
    database file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise TransientError(f"database {path}: {what} failed: {exc}") from exc


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is open; SQLite may have rolled back already (disk full)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SqliteStorage:
    """The storage port on one SQLite file."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0, upgrade: bool = True) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._begin_retrying = Retrying(
            retry=retry_if_exception_type(sqlite3.OperationalError),
            wait=wait_exponential(multiplier=0.05, max=2),
            stop=stop_after_delay(max(busy_timeout, 0.5)),
            reraise=True,
        )
        self._local = threading.local()
        # Units of work of this process's threads queue here for the write lock, handed over at
        # once on release, instead of polling SQLite's busy handler (which sleeps up to 100 ms
        # between tries). Other processes (commands) still meet busy_timeout.
        self._writer = _WriterLock()
        # The lock file of the main role, when this process runs it (`claim_instance`).
        self._instance_lock: IO[str] | None = None
        self._checkpointer: threading.Thread | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        if upgrade:
            self.upgrade()

    @property
    def relay_locks(self) -> bool:
        """One writer: a unit held open while messages are published would keep every other
        writer waiting. The relays all run in the main role's one process (`claim_instance`),
        which holds their messages in memory instead."""
        return False

    @property
    def overlapping_units(self) -> bool:
        """One write lock: a second unit in the same thread would wait for the first."""
        return False

    @property
    def kind(self) -> str:
        return "sqlite"

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=self._busy_timeout, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            conn.close()
            raise  # busy, locked: may pass
        except sqlite3.DatabaseError as exc:  # not a database at all, or a damaged one
            conn.close()
            raise ConfigError(f"{self.path} is not a database SQLite can read: {exc}") from None
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        if self._checkpointer is not None:
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's thread does it
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection for units of work."""
        return self._thread_connection("conn")

    def reader(self) -> sqlite3.Connection:
        """This thread's connection for queries: outside any unit of work, so a query sees only
        what is committed, even from inside a unit."""
        return self._thread_connection("reader")

    def _thread_connection(self, which: str) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, which, None)
        if conn is None:
            with _transient("open", self.path):
                conn = self._connect()
            setattr(self._local, which, conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if not self._writer.acquire(timeout=max(self._busy_timeout, 0.5)):
            raise TransientError(
                f"database {self.path} busy: another unit of work holds the write lock"
            )
        try:
            with self._locked_transaction() as conn:
                yield conn
        finally:
            self._writer.release()

    @contextmanager
    def _locked_transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        try:
            self._begin(conn)
        except sqlite3.OperationalError as exc:
            raise TransientError(f"database {self.path} busy: {exc}") from exc
        try:
            yield conn
        except sqlite3.OperationalError as exc:
            # Locked, disk full, I/O error: nothing was written; the work is retried later.
            _rollback(conn)
            raise TransientError(f"database {self.path}: {exc}") from exc
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _rollback(conn)
            raise TransientError(f"database {self.path}: commit failed: {exc}") from exc

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self._transaction() as conn:
            executor = SqliteExecutor(conn)
            yield SqlUnitOfWork(executor)
            executor.flush()

    def run_unit(self, step: Callable[[UnitOfWork], T]) -> T:
        """`step` prepared before the write lock, made under it (see `Storage.run_unit`).

        The step runs in a read transaction of this thread's reader connection, so that all it
        reads is one snapshot, while other units hold the lock; the lock is then held only for
        its checks and its held writes (an `executemany` a statement). What is read again is
        what the repositories register (`Executor.check`): the states of the orders read, the
        files and flags whose absence a decision rests on; a write that must change its row
        (an order's guarded move, a file or entry kept once) is a check too. A step whose
        prepared run cannot be kept runs again in a plain unit of work. A step that only read
        (no write held, nothing registered) returns what it read on its snapshot, without
        taking the lock (the relay's look for pending messages)."""
        reader = self.reader()
        prepared = _PreparedExecutor(reader)
        try:
            with _transient("read", self.path):
                reader.execute("BEGIN")
            try:
                with _transient("read", self.path):
                    result = step(SqlUnitOfWork(prepared))
            finally:
                _rollback(reader)  # the snapshot ends; nothing was written on it
            if prepared.pending:
                with self._transaction() as conn:
                    prepared.commit_on(conn)
            return result
        except _NeedsLock as exc:
            log.debug("sqlite.unit_run_under_lock", reason=str(exc))
        with self.unit_of_work() as uow:
            return step(uow)

    def _begin(self, conn: sqlite3.Connection) -> None:
        # busy_timeout already waits inside SQLite; these retries cover what it does not (a
        # writer that holds the lock past it), for about as long again.
        self._begin_retrying(conn.execute, "BEGIN IMMEDIATE")

    @property
    def queries(self) -> Queries:
        return SqlQueries(_Reader(self))

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Any read-only statement, for tests and diagnostics (the services use `queries`)."""
        return _Reader(self).all(sql, args)

    def schema(self) -> tuple[int, int]:
        with self._transaction() as conn:
            return migrations.current(SqliteExecutor(conn), "sqlite"), migrations.newest("sqlite")

    def upgrade(self) -> list[int]:
        """Apply the pending migrations (an existing database is upgraded in place)."""
        with self._transaction() as conn:
            return migrations.upgrade(SqliteExecutor(conn), "sqlite", utcnow())

    def claim_instance(self, roles: Sequence[str] = INSTANCE_ROLES) -> None:
        """Hold this file for the gateway process running the main role until it ends: a
        second is refused with one line (one intake, batcher and relay writing; several
        instances need PostgreSQL). The reports role is not held: any number of processes may
        apply the banks' files beside it, each file given to one of them by the broker, as on
        PostgreSQL. The processes write in turn, as SQLite has any do (`BEGIN IMMEDIATE`, its
        busy handler), and a report's part holds the lock only for its writes (`run_unit`)."""
        if MAIN_ROLE in roles and self._instance_lock is None:
            self._instance_lock = self._hold()
        if self._checkpointer is None:
            self._checkpoint_in_background()

    def _hold(self) -> IO[str]:
        handle = self.path.with_name(self.path.name + ".instance").open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(
                f"another gateway instance ({holder}) runs the main role on {self.path}:"
                " SQLite takes one instance (more processes may apply the banks' files beside"
                " it, `gateway run --role reports`); run several on PostgreSQL (GATEWAY_DB_URL)"
            ) from None
        handle.seek(0)
        handle.truncate()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        handle.flush()
        return handle

    def _checkpoint_in_background(self) -> None:
        """The instance copies the write-ahead log into the database from a thread of its own.

        By default SQLite does it in the commit that grows the log past 1,000 pages, and with
        `synchronous = FULL` that commit then also syncs the database file while it holds the
        write lock: the urgent lane and every other writer wait behind it. A passive checkpoint
        runs beside the writers (it never blocks them) and, being C code, beside the Python
        threads too. The log is checkpointed every CHECKPOINT_EVERY seconds; a commit made by
        this process's connections opened from now on leaves it alone."""

        def run() -> None:
            conn: sqlite3.Connection | None = None
            while True:
                try:
                    conn = conn or self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # a full disk, say: the next round tries again
                    log.warning("sqlite.checkpoint_failed", error=str(exc))
                time.sleep(CHECKPOINT_EVERY)

        self._checkpointer = threading.Thread(target=run, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()
        for which in ("conn", "reader"):  # this thread's, opened before, now leave it too
            conn: sqlite3.Connection | None = getattr(self._local, which, None)
            if conn is not None:
                conn.execute("PRAGMA wal_autocheckpoint = 0")

    def clock_offset(self, now: datetime) -> float | None:
        """SQLite runs in this process: no other clock."""
        return None

    def close(self) -> None:
        """Close this thread's connections (other threads' close when their thread ends)."""
        for which in ("conn", "reader"):
            conn: sqlite3.Connection | None = getattr(self._local, which, None)
            if conn is not None:
                conn.close()
                setattr(self._local, which, None)
