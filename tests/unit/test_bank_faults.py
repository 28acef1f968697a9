"""The misbehaving bank: faults parsed strictly, replies duplicated, reordered, held and resent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.banksim.faults import FaultPlan, Reply, ReplyFaults
from gateway.errors import ConfigError

REPLIES: list[Reply] = [("S1", "pain.002", b"<status/>"), ("N1", "camt.054", b"<debits/>")]


def test_a_plan_is_read_from_its_text() -> None:
    """Each fault's probability and the seed are read; nothing set means no fault."""
    plan = FaultPlan.parse("duplicate=0.1, delay=0.2,reorder=1,drop=0,seed=7")
    assert (plan.duplicate, plan.delay, plan.reorder, plan.drop, plan.seed) == (
        0.1,
        0.2,
        1.0,
        0.0,
        7,
    )
    assert plan.active
    assert not FaultPlan.parse("seed=3").active


@pytest.mark.parametrize("text", ["lose=0.1", "delay=x", "drop=1.5"])
def test_a_wrong_plan_is_refused_with_its_part(text: str) -> None:
    """An unknown fault or a probability outside 0..1 is named, never ignored."""
    with pytest.raises(ConfigError, match=text.split("=", maxsplit=1)[0]):
        FaultPlan.parse(text)


def test_reordered_and_duplicated_replies(tmp_path: Path) -> None:
    """reorder=1 sends a file's replies last-first; duplicate=1 sends each twice."""
    sent: list[Reply] = []
    faults = ReplyFaults(FaultPlan(reorder=1.0, duplicate=1.0), tmp_path / "bank.db", sent.append)
    faults.deliver(REPLIES)
    assert [r[0] for r in sent] == ["N1", "N1", "S1", "S1"]
    assert faults.counts() == {"duplicate": 2, "reorder": 1}


def test_dropped_replies_are_kept_and_resent_after_a_restart(tmp_path: Path) -> None:
    """A dropped reply waits in the bank's database, so a new simulator process still sends it."""
    sent: list[Reply] = []
    plan = FaultPlan(drop=1.0, resend_after=(0.0, 0.0))
    ReplyFaults(plan, tmp_path / "bank.db", sent.append).deliver(REPLIES)
    assert sent == []
    restarted = ReplyFaults(plan, tmp_path / "bank.db", sent.append)
    assert restarted.held() == 2
    assert restarted.flush_due() == 2
    assert sorted(r[0] for r in sent) == ["N1", "S1"]
    assert restarted.held() == 0


def test_a_delayed_reply_is_not_sent_before_its_time(tmp_path: Path) -> None:
    """A reply held for a delay stays held until then."""
    sent: list[Reply] = []
    faults = ReplyFaults(FaultPlan(delay=1.0, delay_s=(60.0, 60.0)), tmp_path / "b.db", sent.append)
    faults.deliver(REPLIES[:1])
    time.sleep(0.01)
    assert faults.flush_due() == 0
    assert sent == []
    assert faults.held() == 1
