"""`gateway run` runs the reports role in processes it starts beside itself, and the group
lives and dies as one: a child that ends stops the gateway, the gateway's end ends them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway.config import Settings
from tests.integration.gateway_process import GATEWAY, start_until

# slow: real `gateway run` processes, started and killed.
pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _start(settings: Settings, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """`gateway run ARGS`, once it says it runs."""
    env = {
        **os.environ,
        "GATEWAY_DB_PATH": str(settings.db_file),
        "GATEWAY_DB_URL": "",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_LOG_FORMAT": "json",
    }
    return start_until(["run", *args], env, "gateway running against")


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing bracket.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # ended, not yet reaped
            return True
        time.sleep(0.1)
    return False


def test_the_reports_role_runs_in_the_processes_it_starts(
    settings: Settings, tmp_path: Path, broker_url: str
) -> None:
    """Two reports processes beside the gateway; a SIGKILL of one stops the gateway with one
    line naming it, exit status 1, and the other child goes with it."""
    gateway = _start(settings, tmp_path, "--reports-processes", "2")
    try:
        children = _children(gateway.pid)
        assert len(children) == 2
        for child in children:
            assert _cmdline(child)[-3:] == ["run", "--role", "reports"]
        os.kill(children[0], signal.SIGKILL)
        _, err = gateway.communicate(timeout=60)
    finally:
        if gateway.poll() is None:
            gateway.kill()
    assert gateway.returncode == 1
    assert "Traceback" not in err
    assert f"error: reports process {children[0]} ended (killed by SIGKILL)" in err
    assert _gone(children[1], within=30)


def test_the_children_end_when_the_gateway_is_killed(
    settings: Settings, tmp_path: Path, broker_url: str
) -> None:
    """A SIGKILL of the gateway (no chance to stop them) ends its reports process too."""
    gateway = _start(settings, tmp_path, "--reports-processes", "1")
    [child] = _children(gateway.pid)
    gateway.kill()
    gateway.wait(30)
    assert _gone(child, within=30)


def test_ctrl_c_stops_the_group_cleanly(
    settings: Settings, tmp_path: Path, broker_url: str
) -> None:
    """SIGINT: the gateway stops its workers and its children, and exits 0."""
    gateway = _start(settings, tmp_path, "--reports-processes", "1")
    try:
        [child] = _children(gateway.pid)
        gateway.send_signal(signal.SIGINT)
        _, err = gateway.communicate(timeout=60)
        assert gateway.returncode == 0, err[-2000:]
        assert _gone(child, within=5)
    finally:
        # A gateway left running would take the next tests' orders from the shared broker.
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(30)


def test_zero_runs_both_roles_in_one_process(
    settings: Settings, tmp_path: Path, broker_url: str
) -> None:
    gateway = _start(settings, tmp_path, "--reports-processes", "0")
    try:
        assert _children(gateway.pid) == []
    finally:
        gateway.kill()
        gateway.wait(30)


def _refused(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`gateway run ARGS` when it is refused before it starts anything."""
    env = {**os.environ, "GATEWAY_DB_PATH": str(settings.db_file), "GATEWAY_METRICS_PORT": "0"}
    return subprocess.run(
        [GATEWAY, "run", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_a_bad_count_is_one_clear_line(settings: Settings) -> None:
    result = _refused(settings, "--reports-processes", "many")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: reports_processes is 'many': give a number of processes (0 or more) or auto"
    ]


def test_a_count_with_one_role_is_refused(settings: Settings) -> None:
    """`--role main --reports-processes 2` asks for two things at once: one line says so."""
    result = _refused(settings, "--role", "main", "--reports-processes", "2")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "with --role main this process runs one role alone" in result.stderr
