"""High availability on a real three-node cluster (scripts/broker cluster): a node is lost
while the gateway consumes and publishes, a queue's leader moves; nothing confirmed is lost.

Each test uses queues of its own, declared as the gateway declares its queues on a cluster
(quorum, three members), and leaves every node running.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence

import pika.exceptions
import pytest

from gateway.adapters import topology
from gateway.adapters.amqp_connect import LINKS, connect
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.rabbitmq import Delivery, Publisher, consume
from gateway.config import Settings
from gateway.errors import TransientError
from gateway.service.clock import utcnow
from gateway.service.ports import OutboxMessage
from gateway.service.relay import RelayService
from tests.cluster import Cluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def queue(cluster: Cluster) -> Iterator[str]:
    """A quorum queue of three members bound to an exchange of the same name (key `k`)."""
    name = f"ha-{uuid.uuid4().hex[:8]}"
    conn = connect(cluster.url)
    channel = conn.channel()
    channel.exchange_declare(name, "direct", durable=True)
    topology.declare_queue(channel, name, name, ["k"], delivery_limit=5, group_size=3)
    conn.close()
    yield name
    cluster.heal()
    conn = connect(cluster.url)
    channel = conn.channel()
    for each in (name, topology.retry_queue(name), topology.parking_queue(name)):
        channel.queue_delete(each)
    channel.exchange_delete(name)
    conn.close()


class Collector:
    """A consumer's handler: the message ids it was given (redeliveries counted once)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.deliveries = 0
        self._lock = threading.Lock()

    def __call__(self, messages: Sequence[Delivery]) -> None:
        with self._lock:
            self.deliveries += len(messages)
            self.ids.update(m.message_id or "" for m in messages)

    def has(self, ids: set[str]) -> bool:
        with self._lock:
            return ids <= self.ids


def publish(publisher: Publisher, exchange: str, ids: list[str]) -> None:
    """Publish each id, confirmed; a publish refused while the cluster fails over is retried."""
    for message_id in ids:
        for _ in range(60):
            try:
                publisher.publish(exchange, "k", b"{}", message_id=message_id)
                break
            except TransientError:
                threading.Event().wait(0.5)
        else:
            raise AssertionError(f"{message_id} never confirmed")


def drained(cluster: Cluster, queue: str) -> set[str]:
    """Take every message left in the queue; their ids.

    A node let go after being cut off may restart its broker to rejoin the cluster (RabbitMQ's
    partition handling), closing the connections it had: the rest is taken through a new one.
    Each message is acked once its id is noted: one in transit on a connection closed that way
    comes again (with `auto_ack` it was lost in transit once in a run).
    """
    ids: set[str] = set()
    for _ in range(30):
        try:
            conn = connect(cluster.url)
        except TransientError:
            threading.Event().wait(1.0)
            continue
        try:
            channel = conn.channel()
            while True:
                method, props, _ = channel.basic_get(queue)
                if method is None:
                    return ids
                ids.add(props.message_id)
                channel.basic_ack(method.delivery_tag)
        except pika.exceptions.AMQPError:
            threading.Event().wait(1.0)
        finally:
            if conn.is_open:
                conn.close()
    raise AssertionError(f"the queue {queue} could not be drained: no node kept a connection")


def test_the_consumer_follows_the_queue_to_another_node_when_its_node_is_killed(
    cluster: Cluster, queue: str
) -> None:
    """The node a consumer is on dies: it reconnects to a survivor, resumes consuming, and every
    confirmed message is handled (those not acked on the lost connection come again)."""
    worker = f"consumer-{queue}"
    seen = Collector()
    stop = threading.Event()
    thread = threading.Thread(
        target=consume,
        args=(cluster.url, queue, seen, stop),
        kwargs={"prefetch": 20, "chunk": 5, "name": worker},
        daemon=True,
    )
    thread.start()
    publisher = Publisher(cluster.url, worker=f"publisher-{queue}")
    try:
        first = [f"a-{n}" for n in range(100)]
        publish(publisher, queue, first)
        assert wait_for(lambda: seen.has(set(first)), 60), "consumed before the failure"
        node = LINKS.last_node(worker)
        assert node is not None
        killed = cluster.index(node)
        cluster.kill(killed)
        second = [f"b-{n}" for n in range(100)]
        publish(publisher, queue, second)
        assert wait_for(lambda: seen.has(set(first + second)), 90), (
            f"{len(set(first + second) - seen.ids)} confirmed messages never consumed"
        )
        link = next(x for x in LINKS.snapshot() if x.worker == worker)
        assert link.failovers >= 1
        assert link.connected and link.node != node
    finally:
        stop.set()
        thread.join(30)
        publisher.close()
    assert not thread.is_alive()
    assert drained(cluster, queue) == set()


