"""The main role's process applies the banks' files while it has had no order for a while
(`main_applies_after`), and never when that is 0: here no reports role runs at all."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.banksim.bank import AccountBook
from gateway.banksim.wiring import build_bank, start_bank
from gateway.bootstrap import build_gateway, declare_topology, start_gateway
from gateway.config import Settings
from gateway.runtime import Runtime
from tests.integration.test_banksim_modes import _purge, publish_orders
from tests.unit.test_intake import order

pytestmark = pytest.mark.broker


def _run_main_alone(settings: Settings, tmp_path: Path, wait: float) -> dict[str, str]:
    """Two orders through `gateway run --role main` and the bank simulator: the orders' states
    once both are settled, or after `wait` seconds."""
    settings = replace(
        settings, partners={"agribank": settings.partners["agribank"]}, batch_quiet_seconds=0.3
    )
    gateway = build_gateway(settings)
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    runtime = Runtime()
    states: dict[str, str] = {}
    try:
        declare_topology(settings)
        _purge(settings)
        start_gateway(gateway, runtime, roles=("main",))
        start_bank(settings, settings.partners["agribank"], bank, runtime)
        publish_orders(settings, [order(order_id=f"IDLE-{n}") for n in (1, 2)], "idle")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            states = dict(gateway.storage.query("SELECT order_id, state FROM orders"))
            if len(states) == 2 and set(states.values()) == {"settled"}:
                break
            time.sleep(0.2)
    finally:
        runtime.stop()
        _purge(settings)
    return states


def test_the_main_role_applies_the_banks_files_once_idle(
    settings: Settings, tmp_path: Path
) -> None:
    """With no reports role anywhere, the bank's pain.002 and camt.054 are applied by the main
    role's process once intake has been idle for `main_applies_after`."""
    states = _run_main_alone(replace(settings, main_applies_after=0.5), tmp_path, 30)
    assert states == {"IDLE-1": "settled", "IDLE-2": "settled"}


def test_with_zero_the_main_role_leaves_the_banks_files(settings: Settings, tmp_path: Path) -> None:
    """`main_applies_after = 0`: the files wait for a reports role; the orders stay sent."""
    states = _run_main_alone(replace(settings, main_applies_after=0), tmp_path, 8)
    assert len(states) == 2
    assert set(states.values()) == {"sent"}  # at the bank, its replies not applied
