"""Faults of handling on a real broker: retried later through <queue>.retry, parked with a reason;
queues of an older shape upgraded; overdue files flagged to admins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pika
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gateway.adapters import topology
from gateway.adapters.prometheus_state import StateCollector
from gateway.adapters.rabbitmq import (
    PARKED_REASON_HEADER,
    RETRIES_HEADER,
    Delivery,
    Publisher,
    RetryPolicy,
    connect,
    consume,
)
from gateway.banksim.bank import AccountBook
from gateway.banksim.wiring import build_bank
from gateway.bootstrap import build_gateway, open_database
from gateway.config import Settings
from gateway.demo.month import generate_month
from gateway.errors import ConfigError, PermanentError, TransientError
from gateway.service.clock import utcnow
from gateway.service.deadlines import DeadlineWatch
from gateway.service.overview import overview
from gateway.service.ports import OutboundFile
from gateway.service.relay import RelayService
from tests.doubles import FakeClock, Msg, pass_quiet_time

pytestmark = pytest.mark.broker

QUEUE = "gateway.test.faults"
EXCHANGE = "gateway.test.faults"


@pytest.fixture
def channel(broker_url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A channel with a fresh test queue (and its parking and retry queues)."""
    conn = connect(broker_url)
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, "direct", durable=True)
    for name in (QUEUE, topology.parking_queue(QUEUE), topology.retry_queue(QUEUE)):
        ch.queue_delete(name)
    topology.declare_queue(ch, QUEUE, EXCHANGE, ["k"], delivery_limit=5)
    yield ch
    for name in (QUEUE, topology.parking_queue(QUEUE), topology.retry_queue(QUEUE)):
        ch.queue_delete(name)
    conn.close()


def _publish(url: str, *bodies: bytes) -> None:
    publisher = Publisher(url)
    try:
        for n, body in enumerate(bodies):
            publisher.publish(EXCHANGE, "k", body, message_id=f"m{n}")
    finally:
        publisher.close()


def _consume_until(
    url: str, handler: Callable[[Sequence[Delivery]], object], done: Callable[[], bool]
) -> None:
    stop = threading.Event()
    policy = RetryPolicy(first_delay=0.2, max_delay=0.4, limit=2)
    worker = threading.Thread(
        target=consume,
        args=(url, QUEUE, handler, stop),
        kwargs={"prefetch": 10, "chunk": 1, "retry": policy},
    )
    worker.start()
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join(10)


def _parked(ch: pika.adapters.blocking_connection.BlockingChannel) -> list[tuple[bytes, dict]]:  # type: ignore[type-arg]
    out = []
    while True:
        method, props, body = ch.basic_get(topology.parking_queue(QUEUE), auto_ack=True)
        if method is None:
            return out
        out.append((body, dict(props.headers or {})))


