"""Worker threads: each owns its connections, stops on one event, and logs why it failed."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

import structlog

from gateway.errors import TransientError

log = structlog.get_logger("gateway.runtime")


# Allocations (less deallocations) between two collections of the youngest generation.
GC_YOUNG_THRESHOLD = 100_000


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


def every(interval: float, step: Callable[[], int]) -> Callable[[threading.Event], None]:
    """A worker that calls `step` until stopped, pausing `interval` when it found nothing to do."""

    def loop(stop: threading.Event) -> None:
        pause = interval
        while not stop.is_set():
            try:
                done = step()
            except TransientError as exc:
                # Database busy or full, broker away: wait longer each time, then try again.
                pause = min(max(pause * 2, 0.1), 5.0)
                log.warning("worker.transient_fault", error=str(exc), retry_in_s=pause)
                stop.wait(pause)
                continue
            pause = interval
            if done == 0:
                stop.wait(interval)

    return loop
