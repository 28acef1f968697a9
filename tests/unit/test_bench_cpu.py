"""The benchmark's CPU meter: seconds spent by the processes of a run, from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.bench.cpu import (
    CpuMeter,
    child_pids,
    cpu_seconds,
    machine_seconds,
    machine_ticks,
    render_machine,
)

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


def test_the_machines_cpu_time_is_read_by_kind_and_stolen_time_named() -> None:
    """/proc/stat's `cpu` line read by column; between two readings the busy kinds are
    summed, and idle, disk waits and the hypervisor's steal are each their own."""
    before = machine_ticks("cpu  100 5 20 1000 7 1 2 3 0 0\ncpu0 50 2 10 500 3 0 1 1 0 0\n")
    after = machine_ticks("cpu  300 5 60 1100 9 1 4 53 0 0\ncpu0 150 2 30 550 4 0 2 26 0 0\n")
    assert before == {
        "user": 100,
        "nice": 5,
        "system": 20,
        "idle": 1000,
        "iowait": 7,
        "irq": 1,
        "softirq": 2,
        "steal": 3,
    }
    tick = 1 / os.sysconf("SC_CLK_TCK")
    spent = machine_seconds(before, after)
    assert spent["busy"] == pytest.approx((200 + 40 + 2) * tick)
    assert spent["idle"] == pytest.approx(100 * tick)
    assert spent["iowait"] == pytest.approx(2 * tick)
    assert spent["steal"] == pytest.approx(50 * tick)
    assert "stolen by the hypervisor" in render_machine(spent)
    assert machine_seconds({}, after) == {}
    assert machine_ticks("intr 1 2 3\n") == {}
    assert machine_ticks()["idle"] > 0  # this machine's own /proc/stat
