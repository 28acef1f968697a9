"""The metrics' state collector: exact gauges from a storage holding known rows."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.adapters.prometheus import exposition, state_registry
from gateway.adapters.prometheus_state import ParkingCollector, StateCollector
from gateway.config import Settings
from gateway.domain.states import FileState, TxState
from gateway.reasons import reason_class
from gateway.service.ports import (
    BankAnswer,
    NewOrder,
    OutboundFile,
    OutboxMessage,
    Storage,
    UnitOfWork,
    UnmatchedLine,
)

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def _order(uow: UnitOfWork, order_id: str, now: datetime) -> None:
    uow.orders.add(
        NewOrder(
            order_id=order_id,
            content_hash=f"h-{order_id}",
            payload="{}",
            partner="agribank",
            group_key="g",
            category="social_benefit",
            amount=Decimal(606000),
            currency="VND",
        ),
        now,
    )


def _file(uow: UnitOfWork, msg_id: str, sent_minutes_ago: int | None) -> datetime:
    at = NOW - timedelta(minutes=sent_minutes_ago or 0)
    uow.files.add(
        OutboundFile(
            msg_id=msg_id,
            partner="agribank",
            message_type="pain.001.001.09",
            nb_of_txs=1,
            ctrl_sum=Decimal(606000),
            sha256="0",
        ),
        at,
    )
    return at


def _outbox(uow: UnitOfWork, message_id: str, seconds_ago: int) -> None:
    uow.outbox.enqueue(
        OutboxMessage(message_id, "treasury.ledger", "posting.payment_settled", b"{}", {}),
        NOW - timedelta(seconds=seconds_ago),
    )


@pytest.fixture
def storage(settings: Settings) -> MemoryStorage:
    """A storage with known orders, files, outbox rows and bank files."""
    storage = MemoryStorage()
    deadline = settings.partners["agribank"].status_deadline_minutes
    with storage.unit_of_work() as uow:
        for n in range(7):
            _order(uow, f"O-{n}", NOW)
        uow.orders.add_invalid(subject="s1", order_id="BAD-1", raw=b"{", reason="not JSON", now=NOW)
        uow.orders.add_invalid(
            subject="s2", order_id=None, raw=b"[]", reason="not an object", now=NOW
        )
        _file(uow, "F-BUILT", None)
        late = _file(uow, "F-LATE", deadline + 5)  # sent, no report past the deadline: overdue
        recent = _file(uow, "F-RECENT", 1)
        acked = _file(uow, "F-ACK", deadline + 30)
        # Orders go where the state gauges expect them: O-0 batched (its file never sent),
        # O-1 sent, O-2 and O-3 settled, O-4 rejected, O-5 and O-6 still received.
        uow.orders.mark_batched([("O-0", "P-1")], "F-BUILT", NOW)
        uow.orders.mark_batched([("O-1", "P-1")], "F-RECENT", NOW)
        uow.orders.mark_batched([("O-2", "P-1"), ("O-3", "P-1")], "F-ACK", NOW)
        uow.files.sent("F-LATE", late)
        uow.files.sent("F-RECENT", recent)
        uow.files.sent("F-ACK", acked)
        uow.files.set_status("F-ACK", FileState.ACKNOWLEDGED, acked)
        for order_id in ("O-2", "O-3"):
            sent = uow.orders.get(order_id)
            assert sent is not None
            uow.orders.move(sent, TxState.SETTLED, BankAnswer(status_code="ACSC"), NOW)
        received = uow.orders.get("O-4")
        assert received is not None
        uow.orders.move(received, TxState.REJECTED, BankAnswer(status_code="RJCT"), NOW)
        _outbox(uow, "P-SENT", 900)
        _outbox(uow, "P-OLD", 420)  # the oldest still pending: 420 s
        _outbox(uow, "P-NEW", 5)
        _outbox(uow, "P-PARKED", 1000)
        _outbox(uow, "P-DROPPED", 1000)  # parked, then dropped by an admin: not counted
        uow.inbound.first_sight("agribank", "R-1", "pain.002", b"<a/>", NOW)
        uow.inbound.first_sight("agribank", "R-2", "pain.002", b"<b/>", NOW)
        uow.inbound.first_sight("agribank", "N-1", "camt.054", b"<c/>", NOW)
        for raw, reason in (
            (b"1", "signature value does not verify with the pinned certificate"),
            (b"2", "the ds:Signature must sit in BizMsg/AppHdr/Sgntr"),
            (b"3", "pain.002.001.10 fails its XSD: line 4: element 'Foo' is not expected"),
            (b"4", "malformed XML at line 1: StartTag: invalid element name"),
            (b"5", "file from unknown partner 'nobank'"),
        ):
            uow.inbound.quarantine(
                "agribank", hashlib.sha256(raw).hexdigest(), len(raw), reason, NOW
            )
        for ref in ("E2E-1", "E2E-2"):
            uow.inbound.unmatched(
                UnmatchedLine(
                    partner="agribank",
                    msg_id="R-1",
                    reference=ref,
                    reason="no such order",
                    detail={"status": "ACSC"},
                ),
                NOW,
            )
    with storage.unit_of_work() as uow:
        # The row ids of the outbox, as a relay gets them; every claim is given up again.
        claimed = uow.outbox.claim("test", 100, NOW, NOW + timedelta(seconds=30))
        row = {pending.message.message_id: pending.row_id for pending in claimed}
        uow.outbox.release(list(row.values()), "test")
        uow.outbox.mark_sent([row["P-SENT"]], NOW)
        uow.outbox.park(row["P-PARKED"], "no queue bound", NOW)
        uow.outbox.park(row["P-DROPPED"], "no queue bound", NOW)
        assert uow.outbox.drop("P-DROPPED", NOW)
    return storage


def _registry(storage: Storage, settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(storage.queries, settings, clock=lambda: NOW, max_age=0.0))
    return registry


def test_orders_and_files_by_state(storage: MemoryStorage, settings: Settings) -> None:
    """Every order and file state has its gauge, zero when no row is in it."""
    registry = _registry(storage, settings)

    def orders(state: str) -> float | None:
        return registry.get_sample_value("kbnn_gateway_orders", {"state": state})

    def files(state: str) -> float | None:
        return registry.get_sample_value("kbnn_gateway_files", {"state": state})

    assert orders("received") == 2
    assert orders("batched") == 1
    assert orders("sent") == 1
    assert orders("settled") == 2
    assert orders("rejected") == 1
    assert orders("invalid") == 2
    assert orders("acknowledged") == 0
    assert orders("returned") == 0
    assert files("built") == 1
    assert files("sent") == 2
    assert files("acknowledged") == 1
    assert files("rejected") == 0
    assert files("partially_rejected") == 0


def test_outbox_overdue_and_bank_reports(storage: MemoryStorage, settings: Settings) -> None:
    """Pending, oldest pending age, parked, overdue, applied, quarantined by class, unmatched."""
    registry = _registry(storage, settings)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"kbnn_gateway_{name}", labels)

    assert value("outbox_pending") == 2
    assert value("outbox_oldest_pending_age_seconds") == 420.0
    assert value("outbox_parked") == 1
    assert value("files_overdue") == 1
    assert value("bank_reports_applied_total", partner="agribank", message_type="pain.002") == 2
    assert value("bank_reports_applied_total", partner="agribank", message_type="camt.054") == 1
    quarantined = "bank_reports_quarantined"
    assert value(quarantined, partner="agribank", reason="signature") == 2
    assert value(quarantined, partner="agribank", reason="schema") == 1
    assert value(quarantined, partner="agribank", reason="malformed") == 1
    assert value(quarantined, partner="agribank", reason="unknown_partner") == 1
    assert value("bank_lines_unmatched", partner="agribank") == 2


def test_an_empty_outbox_has_no_age(settings: Settings) -> None:
    """With nothing pending the oldest pending age is 0, not a stale figure."""
    registry = _registry(MemoryStorage(), settings)
    assert registry.get_sample_value("kbnn_gateway_outbox_oldest_pending_age_seconds") == 0.0
    assert registry.get_sample_value("kbnn_gateway_orders", {"state": "received"}) == 0


def test_scrapes_within_max_age_read_the_database_once(
    storage: MemoryStorage, settings: Settings
) -> None:
    """A second scrape inside max_age is served from the first one's reading."""
    collector = StateCollector(storage.queries, settings, clock=lambda: NOW, max_age=60.0)
    first = {m.name: m.samples for m in collector.collect()}
    with storage.unit_of_work() as uow:
        _order(uow, "O-LATER", NOW)
    again = {m.name: m.samples for m in collector.collect()}
    assert again == first
    fresh = StateCollector(storage.queries, settings, clock=lambda: NOW, max_age=0.0)
    received = [
        s.value
        for m in fresh.collect()
        if m.name == "kbnn_gateway_orders"
        for s in m.samples
        if s.labels == {"state": "received"}
    ]
    assert received == [3]


