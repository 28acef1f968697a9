"""The benchmark's CPU meter: seconds spent by the processes of a run, from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.bench.cpu import CpuMeter, child_pids, cpu_seconds

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


def test_the_children_of_a_process_are_found_whichever_thread_started_them() -> None:
    """`gateway run` may start its reports processes from any thread: each is found, a
    process that is not a child is not, and a process that is gone has none."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE))

    start()
    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    try:
        found = child_pids(os.getpid())
        assert {p.pid for p in procs} <= set(found)
        assert os.getppid() not in found
        assert child_pids(procs[0].pid) == []
    finally:
        for proc in procs:
            proc.communicate(b"\n", timeout=10)
    assert child_pids(procs[0].pid) == []  # gone
