"""The benchmark's CPU meter: seconds spent by the processes of a run, from /proc."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.bench.cpu import CpuMeter, cpu_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_a_process_started_during_the_run_counts_whole_and_a_missing_one_counts_nothing() -> None:
    """A child that burns about half a second of CPU is counted at that, the meter's own
    process under its own name, and a group with no process at 0."""
    child: list[int] = []
    meter = CpuMeter({"busy": lambda: child, "none": lambda: []})
    meter.start()
    burn = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"
    proc = subprocess.Popen([sys.executable, "-c", burn + "input()"], stdin=subprocess.PIPE)
    try:
        child.append(proc.pid)
        while cpu_seconds(proc.pid) < 0.5 and proc.poll() is None:
            pass  # this process spends CPU too, while it waits
        spent = meter.read()
    finally:
        proc.communicate(b"\n", timeout=10)
    assert 0.45 <= spent["busy"] < 5
    assert spent["none"] == 0
    assert spent["bench (ledger consumer)"] > 0.1
    assert cpu_seconds(proc.pid) == 0  # gone
