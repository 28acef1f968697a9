"""A gateway process's settings: its garbage collector, its switch interval, its malloc arenas."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.runtime import (
    GC_YOUNG_THRESHOLD,
    MALLOC_ARENAS,
    SWITCH_INTERVAL,
    tune_allocator,
    tune_collector,
    tune_interpreter,
)


def test_the_collector_runs_less_often_and_skips_what_was_loaded_at_start() -> None:
    """The youngest generation's threshold is raised (the older ones kept) and what exists at
    the call is frozen out of the scans."""
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_threads_hand_the_interpreter_over_ten_times_as_often() -> None:
    """`gateway run` sets both: the collector, and a switch interval a tenth of CPython's."""
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_interpreter()
        assert sys.getswitchinterval() == SWITCH_INTERVAL < interval
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


_ARENAS = """
import ctypes, sys, threading
from gateway.runtime import tune_allocator

if sys.argv[1] == "tuned":
    assert tune_allocator()
blocks = []  # kept, so that each thread's arena holds something
started, done = threading.Barrier(8), threading.Barrier(8)

def work():  # the eight alive at once: none takes over an arena another has left
    started.wait()
    blocks.append([bytearray(50_000) for _ in range(4)])
    done.wait()

threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(out))
libc.fclose(ctypes.c_void_p(out))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize(("mode", "most"), [("tuned", MALLOC_ARENAS), ("default", None)])
def test_a_gateway_process_keeps_to_two_malloc_arenas(
    mode: str, most: int | None, tmp_path: Path
) -> None:
    """Eight threads allocating: with `tune_allocator`, glibc's heaps are at most two (as
    `malloc_info` counts them); without it, each thread had one of its own."""
    report = tmp_path / "malloc.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    subprocess.run(
        [sys.executable, "-c", _ARENAS, mode, str(report)], check=True, env=env, timeout=60
    )
    heaps = report.read_text().count("<heap nr=")
    if most is None:
        assert heaps > MALLOC_ARENAS
    else:
        assert 1 <= heaps <= most


@pytest.mark.parametrize(
    ("name", "value"),
    [("MALLOC_ARENA_MAX", "4"), ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")],
)
def test_an_operators_arena_limit_stands(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set in the environment, glibc has read it at the process's start: nothing is changed."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setenv(name, value)
    assert tune_allocator() is False