def test_exposition_names_and_explains_each_metric(
    storage: MemoryStorage, settings: Settings
) -> None:
    """`gateway metrics` prints every state metric with its HELP and TYPE lines."""
    text = exposition(state_registry(storage.queries, settings))
    for name in (
        "orders",
        "files",
        "outbox_pending",
        "outbox_oldest_pending_age_seconds",
        "outbox_parked",
        "files_overdue",
        "bank_reports_quarantined",
        "bank_lines_unmatched",
    ):
        assert f"# HELP kbnn_gateway_{name} " in text
        assert f"# TYPE kbnn_gateway_{name} gauge" in text
    assert "# TYPE kbnn_gateway_bank_reports_applied_total counter" in text
    assert 'kbnn_gateway_orders{state="settled"} 2.0' in text


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("no signature: the document has no ds:Signature", "signature"),
        ("pain.002.001.12 fails its XSD: line 3: ...", "schema"),
        ("document has a DOCTYPE declaration; DTDs and entities are refused", "malformed"),
        ("document is 99999999 bytes; the limit is 52428800", "malformed"),
        ("camt.053.001.08 is not a report the gateway reads", "unsupported"),
        ("agribank reused MsgId R-1 for a different file; the first is kept", "reused_msg_id"),
        ("file from unknown partner 'x'", "unknown_partner"),
        ("<Sts> is missing", "content"),
        ("line 2: <GrpHdr> has 40000 attributes; the limit is 16 (limit max_attributes)", "limit"),
        ("the file states it was created ... (limit max_age_hours)", "limit"),
        ("fault while reading the file: MemoryError", "fault"),
    ],
)
def test_quarantine_reasons_fall_into_few_classes(reason: str, expected: str) -> None:
    """A free-text reason becomes one of a handful of label values."""
    assert reason_class(reason) == expected


def test_a_broker_that_does_not_answer_is_down_not_a_stuck_scrape(settings: Settings) -> None:
    """Nothing listens on the broker's port: broker_up is 0 and no parking figure is made up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ParkingCollector(replace(settings, amqp_url=url), timeout=1.0))
    assert registry.get_sample_value("kbnn_gateway_broker_up", {"host": "127.0.0.1"}) == 0
    assert (
        registry.get_sample_value("kbnn_gateway_parked_messages", {"queue": "gateway.orders"})
        is None
    )
