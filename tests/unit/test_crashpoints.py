"""Crash points: silent when unset, deadly at the named count, and a typo refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway import crashpoints


def _run(spec: str, hits: int) -> subprocess.CompletedProcess[str]:
    code = (
        "from gateway import crashpoints\n"
        f"for i in range({hits}):\n"
        "    crashpoints.hit('intake.before_ack')\n"
        "    print('passed', i + 1, flush=True)\n"
    )
    env = {**os.environ, "GATEWAY_CRASH_AT": spec}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unset_crash_point_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GATEWAY_CRASH_AT every point is passed through."""
    monkeypatch.setattr(crashpoints, "_armed", {})
    for name in crashpoints.POINTS:
        crashpoints.hit(name)
        assert not crashpoints.armed(name)


def test_the_process_dies_at_the_named_count() -> None:
    """`name:3` lets the point pass twice and kills the process (SIGKILL) the third time."""
    result = _run("intake.before_ack:3", hits=5)
    assert result.returncode == -9
    assert result.stdout.split("\n")[:2] == ["passed 1", "passed 2"]
    assert "passed 3" not in result.stdout


def test_a_misspelt_crash_point_stops_the_process() -> None:
    """A name that is no crash point would make a fault test pass without a fault: refused."""
    result = _run("intake.befor_ack", hits=1)
    assert result.returncode == 2
    assert "names no crash point" in result.stderr
