"""Pipelined publisher confirms on a real broker: every message is settled once, by its own
confirm, and the relay marks only the confirmed rows."""

from __future__ import annotations

import pytest

from gateway.adapters import topology
from gateway.adapters.confirms import PipelinedPublisher
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.rabbitmq import connect
from gateway.config import Settings
from gateway.errors import PermanentError
from gateway.service.clock import utcnow
from gateway.service.ports import OutboxMessage
from gateway.service.relay import RelayService

pytestmark = pytest.mark.broker

QUEUE = "gateway.test.confirms"
EXCHANGE = "gateway.test.confirms"


@pytest.fixture
def queue(broker_url: str) -> str:
    """A fresh quorum queue bound to a test exchange under key `k`."""
    conn = connect(broker_url)
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, "direct", durable=True)
    ch.queue_delete(QUEUE)
    ch.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind(QUEUE, EXCHANGE, routing_key="k")
    conn.close()
    return QUEUE


def _depth(url: str, queue: str) -> int:
    conn = connect(url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def test_many_messages_in_flight_are_each_confirmed_once(broker_url: str, queue: str) -> None:
    """3,000 messages through a window of 200: every token comes back confirmed, exactly once,
    and the queue holds them all."""
    publisher = PipelinedPublisher(broker_url, window=200)
    try:
        for n in range(3000):
            publisher.submit(EXCHANGE, "k", b"x%d" % n, message_id=f"m{n}", token=n)
            assert publisher.outstanding <= 200
        settled = publisher.flush()
    finally:
        publisher.close()
    assert sorted(settled.confirmed) == list(range(3000))
    assert (settled.unroutable, settled.failed) == ([], [])
    assert _depth(broker_url, queue) == 3000


def test_a_flush_through_a_count_waits_for_those_messages_alone(
    broker_url: str, queue: str
) -> None:
    """`flush(through=handed)` returns once every message handed over until then is settled,
    the ones handed over after still in flight or settled; the next flush has the rest: each
    token comes back once, across the two."""
    publisher = PipelinedPublisher(broker_url, window=500)
    try:
        for n in range(300):
            publisher.submit(EXCHANGE, "k", b"a%d" % n, message_id=f"a{n}", token=n)
        through = publisher.handed
        for n in range(300, 600):
            publisher.submit(EXCHANGE, "k", b"b%d" % n, message_id=f"b{n}", token=n)
        first = publisher.flush(through=through)
        assert publisher.handed == 600
        second = publisher.flush()
    finally:
        publisher.close()
    assert set(range(300)) <= set(first.confirmed)  # all of the first 300, maybe more
    assert sorted(first.confirmed + second.confirmed) == list(range(600))
    assert len(first.latencies) == len(first.confirmed)


def test_an_unroutable_message_is_told_apart_from_its_confirmed_neighbours(
    broker_url: str, queue: str
) -> None:
    """A `mandatory` message no queue takes is reported unroutable even though the broker acks
    it; the messages around it are confirmed."""
    publisher = PipelinedPublisher(broker_url, window=50)
    try:
        publisher.submit(EXCHANGE, "k", b"a", message_id="a", token="a")
        publisher.submit(EXCHANGE, "nowhere", b"b", message_id="b", token="b")
        publisher.submit(EXCHANGE, "k", b"c", message_id="c", token="c")
        settled = publisher.flush()
        with pytest.raises(PermanentError, match="no queue"):
            publisher.publish(EXCHANGE, "nowhere", b"d", message_id="d")
        publisher.publish(EXCHANGE, "k", b"e", message_id="e")  # the channel still works
    finally:
        publisher.close()
    assert sorted(str(t) for t in settled.confirmed) == ["a", "c"]
    assert [token for token, _ in settled.unroutable] == ["b"]
    assert "no queue" in settled.unroutable[0][1]
    assert _depth(broker_url, queue) == 3


def test_messages_whose_channel_is_lost_are_failed_not_confirmed(
    broker_url: str, queue: str
) -> None:
    """Publishing to an exchange that does not exist makes the broker close the channel: the
    messages awaiting their confirm on it are reported failed (to be sent again), none
    confirmed, and the next message goes out on a new channel."""
    publisher = PipelinedPublisher(broker_url, window=50)
    try:
        publisher.submit("gateway.test.no-such-exchange", "k", b"x", message_id="x", token="x")
        settled = publisher.flush()
        assert settled.confirmed == []
        assert [token for token, _ in settled.failed] == ["x"]
        publisher.publish(EXCHANGE, "k", b"y", message_id="y")
    finally:
        publisher.close()
    assert _depth(broker_url, queue) == 1


def test_the_relay_marks_only_what_the_broker_confirmed(
    settings: Settings, broker_url: str
) -> None:
    """Through the pipelined publisher, the relay marks the routable messages sent and parks the
    unroutable one with its reason, in one drain."""
    conn = connect(broker_url)
    channel = conn.channel()
    topology.declare(channel, ["agribank"], 5)
    channel.queue_purge(topology.LEDGER_QUEUE)
    storage = SqliteStorage(settings.db_file)
    now = utcnow()
    with storage.unit_of_work() as uow:
        for n in range(120):
            message = OutboxMessage(
                f"p{n}", topology.LEDGER_EXCHANGE, "posting.payment_settled", b"{}", {}
            )
            uow.outbox.enqueue(message, now)
        uow.outbox.enqueue(
            OutboxMessage("m-lost", topology.TO_BANK_EXCHANGE, "nobank", b"<x/>", {}), now
        )
    publisher = PipelinedPublisher(broker_url, window=16)
    try:
        relay = RelayService(storage, publisher, batch=500)
        assert relay.drain() == 120
        assert relay.drain() == 0
    finally:
        publisher.close()
    [(sent, parked)] = storage.query(
        "SELECT SUM(sent_at IS NOT NULL), SUM(parked_at IS NOT NULL) FROM outbox"
    )
    assert (sent, parked) == (120, 1)
    [(why,)] = storage.query("SELECT parked_why FROM outbox WHERE message_id = 'm-lost'")
    assert "no queue" in why
    depth = channel.queue_declare(topology.LEDGER_QUEUE, passive=True).method.message_count
    conn.close()
    assert depth == 120
