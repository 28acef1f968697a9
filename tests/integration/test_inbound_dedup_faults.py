"""A bank that resends: camt.054 entries are applied once per bank reference, in any file."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.bootstrap import build_gateway
from gateway.config import Settings
from gateway.iso20022.camt054 import build_camt054
from tests.doubles import FakeClock, Msg, pass_quiet_time
from tests.integration.test_inbound_rules import IDS, Sent, debit
from tests.unit.test_intake import order


@pytest.fixture
def sent_file(settings: Settings) -> Sent:
    """Two orders batched into one file and marked sent."""
    gateway = build_gateway(settings, clock=FakeClock())
    payloads = [order(order_id=i) for i in IDS]
    gateway.intake.handle([Msg(json.dumps(p, ensure_ascii=False).encode()) for p in payloads])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(msg_id,)] = gateway.storage.query("SELECT msg_id FROM files")
    with gateway.storage.unit_of_work() as uow:
        uow.files.sent(msg_id, datetime(2026, 11, 10, 8, 0, tzinfo=UTC))
    return Sent(gateway, settings, msg_id)


def test_an_entry_resent_in_another_file_is_applied_once(sent_file: Sent) -> None:
    """A debit already booked, sent again under a new MsgId after a return: nothing moves back,
    nothing is set aside for a person, no posting is written twice."""
    sent = sent_file
    apply = sent.gateway.inbound.apply
    first = debit(IDS[0], ref="VBA-D1")
    assert apply("agribank", sent.signed(build_camt054(first))) == "applied"
    returned = debit(IDS[0], credit="CRDT", return_reason="AC04", ref="VBA-R1")
    assert apply("agribank", sent.signed(build_camt054(returned))) == "applied"
    resent = replace(first, msg_id="VBA-N-RESENT")
    assert apply("agribank", sent.signed(build_camt054(resent))) == "applied"
    assert sent.states()[IDS[0]] == "returned"
    assert sent.unmatched() == []
    kinds = sorted(p["kind"] for p in sent.postings())
    assert kinds == ["payment_returned", "payment_settled"]
    applied = sent.gateway.storage.query("SELECT bank_ref, msg_id, outcome FROM camt_entries")
    assert sorted(applied) == [
        ("VBA-D1", "VBA-N-VBA-D1", "settled"),
        ("VBA-R1", "VBA-N-VBA-R1", "returned"),
    ]
