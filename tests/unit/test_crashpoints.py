"""Crash points: silent when unset, deadly at the named count, and a typo refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys

from gateway import crashpoints


def _run(
    spec: str | None, hits: int, points: tuple[str, ...] = ("intake.before_ack",)
) -> subprocess.CompletedProcess[str]:
    """A fresh process passing each of `points` `hits` times, GATEWAY_CRASH_AT=spec (unset:
    None), printing each pass and, at the end, how many points it saw armed."""
    code = (
        "from gateway import crashpoints\n"
        f"points = {points!r}\n"
        f"for i in range({hits}):\n"
        "    for name in points:\n"
        "        crashpoints.hit(name)\n"
        "    print('passed', i + 1, flush=True)\n"
        "print('armed', sum(crashpoints.armed(name) for name in points))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CRASH_AT"}
    if spec is not None:
        env["GATEWAY_CRASH_AT"] = spec
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unset_crash_point_does_nothing() -> None:
    """Without GATEWAY_CRASH_AT a process passes every point, again and again, none armed."""
    assert len(crashpoints.POINTS) >= 8
    result = _run(None, hits=3, points=tuple(crashpoints.POINTS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["passed 1", "passed 2", "passed 3", "armed 0"]


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
