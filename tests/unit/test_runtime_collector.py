"""The gateway's garbage-collector setting for a long run."""

from __future__ import annotations

import gc

from gateway.runtime import GC_YOUNG_THRESHOLD, tune_collector


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
