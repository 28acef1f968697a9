"""Each fault on its own against the real broker and processes, then a short soak of them all.

The short soak is the default run of scripts/soak made small (500 orders, 3 kills, 1 broker
restart), so that CI keeps the promise the 10,000-order table of docs/reliability.md makes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.soak_support import quiet, soak

# slow: fault-harness runs of real processes.
pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _log(tmp_path: Path, name: str) -> str:
    return (tmp_path / "logs" / f"{name}.log").read_text(encoding="utf-8", errors="replace")


def test_gateway_killed_at_random_moments(tmp_path: Path, broker_url: str) -> None:
    """SIGKILLs while orders flow: all are paid once and posted once."""
    result = soak(quiet(tmp_path, random_kills=2, publish_seconds=5.0))
    assert result.events["gateway SIGKILL at a random moment"] == 2


def test_broker_restarted_gracefully(tmp_path: Path, broker_url: str) -> None:
    """The broker stops and starts while orders flow; every service reconnects."""
    result = soak(quiet(tmp_path, broker_restarts=1, publish_seconds=5.0))
    assert result.events["broker restart (graceful)"] == 1
    assert "broker.connection_lost" in _log(tmp_path, "gateway")


def test_broker_killed(tmp_path: Path, broker_url: str) -> None:
    """SIGKILL of the broker: confirmed messages survive it, unconfirmed ones are sent again."""
    result = soak(quiet(tmp_path, broker_kills=1, publish_seconds=5.0))
    assert result.events["broker SIGKILL and start"] == 1
    assert "broker.connection_lost" in _log(tmp_path, "gateway")


@pytest.mark.parametrize(
    ("fault", "plan"),
    [
        ("duplicate", "duplicate=1"),
        ("delay", "delay=1"),
        ("reorder", "reorder=1"),
        ("drop", "drop=1"),
    ],
)
def test_bank_misbehaving(fault: str, plan: str, tmp_path: Path, broker_url: str) -> None:
    """Every reply duplicated, delayed, out of order, or dropped and resent later."""
    result = soak(quiet(tmp_path, bank_faults=plan))
    assert result.bank_faults.get(fault, 0) >= 4, result.render()


def test_bank_unreachable_for_a_while(tmp_path: Path, broker_url: str) -> None:
    """The bank is down; files wait for it and are answered once it is back."""
    result = soak(quiet(tmp_path, bank_outage_s=4.0, publish_seconds=5.0))
    assert result.events["bank unreachable (4 s)"] == 1


def test_database_locked_by_another_process(tmp_path: Path, broker_url: str) -> None:
    """Another process holds the gateway's database: the gateway waits and goes on."""
    result = soak(quiet(tmp_path, db_lock_s=3.0, publish_seconds=5.0))
    assert result.events["database locked by another process (3 s)"] == 1


@pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"),
    reason="a full disk is simulated on a small tmpfs, which only root may mount",
)
def test_disk_full(tmp_path: Path, broker_url: str) -> None:
    """The gateway's disk is full: its writes fail, are retried later, and nothing is lost."""
    result = soak(quiet(tmp_path, disk_full_s=3.0, publish_seconds=6.0, orders=150))
    assert result.events["gateway disk full (3 s)"] == 1, result.render()
    assert "disk is full" in _log(tmp_path, "gateway")


def test_short_soak_of_every_fault(tmp_path: Path, broker_url: str) -> None:
    """500 orders, 3 gateway kills (one at a random crash point), a broker restart, a bank that
    misbehaves: nothing lost, nothing paid twice, every posting once, every order final."""
    result = soak(
        quiet(
            tmp_path,
            orders=500,
            batch_size=50,
            publish_seconds=12.0,
            random_kills=2,
            crash_points=("relay.published_unconfirmed",),
            broker_restarts=1,
            bank_faults="duplicate=0.2,delay=0.2,reorder=0.3,drop=0.1",
        )
    )
    kills = result.events["gateway SIGKILL at a random moment"] + sum(
        n for name, n in result.events.items() if name.startswith("gateway died at")
    )
    assert kills == 3
    assert result.events["broker restart (graceful)"] == 1
    counts = result.verdict.counts()
    assert counts == dict.fromkeys(counts, 0)
    assert result.verdict.info["orders published"] >= 500  # and a few to wake armed gateways


def test_instances_on_postgres_killed_while_postgres_restarts(
    tmp_path: Path, broker_url: str, postgres_base_url: str
) -> None:
    """Two gateways on one PostgreSQL, each killed at random, while PostgreSQL is restarted and
    killed: every order is paid once and posted once, whichever instance took it."""
    result = soak(
        quiet(
            tmp_path,
            database="postgres",
            instances=2,
            random_kills=2,
            postgres_restarts=1,
            postgres_kills=1,
            publish_seconds=6.0,
            orders=160,
        )
    )
    assert result.events["gateway SIGKILL at a random moment"] == 2
    assert result.events["PostgreSQL restart (graceful)"] == 1
    assert result.events["PostgreSQL SIGKILL and start (crash recovery)"] == 1
    # Both instances ran (each writes its own log; their work is checked by the soak's counts).
    assert all(_log(tmp_path, f"gateway-{n}") for n in (1, 2))
