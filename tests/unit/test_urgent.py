"""The urgent lane: an order with `priority: urgent` leaves at once, alone in its file."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gateway.bootstrap import urgent_lane
from gateway.config import Settings
from gateway.iso20022.pain001 import read_pain001
from gateway.iso20022.xml import parse_xml
from gateway.service.channels import PRIORITY_HEADER, TO_BANK_EXCHANGE
from gateway.service.intake import IntakeService, group_key
from tests.doubles import Msg
from tests.unit.test_batcher import in_memory, outbox_bodies
from tests.unit.test_intake import order


def _msgs(*orders: dict[str, Any]) -> list[Msg]:
    return [Msg(json.dumps(o, ensure_ascii=False).encode()) for o in orders]


def _batch(n: int, **changes: Any) -> dict[str, Any]:
    return order(order_id=f"RUN-{n:04d}", batch_ref="BTXH-RUN", **changes)


def _files(storage: Any) -> list[list[str]]:
    """The EndToEndIds of each file in the outbox, oldest file first."""
    return [
        [t.end_to_end_id for t in read_pain001(parse_xml(body)).transfers]
        for body in outbox_bodies(storage, TO_BANK_EXCHANGE)
    ]


def test_an_urgent_order_has_a_group_of_its_own(settings: Settings) -> None:
    """Its group key names the order itself, whatever batch_ref or category it shares with
    normal orders; a normal order keeps its batch's key."""
    gateway, storage = in_memory(settings)
    gateway.intake.handle(_msgs(_batch(1), _batch(2, priority="urgent"), _batch(3)))
    keys = {o.order_id: o.group_key for o in storage.snapshot().orders.values()}
    assert keys["RUN-0001"] == keys["RUN-0003"]
    assert keys["RUN-0002"] != keys["RUN-0001"]
    assert keys["RUN-0002"].endswith("|urgent:RUN-0002")
    normal = {k: v for k, v in _batch(1).items() if k != "priority"}
    assert "priority" not in normal  # an order without the field is a normal one


def test_intake_hands_over_only_new_urgent_orders_once_committed(settings: Settings) -> None:
    """The urgent lane is told the group of each new urgent order after the commit (the order
    is visible to readers by then); normal orders and a redelivered urgent order are not."""
    _, storage = in_memory(settings)
    told: list[tuple[str, str, bool]] = []

    def lane(groups: Sequence[tuple[str, str]]) -> None:
        told.extend(
            (p, k, storage.queries.order(k.rsplit(":", 1)[1]) is not None) for p, k in groups
        )

    intake = IntakeService(storage, settings, on_urgent=lane)
    urgent = _batch(2, priority="urgent")
    intake.handle(_msgs(_batch(1), urgent))
    intake.handle(_msgs(urgent))  # the core resends it
    [(partner, key, committed)] = told
    assert partner == "agribank" and key.endswith("|urgent:RUN-0002") and committed


def test_an_urgent_order_leaves_without_waiting_for_its_batch(settings: Settings) -> None:
    """With batches cut only after an hour's quiet, the batcher's tick builds nothing, while
    cutting the urgent group builds a file at once, carrying the urgent order alone."""
    gateway, storage = in_memory(replace(settings, batch_quiet_seconds=3600))
    keys: list[tuple[str, str]] = []
    intake = IntakeService(storage, gateway.settings, on_urgent=keys.extend)
    intake.handle(_msgs(_batch(1), _batch(2, priority="urgent"), _batch(3)))
    assert gateway.batcher.tick() == 0
    assert gateway.batcher.cut_now(keys) == 1
    assert gateway.batcher.cut_now(keys) == 0  # cut once
    assert _files(storage) == [["RUN-0002"]]
    states = {o.order_id: o.state.value for o in storage.snapshot().orders.values()}
    assert states == {"RUN-0001": "received", "RUN-0002": "batched", "RUN-0003": "received"}


