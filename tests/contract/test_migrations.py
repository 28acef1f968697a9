"""Schema versions: numbered migrations per backend, an existing database upgraded in place, a
database newer than the code refused with one line, by `gateway run` and `gateway db` alike."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

import psycopg
import pytest

from gateway.adapters.persistence import migrations
from gateway.adapters.persistence.postgres import PostgresStorage
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.domain.states import TxState
from gateway.reasons import ReasonClass, reason_class
from gateway.service.ports import NewOrder, OutboxMessage, OutboxStatus, SchemaTooNew

GATEWAY = str(Path(sys.executable).parent / "gateway")
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def _first_schema() -> str:
    folder = resources.files("gateway.adapters.persistence").joinpath("schema", "sqlite")
    return folder.joinpath("0001_initial.sql").read_text(encoding="utf-8")


def _old_database(path: Path) -> None:
    """A database as gateways before versioned migrations left it: the first schema, one
    order, no schema_version table."""
    conn = sqlite3.connect(path)
    conn.executescript(_first_schema())
    conn.execute(
        "INSERT INTO orders (order_id, content_hash, payload, partner, group_key, category,"
        " amount, currency, state, received_at, updated_at) VALUES ('OLD-1', 'h', '{}',"
        " 'agribank', 'g', 'social_benefit', '606000', 'VND', 'settled',"
        " '2026-10-01T01:00:00.000000+00:00', '2026-10-01T01:00:00.000000+00:00')"
    )
    conn.commit()
    conn.close()


def _gateway(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_versions_are_numbered_from_one_on_both_backends() -> None:
    """Each backend ships the same versions, 1, 2, ... with no gap."""
    sqlite_versions = [m.version for m in migrations.shipped("sqlite")]
    postgres_versions = [m.version for m in migrations.shipped("postgres")]
    assert sqlite_versions == postgres_versions == list(range(1, len(sqlite_versions) + 1))
    assert len(sqlite_versions) >= 2


def test_an_existing_sqlite_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A database from before versioning keeps its orders (their payloads in a table of their
    own) and gains the claim columns."""
    path = tmp_path / "gateway.db"
    _old_database(path)
    storage = SqliteStorage(path)
    try:
        assert storage.schema() == (migrations.newest("sqlite"), migrations.newest("sqlite"))
        old = storage.queries.order("OLD-1")
        assert old is not None
        assert old.state is TxState.SETTLED
        assert old.amount == Decimal("606000")
        assert old.payload == "{}"  # moved to order_payloads (0008), read back with the order
        columns = [row[1] for row in storage.query("PRAGMA table_info(orders)")]
        assert "payload" not in columns
        with storage.unit_of_work() as uow:
            uow.outbox.enqueue(OutboxMessage("m-1", "treasury.ledger", "k", b"{}", {}), NOW)
            claimed = uow.outbox.claim("me", 10, NOW, NOW.replace(hour=2))
        assert [p.message.message_id for p in claimed] == ["m-1"]
    finally:
        storage.close()


