"""`gateway db status` on a database upgraded by a newer gateway: it says so, naming both
versions, and exits 1, as every other command refuses such a database (SQLite)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner

from gateway.adapters.persistence import migrations, open_storage
from gateway.cli import cli
from gateway.service.ports import SchemaTooNew


def test_db_status_names_a_newer_schema_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    open_storage("", path).close()
    env = {"GATEWAY_DB_URL": "", "GATEWAY_DB_PATH": str(path)}
    newest = migrations.newest("sqlite")
    current = CliRunner().invoke(cli, ["db", "status"], env=env)
    assert current.exit_code == 0, current.output
    assert f"schema version {newest} of {newest}, up to date" in current.output
    # As a newer gateway's `gateway db upgrade` records its version.
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (99, "future", "2030-01-01T00:00:00+00:00"),
        )
    result = CliRunner().invoke(cli, ["db", "status"], env=env)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SchemaTooNew)
    message = str(result.exception)
    assert "upgraded by a newer gateway" in message
    assert f"schema version 99, newer than this gateway knows ({newest})" in message
    assert "upgrade(s) pending" not in result.output