class _Bank:
    """A publisher standing for the broker: records what it was given, confirms it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def publish(self, exchange: str, routing_key: str, body: bytes, **_: Any) -> None:
        self.sent.append((exchange, routing_key))

    def keepalive(self) -> None:
        """Nothing to keep alive."""


def test_the_urgent_lane_cuts_and_sends_as_soon_as_intake_commits(settings: Settings) -> None:
    """The gateway's urgent-lane worker builds the urgent order's file and sends it (marked
    sent on its confirm) while the batch it arrived with keeps waiting for its quiet time."""
    gateway, storage = in_memory(replace(settings, batch_quiet_seconds=3600))
    bank = _Bank()
    stop = threading.Event()
    worker = threading.Thread(target=urgent_lane(gateway, bank), args=(stop,), daemon=True)
    worker.start()
    try:
        gateway.intake.handle(_msgs(_batch(1), _batch(2, priority="urgent")))
        deadline = time.monotonic() + 10
        while not bank.sent and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(5)
    assert _files(storage) == [["RUN-0002"]]
    assert bank.sent == [(TO_BANK_EXCHANGE, "agribank")]
    states = {o.order_id: o.state.value for o in storage.snapshot().orders.values()}
    assert states == {"RUN-0001": "received", "RUN-0002": "sent"}
    assert gateway.batcher.tick() == 0  # the batch still waits


def test_group_key_of_an_urgent_order(settings: Settings) -> None:
    """group_key gives an urgent order a key ending in its own id, under its partner."""
    from gateway.domain.orders import order_from_payload  # noqa: PLC0415

    urgent = order_from_payload(_batch(9, priority="urgent"))
    assert group_key("agribank", urgent).startswith("agribank|")
    assert group_key("agribank", urgent).endswith("|urgent:RUN-0009")


def test_the_urgent_lane_sends_only_urgent_files(settings: Settings) -> None:
    """A bulk file already waiting in the outbox is left to the relay: the urgent lane sends
    the urgent order's file (headed `priority: urgent`) and nothing else."""
    gateway, storage = in_memory(replace(settings, batch_quiet_seconds=3600))
    gateway.intake.handle(_msgs(_batch(1), _batch(3)))
    [bulk] = {o.group_key for o in storage.snapshot().orders.values()}
    assert gateway.batcher.cut_now([("agribank", bulk)]) == 1  # the bulk file, pending
    bank = _Bank()
    stop = threading.Event()
    worker = threading.Thread(target=urgent_lane(gateway, bank), args=(stop,), daemon=True)
    worker.start()
    try:
        gateway.intake.handle(_msgs(_batch(2, priority="urgent")))
        deadline = time.monotonic() + 10
        while not bank.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # time enough to send a second file, if it would
    finally:
        stop.set()
        worker.join(5)
    assert bank.sent == [(TO_BANK_EXCHANGE, "agribank")]
    headers = {
        row.message.headers["msg_id"]: row.message.headers.get(PRIORITY_HEADER)
        for row in storage.snapshot().outbox.values()
    }
    assert sorted(headers.values(), key=str) == [None, "urgent"]
    states = {o.order_id: o.state.value for o in storage.snapshot().orders.values()}
    assert states == {"RUN-0001": "batched", "RUN-0002": "sent", "RUN-0003": "batched"}


def test_urgent_orders_arriving_together_are_cut_together_each_in_its_file(
    settings: Settings,
) -> None:
    """Three urgent orders handed over at once are claimed and written in one transaction
    each way, every one in a file of its own, once; the batch they came with keeps waiting."""
    gateway, storage = in_memory(replace(settings, batch_quiet_seconds=3600))
    keys: list[tuple[str, str]] = []
    intake = IntakeService(storage, gateway.settings, on_urgent=keys.extend)
    urgent = [_batch(n, priority="urgent") for n in (2, 3, 4)]
    intake.handle(_msgs(_batch(1), *urgent))
    assert len(keys) == 3
    assert gateway.batcher.cut_urgent(keys) == 3
    assert gateway.batcher.cut_urgent(keys) == 0  # cut once
    assert sorted(_files(storage)) == [["RUN-0002"], ["RUN-0003"], ["RUN-0004"]]
    states = {o.order_id: o.state.value for o in storage.snapshot().orders.values()}
    assert states == {"RUN-0001": "received"} | {f"RUN-000{n}": "batched" for n in (2, 3, 4)}
    assert storage.snapshot().work_claims == {}  # every group let go


def test_an_urgent_order_the_file_cannot_carry_is_rejected_the_others_leave(
    settings: Settings,
) -> None:
    """One urgent order its file cannot carry (a control character stored past intake) is cut
    alone and rejected with its posting; the urgent orders handed over with it leave."""
    from gateway.domain.orders import order_from_payload  # noqa: PLC0415
    from tests.unit.test_batcher import stored_directly  # noqa: PLC0415

    gateway, storage = in_memory(replace(settings, batch_quiet_seconds=3600))
    keys: list[tuple[str, str]] = []
    intake = IntakeService(storage, gateway.settings, on_urgent=keys.extend)
    intake.handle(_msgs(_batch(2, priority="urgent"), _batch(3, priority="urgent")))
    bad = _batch(9, priority="urgent")
    bad["creditor"] = {**bad["creditor"], "name": "Lê Văn\u0001 Tám"}
    bad_key = group_key("agribank", order_from_payload(_batch(9, priority="urgent")))
    stored_directly(gateway.storage, bad, "agribank", bad_key)
    assert gateway.batcher.cut_urgent([*keys, ("agribank", bad_key)]) == 2
    assert sorted(_files(storage)) == [["RUN-0002"], ["RUN-0003"]]
    states = {o.order_id: o.state.value for o in storage.snapshot().orders.values()}
    assert states == {"RUN-0002": "batched", "RUN-0003": "batched", "RUN-0009": "rejected"}
    assert storage.snapshot().work_claims == {}