def test_gateway_db_upgrade_says_what_it_applied(tmp_path: Path) -> None:
    """`gateway db upgrade` on an old file names the versions applied, then nothing more."""
    path = tmp_path / "gateway.db"
    _old_database(path)
    env = {"GATEWAY_DB_PATH": str(path), "GATEWAY_DB_URL": ""}
    before = _gateway("db", "status", env=env)
    assert before.returncode == 0, before.stderr
    assert "schema version 0 of" in before.stdout
    assert "pending" in before.stdout
    first = _gateway("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    newest = migrations.newest("sqlite")
    applied = ", ".join(str(v) for v in range(1, newest + 1))
    assert f"schema version {newest} (applied {applied})" in first.stdout
    again = _gateway("db", "upgrade", env=env)
    assert f"schema version {newest} (nothing to apply)" in again.stdout
    assert "up to date" in _gateway("db", "status", env=env).stdout


def test_a_sqlite_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    """A file upgraded by a newer gateway is refused by the adapter and by the command line
    with one line, and is left as it was."""
    path = tmp_path / "gateway.db"
    SqliteStorage(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'future', '2030-01-01T00:00:00+00:00')")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew, match="schema version 99, newer than this gateway"):
        SqliteStorage(path)
    env = {"GATEWAY_DB_PATH": str(path), "GATEWAY_DB_URL": ""}
    for command in (("db", "upgrade"), ("status",)):
        result = _gateway(*command, env=env)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "schema version 99" in lines[0]


def test_postgres_migrates_once_and_refuses_a_newer_database(postgres_url: str) -> None:
    """On PostgreSQL the migrations are applied once, recorded, and a newer schema refused."""
    first = PostgresStorage(postgres_url)
    try:
        newest = migrations.newest("postgres")
        assert first.schema() == (newest, newest)
        assert first.upgrade() == []
        with first.unit_of_work() as uow:
            uow.orders.add(
                NewOrder("PG-1", "h", "{}", "agribank", "g", "salary", Decimal("12.50"), "EUR"),
                NOW,
            )
    finally:
        first.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', now())")
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        PostgresStorage(postgres_url)
    untouched = PostgresStorage(postgres_url, upgrade=False)
    try:
        stored = untouched.queries.order("PG-1")
        assert stored is not None
        assert stored.amount == Decimal("12.50")
    finally:
        untouched.close()


# Outbox rows as version 3 kept them: (message_id, sent, parked_why); version 4 makes them
# pending, sent, parked, dropped (with the bare reason) and sent.
_OLD_OUTBOX = (
    ("m-pending", False, None),
    ("m-sent", True, None),
    ("m-parked", False, "NO_ROUTE"),
    ("m-dropped", False, "dropped: NO_ROUTE"),
    ("m-parked-then-sent", True, "NO_ROUTE"),
)
# Quarantine reasons of every class, worded as the gateway words them.
_OLD_REASONS = (
    "line 2: <GrpHdr> has 40000 attributes; the limit is 16 (limit max_attributes)",
    "fault while reading the file: MemoryError",
    "file from unknown partner 'x'",
    "agribank reused MsgId R-1 for a different file; the first is kept",
    "no signature: the document has no ds:Signature",
    "pain.002.001.12 fails its XSD: line 3: ...",
    "document has a DOCTYPE declaration; DTDs and entities are refused",
    "document is 99999999 bytes; the limit is 52428800",
    "camt.053.001.08 is not a report the gateway reads",
    "<Sts> is missing",
    "RÉSUMÉ: Signature KO",
)


def _fill_version_3(run: Callable[[str, tuple[object, ...]], object], backend: str) -> None:
    """Apply migrations 1-3 and add the rows of _OLD_OUTBOX and _OLD_REASONS as version 3
    wrote them (a dropped message told by "dropped: " before its reason). `run` takes `?`
    placeholders."""
    run(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        f" applied_at {'TEXT' if backend == 'sqlite' else 'TIMESTAMPTZ'} NOT NULL)",
        (),
    )
    for migration in migrations.shipped(backend)[:3]:
        for statement in migration.statements:
            run(statement, ())
        run(
            "INSERT INTO schema_version VALUES (?, ?, ?)",
            (migration.version, migration.name, NOW.isoformat()),
        )
    for message_id, sent, why in _OLD_OUTBOX:
        run(
            "INSERT INTO outbox (message_id, exchange, routing_key, body, headers, created_at,"
            " sent_at, parked_at, parked_why) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                "treasury.ledger",
                "k",
                b"{}",
                "{}",
                NOW.isoformat(),
                NOW.isoformat() if sent else None,
                NOW.isoformat() if why else None,
                why,
            ),
        )
    for n, reason in enumerate(_OLD_REASONS):
        run(
            "INSERT INTO quarantine (partner, sha256, raw, reason, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            ("agribank", f"sha-{n}", b"x", reason, NOW.isoformat()),
        )