def test_the_outbox_resends_what_a_lost_node_never_confirmed(
    cluster: Cluster, queue: str, settings: Settings
) -> None:
    """The node the relay publishes to stops answering mid-drain (paused, as if cut off): the
    publish in flight is never confirmed, its row stays pending, and the next drain sends it
    through another node. Every row ends sent and every message is in the queue."""
    storage = SqliteStorage(settings.db_file)
    ids = [f"o-{n:04d}" for n in range(400)]
    now = utcnow()
    with storage.unit_of_work() as uow:
        for message_id in ids:
            uow.outbox.enqueue(OutboxMessage(message_id, queue, "k", b"{}", {}), now)
    worker = f"relay-{queue}"
    publisher = Publisher(cluster.url, worker=worker)
    relay = RelayService(storage, publisher, batch=20)
    paused: int | None = None
    try:
        assert relay.drain() == 20
        node = LINKS.last_node(worker)
        assert node is not None
        paused = cluster.index(node)
        cluster.pause(paused)
        failed_drains = 0

        def pending() -> int:
            return int(storage.query("SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0])

        while pending() and failed_drains < 50:
            if relay.drain() == 0:
                failed_drains += 1
        assert pending() == 0, "rows never confirmed"
        link = next(x for x in LINKS.snapshot() if x.worker == worker)
        assert link.failovers >= 1 and link.node != node
    finally:
        if paused is not None:
            cluster.resume(paused)
        publisher.close()
    assert drained(cluster, queue) == set(ids)
    storage.close()


def test_the_consumer_keeps_consuming_while_the_queue_leader_moves(
    cluster: Cluster, queue: str
) -> None:
    """The queue's leader is moved to another node (its member on the leader's node removed,
    then added back) while messages flow: the consumer goes on and nothing is lost."""
    seen = Collector()
    stop = threading.Event()
    thread = threading.Thread(
        target=consume,
        args=(cluster.url, queue, seen, stop),
        kwargs={"prefetch": 20, "chunk": 5, "name": f"consumer-{queue}"},
        daemon=True,
    )
    thread.start()
    publisher = Publisher(cluster.url, worker=f"publisher-{queue}")
    ids = [f"m-{n}" for n in range(300)]
    feeding = threading.Thread(target=publish, args=(publisher, queue, ids), daemon=True)
    try:
        old = cluster.leader(queue, via=1)
        old_index = next(i for i in range(1, len(cluster.urls) + 1) if cluster.node_name(i) == old)
        feeding.start()
        assert wait_for(lambda: seen.deliveries >= 50, 60), "consuming before the move"
        via = 1 if old_index != 1 else 2
        cluster.script("queues", str(via), "delete_member", queue, old)
        assert wait_for(lambda: cluster.leader(queue, via=via) not in ("", old), 30)
        new = cluster.leader(queue, via=via)
        cluster.script("queues", str(via), "add_member", queue, old)
        feeding.join(120)
        assert not feeding.is_alive()
        assert wait_for(lambda: seen.has(set(ids)), 90), (
            f"{len(set(ids) - seen.ids)} confirmed messages never consumed"
        )
        assert new != old
        status = cluster.script("queues", str(via), "quorum_status", queue)
        assert old in status and new in status  # three members again
    finally:
        stop.set()
        thread.join(30)
        publisher.close()
    assert not thread.is_alive()
