"""Orders intake decoded, taken back by the batcher: used only as stored, bounded."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.bootstrap import build_gateway
from gateway.config import Settings
from gateway.domain.orders import canonical_json, order_from_payload
from gateway.iso20022.pain001 import read_pain001
from gateway.iso20022.xml import parse_xml
from gateway.service.channels import TO_BANK_EXCHANGE
from gateway.service.decoded import DecodedOrders
from tests.doubles import FakeClock, pass_quiet_time
from tests.unit.test_intake import body, order


def kept(payload: dict[str, Any]) -> tuple[str, str, Any]:
    return payload["order_id"], canonical_json(payload), order_from_payload(payload)


def test_an_order_is_taken_once_and_only_with_the_text_it_was_kept_with() -> None:
    decoded = DecodedOrders()
    first, second = order(order_id="A-1"), order(order_id="A-2")
    decoded.keep([kept(first), kept(second)])
    assert decoded.take("A-1", canonical_json(first)) == order_from_payload(first)
    assert decoded.take("A-1", canonical_json(first)) is None  # taken out
    # Other text for the same id (another instance stored other content): not used, dropped.
    assert decoded.take("A-2", canonical_json(order(order_id="A-2", amount="1"))) is None
    assert decoded.take("A-2", canonical_json(second)) is None
    assert len(decoded) == 0


def test_the_oldest_orders_go_first_beyond_the_capacity() -> None:
    decoded = DecodedOrders(capacity=2)
    payloads = [order(order_id=f"C-{n}") for n in range(3)]
    decoded.keep([kept(p) for p in payloads])
    assert len(decoded) == 2
    assert decoded.take("C-0", canonical_json(payloads[0])) is None
    assert decoded.take("C-2", canonical_json(payloads[2])) is not None


def test_services_built_alone_keep_nothing() -> None:
    decoded = DecodedOrders(capacity=0)
    payload = order()
    decoded.keep([kept(payload)])
    assert decoded.take(payload["order_id"], canonical_json(payload)) is None


def built_transfers(storage: MemoryStorage) -> dict[str, Any]:
    """The transfers of the files in the outbox, by end-to-end id."""
    rows = storage.snapshot().outbox.values()
    files = [r.message.body for r in rows if r.message.exchange == TO_BANK_EXCHANGE]
    return {t.end_to_end_id: t for body in files for t in read_pain001(parse_xml(body)).transfers}


def test_intake_leaves_its_orders_for_the_batcher_which_takes_them(settings: Settings) -> None:
    storage = MemoryStorage()
    gateway = build_gateway(settings, storage=storage, clock=FakeClock())
    payloads = [order(order_id=f"BTXH2611-00000{n}") for n in range(1, 4)]
    gateway.intake.handle([body(p) for p in payloads])
    assert len(gateway.decoded) == 3
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    assert len(gateway.decoded) == 0
    assert sorted(built_transfers(storage)) == [p["order_id"] for p in payloads]


def test_the_file_carries_the_stored_order_not_a_kept_one_with_other_text(
    settings: Settings,
) -> None:
    """An order kept with text other than the database's (a unit rolled back, another
    instance's content) is not built from: the stored text is decoded instead."""
    storage = MemoryStorage()
    gateway = build_gateway(settings, storage=storage, clock=FakeClock())
    payload = order(order_id="BTXH2611-000007")
    gateway.intake.handle([body(payload)])
    other = order(order_id="BTXH2611-000007", creditor={**payload["creditor"], "name": "Khác"})
    stale = order_from_payload(other)
    gateway.decoded.keep([("BTXH2611-000007", json.dumps(other), stale)])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [transfer] = built_transfers(storage).values()
    assert transfer.creditor_name == payload["creditor"]["name"]
    # And the kept order, had its text been the stored one, is what the file would carry.
    assert replace(stale, creditor=order_from_payload(payload).creditor) == order_from_payload(
        payload
    )
