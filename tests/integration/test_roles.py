"""A gateway's two roles in processes of their own on one SQLite file: the main role held by
one process, the reports role run by any number; their writes taken in turn across them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.config import Settings
from gateway.errors import ConfigError

GATEWAY = str(Path(sys.executable).parent / "gateway")


def _run(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GATEWAY_DB_PATH": str(settings.db_file),
        "GATEWAY_DB_URL": "",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_METRICS_PORT": "0",
    }
    return subprocess.run(
        [GATEWAY, "run", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_main_role_is_held_by_one_process(settings: Settings, tmp_path: Path) -> None:
    """With the main role held, a second process for it and a whole instance are refused with
    one line naming the role and its holder; processes for the reports role alone are not."""
    holder = SqliteStorage(settings.db_file)
    holder.claim_instance(("main",))
    try:
        for args in (("--role", "main"), ()):
            result = _run(settings, tmp_path, *args)
            assert result.returncode == 1
            assert "Traceback" not in result.stderr
            [line] = result.stderr.strip().splitlines()
            assert "runs the main role" in line
            assert f"pid {os.getpid()}" in line
            assert "--role reports" in line
        reports = [SqliteStorage(settings.db_file) for _ in range(2)]
        for storage in reports:
            storage.claim_instance(("reports",))  # beside the main role, and each other
        whole = SqliteStorage(settings.db_file)
        with pytest.raises(ConfigError, match="runs the main role"):
            whole.claim_instance()
    finally:
        holder.close()


_WRITER = """
import sys
import time
from pathlib import Path
from gateway.adapters.persistence.sqlite import SqliteStorage
storage = SqliteStorage(Path(sys.argv[1]), busy_timeout=2.0)
storage.claim_instance((sys.argv[2],))
print("ready", flush=True)
sys.stdin.readline()
for n in range(int(sys.argv[3])):
    with storage.unit_of_work() as uow:
        uow.counters.next_value("turns")
        uow.counters.next_value(sys.argv[2])
        time.sleep(0.005)  # a unit that takes a while, as a report's part does
print("done", flush=True)
"""


def test_the_roles_processes_write_in_turn(settings: Settings) -> None:
    """Three processes, one for the main role and two for reports, each writing as fast as it
    can: every unit of work of each commits (none gives up as "database busy", though SQLite's
    wait is cut to 2 s) and the counter all advance counts every one."""
    SqliteStorage(settings.db_file).close()  # created and migrated before the race
    units = 400
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(settings.db_file), role, str(units)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("main", "reports", "reports")
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
    outputs = [writer.communicate("go\n", timeout=120) for writer in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert out.strip() == "done"
    storage = SqliteStorage(settings.db_file)
    try:
        with storage.unit_of_work() as uow:
            assert uow.counters.next_value("turns") == 3 * units + 1
            assert uow.counters.next_value("main") == units + 1
            assert uow.counters.next_value("reports") == 2 * units + 1
    finally:
        storage.close()
