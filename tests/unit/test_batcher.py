"""Batcher: quiet groups become one signed file; an order no file can carry is rejected alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gateway.adapters.db import Database
from gateway.bootstrap import build_gateway
from gateway.config import Settings
from gateway.domain.orders import content_hash, order_from_payload
from gateway.iso20022.pain001 import read_pain001
from gateway.iso20022.xml import parse_xml
from gateway.service.intake import group_key
from tests.unit.test_intake import Msg, order


def stored_directly(db: Database, payload: dict[str, object], partner: str, key: str) -> None:
    """An order written as an older gateway version might have stored it, unchecked."""
    with db.transaction() as tx:
        tx.add_order(
            order_id=str(payload["order_id"]),
            content_hash=content_hash(payload),
            payload=json.dumps(payload, ensure_ascii=False),
            partner=partner,
            group_key=key,
            category=str(payload["category"]),
            amount=str(payload["amount"]),
            currency="VND",
            now="2026-11-01T00:00:00+00:00",
        )


def test_one_unbuildable_order_does_not_hold_back_its_group(settings: Settings) -> None:
    """The bad order is rejected with a posting; the good ones leave in one signed file."""
    gateway = build_gateway(settings)
    good = [order(order_id=f"BTXH2611-00000{i}") for i in range(1, 4)]
    gateway.intake.handle([Msg(json.dumps(p, ensure_ascii=False).encode()) for p in good])
    domain = order_from_payload(good[0])
    bad = order(order_id="BTXH2611-000009")
    bad["creditor"] = {**bad["creditor"], "name": "Lê Văn\u0001 Tám"}
    stored_directly(gateway.db, bad, "agribank", group_key("agribank", domain))
    time.sleep(settings.batch_quiet_seconds + 0.1)

    assert gateway.batcher.tick() == 1
    states = dict(gateway.db.query("SELECT order_id, state FROM orders"))
    assert states == {
        "BTXH2611-000001": "batched",
        "BTXH2611-000002": "batched",
        "BTXH2611-000003": "batched",
        "BTXH2611-000009": "rejected",
    }
    [(file_body,)] = gateway.db.query("SELECT body FROM outbox WHERE exchange = 'gateway.to-bank'")
    content = read_pain001(parse_xml(bytes(file_body)))
    assert sorted(t.end_to_end_id for t in content.transfers) == sorted(states)[:3]
    [(posting,)] = gateway.db.query("SELECT body FROM outbox WHERE exchange = 'treasury.ledger'")
    data = json.loads(posting)
    assert data["kind"] == "payment_rejected"
    assert data["order_id"] == "BTXH2611-000009"
    assert "U+0001" in data["reason"]["text"]


def test_a_missing_xsd_blocks_the_batch_without_blaming_the_orders(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of the installation rejects no order: the group waits, in received."""
    gateway = build_gateway(settings)
    gateway.intake.handle([Msg(json.dumps(order(), ensure_ascii=False).encode())])
    empty = tmp_path / "no-schemas"
    empty.mkdir()
    monkeypatch.setenv("GATEWAY_SCHEMAS_DIR", str(empty))
    time.sleep(settings.batch_quiet_seconds + 0.1)
    assert gateway.batcher.tick() == 0
    assert gateway.db.query("SELECT state FROM orders") == [("received",)]
    assert gateway.db.query("SELECT COUNT(*) FROM outbox") == [(0,)]