def _check_version_4(storage: SqliteStorage | PostgresStorage) -> None:
    """Every old row has the status and class version 4 gives it, and the rules agree."""
    q = storage.queries
    assert q.outbox_by_status() == {
        OutboxStatus.PENDING: 1,
        OutboxStatus.PARKED: 1,
        OutboxStatus.DROPPED: 1,
    }
    [parked] = q.outbox_parked()
    assert (parked.message_id, parked.parked_why) == ("m-parked", "NO_ROUTE")
    with storage.unit_of_work() as uow:
        assert not uow.outbox.unpark("m-dropped")
        assert [p.message.message_id for p in uow.outbox.claim("me", 9, NOW, NOW)] == ["m-pending"]
    expected = sorted(Counter(reason_class(r).value for r in _OLD_REASONS).items())
    assert [(c, n) for _, c, n in q.quarantine_by_class()] == expected
    assert {c for _, c, _ in q.quarantine_by_class()} == {c.value for c in ReasonClass}


def test_sqlite_version_4_backfills_status_and_reason_class(tmp_path: Path) -> None:
    """Upgrading a version-3 SQLite file gives each outbox row its status (a "dropped: "
    reason becomes the status dropped and the bare reason) and each quarantined file the class
    gateway.reasons gives its reason."""
    path = tmp_path / "gateway.db"
    conn = sqlite3.connect(path)
    _fill_version_3(conn.execute, "sqlite")
    conn.commit()
    conn.close()
    storage = SqliteStorage(path)
    try:
        assert storage.schema()[0] == migrations.newest("sqlite")
        _check_version_4(storage)
    finally:
        storage.close()


def test_postgres_version_4_backfills_status_and_reason_class(postgres_url: str) -> None:
    """The same upgrade on PostgreSQL gives the same statuses and classes."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        _fill_version_3(
            lambda sql, args: conn.execute(sql.replace("?", "%s"), args),
            "postgres",
        )
    storage = PostgresStorage(postgres_url)
    try:
        assert storage.schema()[0] == migrations.newest("postgres")
        _check_version_4(storage)
    finally:
        storage.close()


def test_sqlite_quarantine_rows_keep_their_bytes_across_version_6(tmp_path: Path) -> None:
    """A file quarantined before version 7 (its bytes in its row) keeps them, and gains its
    size; rows written since keep none."""
    path = tmp_path / "gateway.db"
    _old_database(path)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO quarantine (partner, sha256, raw, reason, received_at) VALUES"
        " ('agribank', 'aa', X'3c613e', 'bad signature', '2026-10-01T01:00:00.000000+00:00')"
    )
    conn.commit()
    conn.close()
    storage = SqliteStorage(path)
    try:
        [row] = storage.queries.quarantined()
        assert (row.partner, row.sha256, row.size, row.reason) == (
            "agribank",
            "aa",
            3,
            "bad signature",
        )
        assert row.reason_class == "signature"
        assert storage.queries.quarantined_raw("aa") == b"<a>"
        with storage.unit_of_work() as uow:
            assert uow.inbound.quarantine("agribank", "bb", 7, "worse", NOW)
        assert storage.queries.quarantined_raw("bb") is None
        assert storage.queries.quarantined()[0].size == 7
    finally:
        storage.close()


def test_postgres_quarantine_rows_keep_their_bytes_across_version_6(postgres_url: str) -> None:
    """The same on PostgreSQL: a database at version 5 with a quarantined file upgraded."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(migrations._VERSION_TABLE.format(time="TIMESTAMPTZ"))
        for migration in migrations.shipped("postgres")[:5]:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version VALUES (%s, %s, now())",
                (migration.version, migration.name),
            )
        conn.execute(
            "INSERT INTO quarantine (partner, sha256, raw, reason, received_at) VALUES"
            " ('agribank', 'aa', '\\x3c613e'::bytea, 'bad', now())"
        )
    storage = PostgresStorage(postgres_url)
    try:
        [row] = storage.queries.quarantined()
        assert (row.partner, row.sha256, row.size, row.reason) == ("agribank", "aa", 3, "bad")
        assert storage.queries.quarantined_raw("aa") == b"<a>"
    finally:
        storage.close()
