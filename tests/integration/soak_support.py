"""A soak with every fault switched off, for tests that turn on one fault at a time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.soak.harness import SoakConfig, SoakResult, run_soak


def quiet(workdir: Path, **changes: Any) -> SoakConfig:
    """Few orders, small files, no fault unless `changes` turns one on."""
    base: dict[str, Any] = {
        "orders": 80,
        "batch_size": 20,
        "publish_seconds": 2.0,
        "random_kills": 0,
        "crash_points": (),
        "broker_restarts": 0,
        "broker_kills": 0,
        "bank_outage_s": 0.0,
        "db_lock_s": 0.0,
        "disk_full_s": 0.0,
        "bank_faults": "",
        "settle_timeout": 90.0,
        "workdir": workdir,
    }
    base.update(changes)
    return SoakConfig(**base)


def soak(config: SoakConfig) -> SoakResult:
    """Run it against this checkout's broker node and return what happened."""
    result = run_soak(config, dict(os.environ))
    assert result.verdict.clean, result.render()
    return result