def test_a_transient_fault_is_retried_later_through_the_retry_queue(
    broker_url: str, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    """The message leaves the queue, waits in <queue>.retry and comes back; then it is handled."""
    seen: list[int] = []

    def handler(messages: Sequence[Delivery]) -> None:
        seen.append(int(messages[0].headers.get(RETRIES_HEADER, 0)))
        if len(seen) == 1:
            raise TransientError("database busy")

    _publish(broker_url, b"order")
    _consume_until(broker_url, handler, lambda: len(seen) >= 2)
    assert seen == [0, 1]
    assert _parked(channel) == []


def test_a_fault_that_does_not_pass_parks_the_message_with_its_reason(
    broker_url: str, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    """After the retry limit the message is parked, saying how often and why it failed."""
    calls: list[int] = []

    def handler(messages: Sequence[Delivery]) -> None:
        calls.append(1)
        raise TransientError("disk full")

    _publish(broker_url, b"order")
    _consume_until(broker_url, handler, lambda: len(calls) >= 3)
    time.sleep(0.3)
    [(body, headers)] = _parked(channel)
    assert body == b"order"
    assert headers[PARKED_REASON_HEADER] == "still failing after 2 retries: disk full"


def test_a_permanent_fault_parks_only_the_bad_message(
    broker_url: str, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    """A chunk with one message that cannot be handled: that one is parked, the others pass."""
    handled: list[bytes] = []

    def handler(messages: Sequence[Delivery]) -> None:
        if any(m.body == b"bad" for m in messages):
            raise PermanentError("payload names no partner")
        handled.extend(m.body for m in messages)

    _publish(broker_url, b"good-1", b"bad", b"good-2")
    _consume_until(broker_url, handler, lambda: len(handled) >= 2)
    time.sleep(0.3)
    assert sorted(handled) == [b"good-1", b"good-2"]
    [(body, headers)] = _parked(channel)
    assert body == b"bad"
    assert headers[PARKED_REASON_HEADER] == "payload names no partner"


def test_an_empty_queue_of_an_older_shape_is_upgraded(broker_url: str, settings: Settings) -> None:
    """A queue declared without the safe dead-lettering is replaced when empty, named when not."""
    conn = connect(broker_url)
    try:
        ch = conn.channel()
        name = topology.ADMIN_QUEUE
        ch.queue_delete(name)
        ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        topology.declare_on(conn, settings.partners, settings.delivery_limit)
        ch = conn.channel()
        ch.queue_delete(name)
        ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        ch.basic_publish("", name, b"kept")
        with pytest.raises(ConfigError, match=f"queue {name} .* holds 1 message"):
            topology.declare_on(conn, settings.partners, settings.delivery_limit)
        ch = conn.channel()
        ch.queue_delete(name)
        topology.declare_on(conn, settings.partners, settings.delivery_limit)
    finally:
        conn.close()


def test_an_overdue_file_is_flagged_once_in_logs_status_and_on_the_broker(
    broker_url: str, settings: Settings
) -> None:
    """A file sent longer ago than its partner's deadline: one admin event, counted in status."""
    conn = connect(broker_url)
    ch = conn.channel()
    topology.declare_on(conn, settings.partners, settings.delivery_limit)
    ch.queue_purge(topology.ADMIN_QUEUE)
    storage = open_database(settings)
    now = utcnow()
    deadline = settings.partners["agribank"].status_deadline_minutes
    with storage.unit_of_work() as uow:
        for msg_id, minutes in (("KBNN-OLD", deadline + 5), ("KBNN-NEW", 1)):
            uow.files.add(
                OutboundFile(
                    msg_id=msg_id,
                    partner="agribank",
                    message_type="pain.001.001.09",
                    nb_of_txs=1,
                    ctrl_sum=Decimal(1),
                    sha256="x",
                ),
                now,
            )
            uow.files.sent(msg_id, now - timedelta(minutes=minutes))
    watch = DeadlineWatch(storage, replace(settings), clock=lambda: now)
    assert watch.tick() == 1
    assert watch.tick() == 0
    assert overview(storage.queries, settings, now)["overdue_files"] == ["KBNN-OLD"]
    publisher = Publisher(broker_url)
    try:
        assert RelayService(storage, publisher).drain() == 1
    finally:
        publisher.close()
    method, _, body = ch.basic_get(topology.ADMIN_QUEUE, auto_ack=True)
    conn.close()
    assert method is not None and method.routing_key == "admin.file_overdue"
    event = json.loads(body)
    assert (event["msg_id"], event["partner"], event["deadline_minutes"]) == (
        "KBNN-OLD",
        "agribank",
        deadline,
    )


def test_a_late_report_clears_the_overdue_flag_once(
    broker_url: str, settings: Settings, tmp_path: Path
) -> None:
    """Flagged, then the bank's pain.002 arrives: one cleared event (log and broker), the file
    leaves the overdue list and gauge; the report again clears nothing more."""
    conn = connect(broker_url)
    ch = conn.channel()
    topology.declare_on(conn, settings.partners, settings.delivery_limit)
    ch.queue_purge(topology.ADMIN_QUEUE)
    gateway = build_gateway(settings, clock=FakeClock())
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    social = [
        o for o in generate_month(beneficiaries=2).orders if o["category"] == "social_benefit"
    ]
    gateway.intake.handle([Msg(json.dumps(o, ensure_ascii=False).encode()) for o in social])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(row, msg_id, body)] = gateway.storage.query(
        "SELECT o.id, f.msg_id, o.body FROM outbox o JOIN files f ON o.message_id = f.msg_id"
    )
    now = utcnow()
    with gateway.storage.unit_of_work() as uow:  # as the file relay does once the bank has it
        uow.outbox.mark_sent([row], now)
        uow.files.sent(msg_id, now)
    later = now + timedelta(minutes=settings.partners["agribank"].status_deadline_minutes + 5)
    watch = DeadlineWatch(gateway.storage, settings, clock=lambda: later)
    assert watch.tick() == 1
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        StateCollector(gateway.storage.queries, settings, clock=lambda: later, max_age=0.0)
    )
    assert overview(gateway.storage.queries, settings, later)["overdue_files"] == [msg_id]
    assert registry.get_sample_value("kbnn_gateway_files_overdue") == 1

    [status, *_] = bank.receive(bytes(body))
    assert status[1] == "pain.002"
    with capture_logs() as logs:
        assert gateway.inbound.apply("agribank", status[2]) == "applied"
        assert gateway.inbound.apply("agribank", status[2]) == "duplicate"
    cleared = [e for e in logs if e["event"] == "file.overdue_cleared"]
    assert [(e["msg_id"], e["partner"]) for e in cleared] == [(msg_id, "agribank")]
    seen = overview(gateway.storage.queries, settings, later)
    assert (seen["files_overdue"], seen["overdue_files"]) == (0, [])
    assert registry.get_sample_value("kbnn_gateway_files_overdue") == 0
    assert watch.tick() == 0

    publisher = Publisher(broker_url)
    try:
        assert RelayService(gateway.storage, publisher).drain() == 2
    finally:
        publisher.close()
    events = []
    while (got := ch.basic_get(topology.ADMIN_QUEUE, auto_ack=True))[0] is not None:
        method, _, payload = got
        assert method is not None
        events.append((method.routing_key, json.loads(payload)))
    conn.close()
    assert [key for key, _ in events] == ["admin.file_overdue", "admin.file_overdue_cleared"]
    flagged, done = events[0][1], events[1][1]
    assert (done["msg_id"], done["partner"], done["flagged_at"]) == (
        msg_id,
        "agribank",
        flagged["flagged_at"],
    )
