"""The RabbitMQ adapter against a real broker: topology, confirms, acks only after the handler."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence

import pika
import pytest

from gateway.adapters import topology
from gateway.adapters.rabbitmq import Delivery, Publisher, connect, consume, take_while
from gateway.errors import PermanentError, TransientError

pytestmark = pytest.mark.broker


@pytest.fixture
def queue(broker_url: str) -> Iterator[str]:
    """A throwaway classic queue bound to a throwaway exchange under its own name."""
    name = f"test.{uuid.uuid4().hex[:8]}"
    conn = connect(broker_url)
    channel = conn.channel()
    channel.exchange_declare(name, "direct", auto_delete=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, name, routing_key="k")
    yield name
    channel.queue_delete(name)
    channel.exchange_delete(name)
    conn.close()


def depth(url: str, queue: str) -> int:
    """Messages ready in a queue."""
    conn = connect(url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def test_topology_declares_twice_without_error(broker_url: str) -> None:
    """Declaring the whole topology again with the same arguments is harmless."""
    conn = connect(broker_url)
    try:
        topology.declare(conn.channel(), ["agribank"], 5)
        topology.declare(conn.channel(), ["agribank"], 5)
        ok = conn.channel().queue_declare(topology.ORDERS_QUEUE, passive=True)
        assert ok.method.queue == topology.ORDERS_QUEUE
    finally:
        conn.close()


def test_unroutable_publish_is_refused(broker_url: str, queue: str) -> None:
    """With `mandatory`, a message no queue takes is an error, never silently dropped."""
    publisher = Publisher(broker_url)
    try:
        with pytest.raises(PermanentError, match="no queue"):
            publisher.publish(queue, "nobody-listens", b"{}", message_id="m-1")
    finally:
        publisher.close()


def test_messages_are_acked_only_after_the_handler(broker_url: str, queue: str) -> None:
    """A chunk whose handler fails transiently is redelivered; after success the queue is empty."""
    publisher = Publisher(broker_url)
    for index in range(5):
        publisher.publish(queue, "k", f"m{index}".encode(), message_id=f"m{index}")
    publisher.close()
    seen: list[bytes] = []
    failures = {"left": 1}
    stop = threading.Event()

    def handler(deliveries: Sequence[Delivery]) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise TransientError("database busy")
        seen.extend(d.body for d in deliveries)
        if len(seen) >= 5:
            stop.set()

    thread = threading.Thread(
        target=consume, args=(broker_url, queue, handler, stop), kwargs={"prefetch": 10, "chunk": 5}
    )
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert sorted(seen) == [f"m{i}".encode() for i in range(5)]
    assert depth(broker_url, queue) == 0


def test_a_poison_message_does_not_take_its_neighbours_down(broker_url: str, queue: str) -> None:
    """One message that always fails is isolated; the others in its chunk are acked once."""
    publisher = Publisher(broker_url)
    for body in (b"good-1", b"poison", b"good-2"):
        publisher.publish(queue, "k", body, message_id=body.decode())
    publisher.close()
    handled: list[bytes] = []
    stop = threading.Event()

    def handler(deliveries: Sequence[Delivery]) -> None:
        if any(d.body == b"poison" for d in deliveries):
            raise ValueError("cannot handle this one")
        handled.extend(d.body for d in deliveries)
        if len(handled) >= 2:
            stop.set()

    thread = threading.Thread(
        target=consume, args=(broker_url, queue, handler, stop), kwargs={"prefetch": 10, "chunk": 3}
    )
    thread.start()
    thread.join(20)
    assert sorted(handled) == [b"good-1", b"good-2"]
    conn = connect(broker_url)
    method, _, body = conn.channel().basic_get(queue, auto_ack=True)
    conn.close()
    assert body == b"poison"
    assert isinstance(method, pika.spec.Basic.GetOk)


def test_a_message_that_keeps_failing_is_parked(broker_url: str) -> None:
    """Past the delivery limit the quorum queue dead-letters the message into its parking queue."""
    name = f"test.quorum.{uuid.uuid4().hex[:8]}"
    conn = connect(broker_url)
    channel = conn.channel()
    channel.exchange_declare(name, "direct", auto_delete=True)
    topology.declare_queue(channel, name, name, ["k"], delivery_limit=2)
    publisher = Publisher(broker_url)
    publisher.publish(name, "k", b"always fails", message_id="poison-1")
    publisher.close()
    attempts: list[int] = []
    stop = threading.Event()

    def handler(deliveries: Sequence[Delivery]) -> None:
        attempts.append(len(deliveries))
        raise ValueError("cannot handle this one")

    thread = threading.Thread(
        target=consume, args=(broker_url, name, handler, stop), kwargs={"prefetch": 1, "chunk": 1}
    )
    thread.start()
    parked = None
    for _ in range(100):
        method, _, body = channel.basic_get(f"{name}.parking", auto_ack=True)
        if method is not None:
            parked = body
            break
        time.sleep(0.1)
    stop.set()
    thread.join(10)
    channel.queue_delete(name)
    channel.queue_delete(f"{name}.parking")
    channel.queue_delete(f"{name}.retry")
    conn.close()
    assert parked == b"always fails"
    assert len(attempts) == 3  # the first delivery and two redeliveries, then parked


@pytest.mark.slow  # waits out several heartbeats, for real
def test_a_publisher_idle_past_its_heartbeat_still_publishes(broker_url: str, queue: str) -> None:
    """A connection the broker dropped while idle is reopened; no message is lost."""
    separator = "&" if "?" in broker_url else "?"
    publisher = Publisher(f"{broker_url}{separator}heartbeat=1")
    publisher.publish(queue, "k", b"before", message_id="m-before")
    time.sleep(6)  # several missed heartbeats: the broker closes the connection
    publisher.publish(queue, "k", b"after", message_id="m-after")
    publisher.close()
    assert depth(broker_url, queue) == 2


def test_a_handler_longer_than_the_heartbeats_keeps_its_connection(
    broker_url: str, queue: str
) -> None:
    """A chunk handled for several heartbeats (a large camt.054 on a busy machine) is acked on
    its own connection: the broker does not close it, and nothing handled comes again."""
    separator = "&" if "?" in broker_url else "?"
    url = f"{broker_url}{separator}heartbeat=2"
    publisher = Publisher(broker_url)
    for index in range(3):
        publisher.publish(queue, "k", f"m{index}".encode(), message_id=f"m{index}")
    publisher.close()
    handled: list[tuple[bytes, bool]] = []
    stop = threading.Event()

    def handler(deliveries: Sequence[Delivery]) -> None:
        if not handled:
            time.sleep(7)  # without heartbeats the broker drops a connection in 4-6 s
        handled.extend((d.body, d.redelivered) for d in deliveries)
        if len(handled) >= 3:
            stop.set()

    thread = threading.Thread(
        target=consume, args=(url, queue, handler, stop), kwargs={"prefetch": 3, "chunk": 1}
    )
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert handled == [(b"m0", False), (b"m1", False), (b"m2", False)]
    assert depth(broker_url, queue) == 0


def _close_from_the_broker(url: str, link: str) -> None:
    """Have the broker close the connections named `gateway:<link>`, as when their node goes
    down (its management API, on GATEWAY_RABBIT_MGMT_PORT as `scripts/broker` starts it)."""
    parsed = urllib.parse.urlparse(url)
    port = os.environ.get("GATEWAY_RABBIT_MGMT_PORT", "15672")
    api = f"http://{parsed.hostname or '127.0.0.1'}:{port}/api/connections"
    user = urllib.parse.unquote(parsed.username or "guest")
    password = urllib.parse.unquote(parsed.password or "guest")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    names: list[str] = []
    deadline = time.monotonic() + 20  # the API lists a new connection within seconds
    while not names and time.monotonic() < deadline:
        time.sleep(0.5)
        request = urllib.request.Request(api, headers=auth)
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - test broker
            names = [
                c["name"]
                for c in json.load(answer)
                if c.get("client_properties", {}).get("connection_name") == f"gateway:{link}"
            ]
    assert names, f"no connection gateway:{link} on the broker"
    for name in names:
        request = urllib.request.Request(  # noqa: S310 - the same
            f"{api}/{urllib.parse.quote(name, safe='')}", method="DELETE", headers=auth
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - the same


def test_a_connection_lost_during_a_long_handler_is_not_acked_and_comes_again(
    broker_url: str, queue: str
) -> None:
    """The broker closes the connection while a long chunk is handled (the helper is answering
    its heartbeats): the consumer does not hang, reconnects, and the chunk, never acked, comes
    again on the new connection."""
    publisher = Publisher(broker_url)
    publisher.publish(queue, "k", b"m0", message_id="m0")
    publisher.close()
    handled: list[tuple[bytes, bool]] = []
    busy, closed, stop = threading.Event(), threading.Event(), threading.Event()
    link = f"test-lost-{uuid.uuid4().hex[:6]}"

    def handler(deliveries: Sequence[Delivery]) -> None:
        if not handled:
            busy.set()
            closed.wait(30)  # the helper is inside pika meanwhile (past its 1 s grace)
            time.sleep(1.0)
        handled.extend((d.body, d.redelivered) for d in deliveries)
        if len(handled) >= 2:
            stop.set()

    thread = threading.Thread(
        target=consume,
        args=(broker_url, queue, handler, stop),
        kwargs={"prefetch": 1, "chunk": 1, "name": link},
    )
    thread.start()
    try:
        assert busy.wait(20), "the message never reached the handler"
        time.sleep(1.5)
        _close_from_the_broker(broker_url, link)
    finally:
        closed.set()
    thread.join(30)
    assert not thread.is_alive()
    assert handled == [(b"m0", False), (b"m0", True)]
    assert depth(broker_url, queue) == 0


def test_take_while_takes_one_at_a_time_only_while_ready(broker_url: str, queue: str) -> None:
    """While `ready()` holds, deliveries are taken one by one, handled and acked; when it stops
    holding, nothing more is taken and nothing is left waiting on the connection."""
    publisher = Publisher(broker_url)
    for index in range(4):
        publisher.publish(queue, "k", f"m{index}".encode(), message_id=f"m{index}")
    publisher.close()
    seen: list[bytes] = []
    open_gate = threading.Event()
    open_gate.set()
    stop = threading.Event()

    def handler(deliveries: Sequence[Delivery]) -> None:
        assert len(deliveries) == 1
        seen.extend(d.body for d in deliveries)
        if len(seen) == 2:
            open_gate.clear()  # busy again: the two left stay in the queue

    thread = threading.Thread(
        target=take_while,
        args=(broker_url, queue, handler, stop),
        kwargs={"ready": open_gate.is_set, "name": "test-take-while", "idle": 0.05},
    )
    thread.start()
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert seen == [b"m0", b"m1"]
    assert depth(broker_url, queue) == 2  # none taken, none held unacked
    open_gate.set()
    while len(seen) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert seen == [b"m0", b"m1", b"m2", b"m3"]
    assert depth(broker_url, queue) == 0
