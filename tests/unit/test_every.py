"""`runtime.every`: how long a polling worker pauses between passes."""

from __future__ import annotations

import threading

from gateway.errors import TransientError
from gateway.runtime import every


class _Recorder(threading.Event):
    """A stop event that records each pause asked of it and stops after `passes` of them."""

    def __init__(self, passes: int) -> None:
        super().__init__()
        self.pauses: list[float] = []
        self._passes = passes

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(float(timeout or 0.0))
        if len(self.pauses) >= self._passes:
            self.set()
        return self.is_set()


def _steps(*found: int | Exception):
    results = list(found)

    def step() -> int:
        result = results.pop(0) if results else 0
        if isinstance(result, Exception):
            raise result
        return result

    return step


def test_without_a_limit_an_idle_worker_pauses_the_interval_every_time() -> None:
    stop = _Recorder(passes=5)
    every(0.05, _steps())(stop)
    assert stop.pauses == [0.05] * 5


def test_with_a_limit_each_empty_pass_doubles_the_pause_up_to_the_limit() -> None:
    stop = _Recorder(passes=6)
    every(0.05, _steps(), idle_limit=0.4)(stop)
    assert stop.pauses == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]


def test_a_pass_that_finds_work_goes_on_at_once_and_brings_the_pause_back() -> None:
    # Empty, empty, empty, then work (no pause), then empty again: from the interval anew.
    stop = _Recorder(passes=5)
    every(0.05, _steps(0, 0, 0, 3, 0, 0), idle_limit=0.4)(stop)
    assert stop.pauses == [0.05, 0.1, 0.2, 0.05, 0.1]


def test_a_limit_below_the_interval_keeps_the_interval() -> None:
    stop = _Recorder(passes=3)
    every(0.25, _steps(), idle_limit=0.1)(stop)
    assert stop.pauses == [0.25, 0.25, 0.25]


def test_a_transient_fault_backs_off_on_its_own_and_the_idle_count_goes_on() -> None:
    # The fault's wait doubles from at least 0.1; after it, the empty passes pick up from the
    # count they had.
    stop = _Recorder(passes=4)
    every(0.05, _steps(0, TransientError("database busy"), 0, 0), idle_limit=0.4)(stop)
    assert stop.pauses == [0.05, 0.1, 0.1, 0.2]


def test_an_interval_asked_each_time_is_the_start_of_each_doubling() -> None:
    # A pause given as a callable (as the batcher's) is asked after every pass; with a limit,
    # what it says is doubled while the worker stays idle.
    asked = iter([0.2, 0.3, 0.3, 0.3])
    stop = _Recorder(passes=3)
    every(lambda: next(asked), _steps(), idle_limit=1.0)(stop)
    assert stop.pauses == [0.3, 0.6, 1.0]
