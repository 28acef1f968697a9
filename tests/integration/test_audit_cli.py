"""`gateway users` and `gateway audit` on real SQLite and PostgreSQL databases: the command
line's admin actions are in the trail, and `gateway audit verify` finds a row edited, removed or
reordered in the database itself (exit 1), and passes an intact trail (exit 0)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from gateway.adapters.persistence import open_storage
from gateway.cli import cli
from gateway.service.channels import LEDGER_EXCHANGE
from gateway.service.ports import OutboxMessage

PASSWORD = "mật-khẩu-đủ-dài-1\n"


@dataclass
class Db:
    """A gateway database the commands use, and raw SQL on it (as an intruder would)."""

    env: dict[str, str]
    execute: Callable[[str], None]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        open_storage("", path).close()

        def on_sqlite(sql: str) -> None:
            with closing(sqlite3.connect(path, isolation_level=None)) as conn:
                conn.executescript(sql)

        yield Db({"GATEWAY_DB_URL": "", "GATEWAY_DB_PATH": str(path)}, on_sqlite)
        return
    url: str = request.getfixturevalue("postgres_url")
    open_storage(url, tmp_path / "unused.db").close()

    def on_postgres(sql: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    yield Db({"GATEWAY_DB_URL": url}, on_postgres)


def run(db: Db, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=db.env, input=stdin)


def three_actions(db: Db) -> None:
    """Three user changes from the command line: three rows in the trail."""
    for name, role in (("lan", "operator"), ("an", "viewer")):
        result = run(db, "users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        assert result.exit_code == 0, result.output
    assert run(db, "users", "disable", "an").exit_code == 0


def test_users_commands_and_their_audit_rows(db: Db) -> None:
    """users add/disable/list work and each change is a row of an intact trail."""
    three_actions(db)
    listed = run(db, "users", "list")
    assert listed.exit_code == 0
    assert "an" in listed.output and "disabled" in listed.output and "operator" in listed.output
    again = run(db, "users", "add", "lan", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    assert again.exit_code != 0 and "exists already" in str(again.exception)
    short = run(db, "users", "add", "minh", "--role", "viewer", "--password-stdin", stdin="ngắn\n")
    assert short.exit_code != 0
    trail = run(db, "audit", "list")
    assert [line.split()[4] for line in trail.output.splitlines()] == [
        "users.add",
        "users.add",
        "users.disable",
    ]
    verified = run(db, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "intact: 3 row(s)" in verified.output


def test_outbox_drop_from_the_command_line_is_audited(db: Db, tmp_path: Path) -> None:
    """`gateway dlq drop outbox` appends its row (with the reason) in the same transaction."""
    url = db.env.get("GATEWAY_DB_URL") or ""
    storage = open_storage(url, Path(db.env.get("GATEWAY_DB_PATH", tmp_path / "x.db")))
    now = datetime.now(UTC)
    try:
        with storage.unit_of_work() as uow:
            uow.outbox.enqueue(OutboxMessage("P-1", LEDGER_EXCHANGE, "posting.x", b"{}", {}), now)
        with storage.unit_of_work() as uow:
            (pending,) = uow.outbox.claim("t", 1, now, now)
            uow.outbox.park(pending.row_id, "NO_ROUTE", now)
        result = run(db, "dlq", "drop", "outbox", "--id", "P-1", "--reason", "trùng lệnh")
        assert result.exit_code == 0, result.output
        (row,) = storage.queries.audit_trail()
        assert (row.via, row.action, row.subject) == ("cli", "dlq.drop", "P-1")
        assert "trùng lệnh" in row.detail_json
    finally:
        storage.close()


@pytest.mark.parametrize(
    ("tamper", "seq", "kind"),
    [
        ("UPDATE audit_trail SET actor = 'mallory' WHERE seq = 2", 2, "changed"),
        ("DELETE FROM audit_trail WHERE seq = 2", 2, "removed"),
        ("DELETE FROM audit_trail WHERE seq = 3", 3, "removed"),
        (
            "UPDATE audit_trail SET seq = -1 WHERE seq = 1;"
            " UPDATE audit_trail SET seq = 1 WHERE seq = 2;"
            " UPDATE audit_trail SET seq = 2 WHERE seq = -1",
            1,
            "reordered",
        ),
    ],
    ids=["edited", "removed", "removed-last", "reordered"],
)
def test_verify_finds_the_first_tampered_row(db: Db, tamper: str, seq: int, kind: str) -> None:
    """A row edited, removed or reordered in the database: verify names it and exits 1."""
    three_actions(db)
    db.execute(tamper)
    result = run(db, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert f"BROKEN at row {seq} ({kind})" in result.output


def test_key_rotation_is_audited(tmp_path: Path) -> None:
    """`gateway keys rotate` appends a row naming the key, its id and when it signs from."""
    from datetime import timedelta  # noqa: PLC0415 - this test's alone

    from gateway.signing.keys import PASSPHRASE_ENV  # noqa: PLC0415

    db_path = tmp_path / "var" / "gateway.db"
    open_storage("", db_path).close()
    env = {
        "GATEWAY_HOME": str(tmp_path),
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_DB_URL": "",
        "GATEWAY_DB_PATH": str(db_path),
        PASSPHRASE_ENV: "correct horse battery staple",
    }
    runner = CliRunner()
    assert runner.invoke(cli, ["keys", "generate"], env=env).exit_code == 0
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    rotated = runner.invoke(
        cli, ["keys", "rotate", "--activate-at", when.isoformat(), "--export", str(tmp_path / "o")],
        env=env,
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    storage = open_storage("", db_path)
    try:
        (row,) = storage.queries.audit_trail()
    finally:
        storage.close()
    assert (row.via, row.action, row.subject) == ("cli", "keys.rotate", "kbnn-gateway")
    assert when.isoformat() in row.detail_json and '"key_id":' in row.detail_json


def test_commands_give_their_database_connections_back(postgres_url: str, tmp_path: Path) -> None:
    """A command's PostgreSQL pool is closed when the command ends, whether it succeeded or
    refused (its connections are not left open until the process exits)."""
    name = "gateway-cli-close-test"
    url = f"{postgres_url}&application_name={name}"
    open_storage(url, tmp_path / "unused.db").close()
    db = Db({"GATEWAY_DB_URL": url}, lambda sql: None)

    def left_open() -> int:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    three_actions(db)
    assert left_open() == 0
    refused = run(db, "users", "add", "lan", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    assert refused.exit_code != 0 and "exists already" in str(refused.exception)
    assert left_open() == 0
    unknown = run(db, "dlq", "drop", "outbox", "--id", "P-none", "--reason", "thử")
    assert unknown.exit_code != 0 and "P-none" in str(unknown.exception)
    assert left_open() == 0


def test_users_add_without_a_terminal_says_how_to_give_the_password(db: Db) -> None:
    """Run from a script with no terminal and no --password-stdin: one line saying what to do
    (it was `aborted`, exit 130), and no user added."""
    three_actions(db)
    result = run(db, "users", "add", "bình", "--role", "viewer", stdin="")
    assert result.exit_code == 1
    assert "--password-stdin" in str(result.exception)
    listed = run(db, "users", "list")
    assert listed.exit_code == 0 and "lan" in listed.output
    assert "bình" not in listed.output
