"""A real `gateway ...` process for the integration tests, started and awaited."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

GATEWAY = str(Path(sys.executable).parent / "gateway")


def start_until(args: list[str], env: Mapping[str, str], ready: str) -> subprocess.Popen[str]:
    """Start `gateway ARGS` and wait for the line saying it runs (or fail with its last lines)."""
    process = subprocess.Popen(
        [GATEWAY, *args],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if ready in line:
            return process
    process.kill()
    process.wait(10)
    pytest.fail(f"`gateway {' '.join(args)}` did not start:\n" + "".join(lines[-30:]))
