"""The console's actions on a real broker: parked messages listed, replayed and dropped from
`<queue>.parking`, a quarantined bank file handed to gateway.from-bank again, each in the audit
trail."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pika
import pytest

from gateway.adapters import topology
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.quarantine_folder import QuarantineFolder
from gateway.adapters.rabbitmq import PARKED_REASON_HEADER, connect
from gateway.bootstrap import console_actions
from gateway.config import Settings
from gateway.domain.audit import verify
from gateway.errors import GatewayError
from gateway.service.clock import utcnow

pytestmark = pytest.mark.broker

PARKED = topology.parking_queue(topology.ORDERS_QUEUE)


@pytest.fixture
def actions(settings: Settings, broker_url: str) -> Iterator[tuple[Any, SqliteStorage]]:
    """Console actions on a fresh database, with two orders parked on the broker."""
    storage = SqliteStorage(settings.db_file)
    conn = connect(broker_url)
    topology.declare_on(conn, settings.partners, settings.delivery_limit)
    ch = conn.channel()
    ch.confirm_delivery()
    for name in (topology.ORDERS_QUEUE, PARKED, topology.FROM_BANK_QUEUE):
        ch.queue_purge(name)
    for message_id, reason in (("C-1", "no partner holds the account"), ("C-2", "disk full")):
        ch.basic_publish(
            topology.PARKING_EXCHANGE,
            topology.ORDERS_QUEUE,
            json.dumps({"order_id": message_id}).encode(),
            pika.BasicProperties(
                message_id=message_id, delivery_mode=2, headers={PARKED_REASON_HEADER: reason}
            ),
            mandatory=True,
        )
    conn.close()
    try:
        yield console_actions(settings, storage), storage
    finally:
        conn = connect(broker_url)
        for name in (topology.ORDERS_QUEUE, PARKED, topology.FROM_BANK_QUEUE):
            conn.channel().queue_purge(name)
        conn.close()
        storage.close()


def depth(broker_url: str, queue: str) -> int:
    conn = connect(broker_url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def test_parked_replayed_and_dropped_from_the_broker(actions: Any, broker_url: str) -> None:
    """The console lists both with their reasons (and leaves them parked), replays one to its
    queue, drops the other with a reason; both in an intact audit trail."""
    console, storage = actions
    items, problems = console.parked()
    assert problems == []
    mine = [(i.queue, i.message_id, i.reason) for i in items if i.queue == topology.ORDERS_QUEUE]
    assert mine == [
        (topology.ORDERS_QUEUE, "C-1", "no partner holds the account"),
        (topology.ORDERS_QUEUE, "C-2", "disk full"),
    ]
    assert depth(broker_url, PARKED) == 2  # looking took nothing away
    console.replay(topology.ORDERS_QUEUE, "C-1", actor="lan")
    console.drop(topology.ORDERS_QUEUE, "C-2", "trùng lệnh", actor="lan")
    with pytest.raises(GatewayError):
        console.replay(topology.ORDERS_QUEUE, "C-9", actor="lan")
    assert depth(broker_url, PARKED) == 0
    assert depth(broker_url, topology.ORDERS_QUEUE) == 1
    rows = storage.queries.audit_trail()
    assert [(r.actor, r.via, r.action, r.subject) for r in rows] == [
        ("lan", "console", "dlq.replay", "C-1"),
        ("lan", "console", "dlq.drop", "C-2"),
    ]
    assert "trùng lệnh" in rows[1].detail_json
    assert verify(rows, storage.queries.audit_head()) is None
    kept = storage.query("SELECT action, message_id, reason FROM dlq_actions ORDER BY id")
    assert kept == [("replay", "C-1", None), ("drop", "C-2", "trùng lệnh")]


def test_quarantined_file_is_handed_to_the_bank_channel_again(
    actions: Any, broker_url: str, settings: Settings
) -> None:
    """Reprocessing publishes the kept bytes, unchanged, to gateway.from-bank for its partner."""
    console, storage = actions
    raw = b"<?xml version='1.0'?><Document>\xc4\x91 refused</Document>"
    sha = QuarantineFolder(settings.quarantine_path).keep(raw)
    with storage.unit_of_work() as uow:
        uow.inbound.quarantine(
            "agribank", sha, len(raw), "signature: unknown certificate", utcnow()
        )
    (kept,) = storage.queries.quarantined()
    console.reprocess(kept.quarantine_id, actor="lan")
    conn = connect(broker_url)
    try:
        method, props, body = conn.channel().basic_get(topology.FROM_BANK_QUEUE, auto_ack=True)
    finally:
        conn.close()
    assert method is not None and body == raw
    assert props.headers["partner"] == "agribank"
    (row,) = storage.queries.audit_trail()
    assert (row.action, row.subject) == ("quarantine.reprocess", str(kept.quarantine_id))
    with pytest.raises(GatewayError):
        console.reprocess(999, actor="lan")


@pytest.mark.slow  # waits COMMAND_WAIT seconds for the broker once
def test_parked_with_the_broker_unreachable_asks_it_once(settings: Settings) -> None:
    """No broker node answering: the first queue's problem names the wait and the reason, the
    other queues are not asked (each would wait as long again), and nothing is listed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    storage = SqliteStorage(settings.db_file)
    try:
        unreachable = replace(settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F")
        items, problems = console_actions(unreachable, storage).parked()
    finally:
        storage.close()
    assert items == []
    assert len(problems) > 1  # every queue the console lists
    assert problems[0].startswith(
        f"{topology.ORDERS_QUEUE}: no broker node accepted a connection within"
    )
    assert all(p.endswith(": not asked, the broker is unreachable") for p in problems[1:])
