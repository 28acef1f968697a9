"""Worker threads: each owns its connections, stops on one event, and logs why it failed."""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading
from collections.abc import Callable

import structlog

from gateway.errors import TransientError

log = structlog.get_logger("gateway.runtime")


# Allocations (less deallocations) between two collections of the youngest generation.
GC_YOUNG_THRESHOLD = 100_000
# Seconds a thread runs Python before it must hand the interpreter to a thread asking for it.
SWITCH_INTERVAL = 0.0005
# glibc malloc's arenas a gateway process may use (M_ARENA_MAX, mallopt's parameter -8).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8


def tune_interpreter() -> None:
    """CPython's settings for a gateway process: its collector (`tune_collector`) and how
    often its threads hand the interpreter over.

    A thread that comes back from SQLite or the broker (which it left the interpreter for)
    waits for a thread running Python to hand it over: up to the switch interval, 5 ms by
    default, at every statement and every frame. A unit of work holding SQLite's write lock
    pays that wait at each of its statements, and every other writer waits behind it, the
    urgent lane's first. At 0.5 ms the urgent lane's p99 under a bulk run fell by about half,
    for no measurable cost in throughput or CPU (docs/benchmarks.md)."""
    tune_collector()
    sys.setswitchinterval(SWITCH_INTERVAL)


def tune_allocator() -> bool:
    """Hold glibc's malloc to MALLOC_ARENAS arenas in a gateway process, before its threads
    start; whether it was done.

    glibc gives each new thread an arena of its own at its first allocation, up to eight per
    core, and a freed block returns only to its own arena: a gateway's dozen threads
    (consumers, relays, the batcher, its XSD checkers, the database's connections) each kept a
    high-water mark of their own. Alternated on PostgreSQL, 100,000 orders: the main process
    peaked at 340 and 378 MB with glibc's default and at 300 and 309 MB with two, in the same
    time (docs/benchmarks.md). An operator's `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` stands; a
    C library without `mallopt` (musl, macOS, Windows) is left as it is."""
    if os.environ.get("MALLOC_ARENA_MAX") or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS))


def tune_collector() -> None:
    """Make CPython's cyclic garbage collector run less often in a long-running gateway.

    Every order, bank entry and posting allocates hundreds of short-lived objects, nearly all
    freed by reference counting; at the default threshold (700) the collector runs thousands
    of times a second under a bulk run and scans objects it will not free. What is loaded at
    start (settings, schemas, keys) is frozen out of its scans. Memory held by cycles is
    still freed, only later: measured on 100,000 orders, peak RSS about 25 MB higher."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class Runtime:
    """Starts named workers and stops them together."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, name: str, target: Callable[[threading.Event], None]) -> None:
        """Run `target(stop_event)` in a thread, restarting it after an unexpected error."""

        def guarded() -> None:
            while not self.stop_event.is_set():
                try:
                    target(self.stop_event)
                    return
                except Exception as exc:
                    log.exception("worker.crashed", worker=name, error=repr(exc))
                    self.stop_event.wait(1.0)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop and wait for them."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)

    def wait(self) -> None:
        """Block until stopped (Ctrl-C stops)."""
        try:
            while not self.stop_event.wait(0.5):
                pass
        except KeyboardInterrupt:
            log.info("runtime.interrupted")
        finally:
            self.stop()


def every(
    interval: float | Callable[[], float],
    step: Callable[[], int],
    *,
    idle_limit: float | None = None,
) -> Callable[[threading.Event], None]:
    """A worker that calls `step` until stopped, pausing `interval` seconds (or as long as
    `interval()` says, asked each time) when it found nothing to do.

    With `idle_limit`, each further pass that finds nothing doubles the pause, up to
    `idle_limit` seconds; a pass that finds work brings it back to `interval`. A worker that
    polls the database (the outbox relay) then asks it a few times a second while idle, not
    twenty, and still follows a busy run at `interval`."""
    wait = interval if callable(interval) else lambda: interval

    def loop(stop: threading.Event) -> None:
        pause = wait()
        idle = 0  # passes in a row that found nothing
        while not stop.is_set():
            try:
                done = step()
            except TransientError as exc:
                # Database busy or full, broker away: wait longer each time, then try again.
                pause = min(max(pause * 2, 0.1), 5.0)
                log.warning("worker.transient_fault", error=str(exc), retry_in_s=pause)
                stop.wait(pause)
                continue
            pause = wait()
            if done:
                idle = 0
                continue
            if idle_limit is not None:
                pause = min(pause * 2 ** min(idle, 16), max(idle_limit, pause))
            idle += 1
            stop.wait(pause)

    return loop
