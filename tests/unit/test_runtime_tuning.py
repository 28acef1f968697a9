"""CPython's settings for a gateway process: its garbage collector and its switch interval."""

from __future__ import annotations

import gc
import sys

from gateway.runtime import GC_YOUNG_THRESHOLD, SWITCH_INTERVAL, tune_collector, tune_interpreter


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
