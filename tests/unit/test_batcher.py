"""Batcher: quiet groups become one signed file; an order no file can carry is rejected alone."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.bootstrap import Gateway, build_gateway
from gateway.config import Settings
from gateway.domain.orders import content_hash, order_from_payload
from gateway.iso20022.pain001 import read_pain001
from gateway.iso20022.xml import parse_xml
from gateway.service.batcher import TICK_MAX_SECONDS, TICK_MIN_SECONDS
from gateway.service.channels import LEDGER_EXCHANGE, TO_BANK_EXCHANGE
from gateway.service.intake import group_key
from gateway.service.ports import NewOrder, Storage
from tests.doubles import FakeClock, Msg, pass_quiet_time
from tests.unit.test_intake import order


def stored_directly(storage: Storage, payload: dict[str, Any], partner: str, key: str) -> None:
    """An order written as an older gateway version might have stored it, unchecked."""
    with storage.unit_of_work() as uow:
        uow.orders.add(
            NewOrder(
                order_id=str(payload["order_id"]),
                content_hash=content_hash(payload),
                payload=json.dumps(payload, ensure_ascii=False),
                partner=partner,
                group_key=key,
                category=str(payload["category"]),
                amount=Decimal(str(payload["amount"])),
                currency="VND",
            ),
            datetime(2026, 11, 1, tzinfo=UTC),
        )


def in_memory(settings: Settings) -> tuple[Gateway, MemoryStorage]:
    """The gateway's services on a storage in memory, and that storage to inspect."""
    storage = MemoryStorage()
    return build_gateway(settings, storage=storage, clock=FakeClock()), storage


def outbox_bodies(storage: MemoryStorage, exchange: str) -> list[bytes]:
    """The bodies of the outbox messages for one exchange, oldest first."""
    rows = storage.snapshot().outbox.values()
    return [row.message.body for row in rows if row.message.exchange == exchange]


def test_one_unbuildable_order_does_not_hold_back_its_group(settings: Settings) -> None:
    """The bad order is rejected with a posting; the good ones leave in one signed file."""
    gateway, storage = in_memory(settings)
    good = [order(order_id=f"BTXH2611-00000{i}") for i in range(1, 4)]
    gateway.intake.handle([Msg(json.dumps(p, ensure_ascii=False).encode()) for p in good])
    domain = order_from_payload(good[0])
    bad = order(order_id="BTXH2611-000009")
    bad["creditor"] = {**bad["creditor"], "name": "Lê Văn\u0001 Tám"}
    stored_directly(gateway.storage, bad, "agribank", group_key("agribank", domain))
    pass_quiet_time(gateway)

    assert gateway.batcher.tick() == 1
    states = {o.order_id: o.state for o in storage.snapshot().orders.values()}
    assert states == {
        "BTXH2611-000001": "batched",
        "BTXH2611-000002": "batched",
        "BTXH2611-000003": "batched",
        "BTXH2611-000009": "rejected",
    }
    [file_body] = outbox_bodies(storage, TO_BANK_EXCHANGE)
    content = read_pain001(parse_xml(file_body))
    assert sorted(t.end_to_end_id for t in content.transfers) == sorted(states)[:3]
    [posting] = outbox_bodies(storage, LEDGER_EXCHANGE)
    data = json.loads(posting)
    assert data["kind"] == "payment_rejected"
    assert data["order_id"] == "BTXH2611-000009"
    assert "U+0001" in data["reason"]["text"]


def test_a_missing_xsd_blocks_the_batch_without_blaming_the_orders(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of the installation rejects no order: the group waits, in received."""
    gateway, storage = in_memory(settings)
    gateway.intake.handle([Msg(json.dumps(order(), ensure_ascii=False).encode())])
    empty = tmp_path / "no-schemas"
    empty.mkdir()
    monkeypatch.setenv("GATEWAY_SCHEMAS_DIR", str(empty))
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 0
    state = storage.snapshot()
    assert [o.state for o in state.orders.values()] == ["received"]
    assert len(state.outbox) == 0


def test_the_batcher_looks_again_when_the_first_group_can_go_quiet(settings: Settings) -> None:
    """Between looks that built nothing the batcher waits until the first waiting group can
    go quiet (a group yet to come cannot before the quiet time has passed), at least 0.2 s and
    at most 1 s; at that moment the group is cut."""
    settings = replace(settings, batch_quiet_seconds=2.0)
    gateway, storage = in_memory(settings)
    clock = gateway.clock
    assert isinstance(clock, FakeClock)
    assert gateway.batcher.pause() == TICK_MIN_SECONDS  # before any look
    assert gateway.batcher.tick() == 0
    assert gateway.batcher.pause() == TICK_MAX_SECONDS  # nothing waits: the quiet time, capped
    gateway.intake.handle([Msg(json.dumps(order(), ensure_ascii=False).encode())])
    clock.advance(1.5)
    assert gateway.batcher.tick() == 0
    assert gateway.batcher.pause() == pytest.approx(0.51)  # 2 s after the order, and 10 ms
    clock.advance(0.4)
    assert gateway.batcher.tick() == 0
    assert gateway.batcher.pause() == TICK_MIN_SECONDS
    clock.advance(gateway.batcher.pause())
    assert gateway.batcher.tick() == 1
    assert [o.state for o in storage.snapshot().orders.values()] == ["batched"]


def test_a_group_holding_a_file_is_cut_before_it_goes_quiet(settings: Settings) -> None:
    """A group with as many orders as the smallest partner's file holds is ready at once."""
    partners = {
        name: replace(profile, messages=replace(profile.messages, max_txs_per_file=3))
        for name, profile in settings.partners.items()
    }
    gateway, storage = in_memory(replace(settings, partners=partners))
    two = [order(order_id=f"BTXH2611-00000{i}") for i in range(1, 3)]
    gateway.intake.handle([Msg(json.dumps(p, ensure_ascii=False).encode()) for p in two])
    assert gateway.batcher.tick() == 0
    third = order(order_id="BTXH2611-000003")
    gateway.intake.handle([Msg(json.dumps(third, ensure_ascii=False).encode())])
    assert gateway.batcher.tick() == 1
    assert {o.state for o in storage.snapshot().orders.values()} == {"batched"}
