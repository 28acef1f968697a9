"""The benchmark ledger's own AMQP reader against the real broker: every message whole, in
order, acked only once handed over; the broker's refusal named."""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import pika
import pytest

from gateway.adapters.rabbitmq import connect
from gateway.bench.ledger_reader import LedgerReadError, read_ledger

pytestmark = pytest.mark.broker


@pytest.fixture
def queue(broker_url: str) -> Iterator[str]:
    name = f"test.ledger.{uuid.uuid4().hex[:8]}"
    conn = connect(broker_url)
    conn.channel().queue_declare(name, durable=True)
    yield name
    conn.channel().queue_delete(name)
    conn.close()


def _publish(url: str, queue: str, bodies: list[bytes]) -> None:
    conn = connect(url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()


def _counts(url: str, queue: str) -> tuple[int, int]:
    """(ready, consumers) of a queue: what is left unacked once the reader's connection is gone."""
    conn = connect(url)
    try:
        ok = conn.channel().queue_declare(queue, passive=True).method
        return int(ok.message_count), int(ok.consumer_count)
    finally:
        conn.close()


def _read_until(url: str, queue: str, enough: int, chunk: int) -> list[list[bytes]]:
    """Chunks handed over until `enough` messages have come, then the reader stopped."""
    stop = threading.Event()
    chunks: list[list[bytes]] = []

    def handle(bodies: list[bytes]) -> None:
        chunks.append(list(bodies))
        if sum(len(c) for c in chunks) >= enough:
            stop.set()

    reader = threading.Thread(
        target=read_ledger,
        args=(url, queue, handle, stop),
        kwargs={"prefetch": 100, "chunk": chunk},
        daemon=True,
    )
    reader.start()
    reader.join(30)
    stop.set()
    reader.join(5)
    assert not reader.is_alive()
    return chunks


def test_every_message_whole_in_order_and_acked(broker_url: str, queue: str) -> None:
    """Small bodies, an empty one and one of several body frames (past the broker's 128 KiB
    frame), with Vietnamese text: each handed over as it was published, then acked."""
    bodies = [f"posting {n}: Nguyễn Thị Hương".encode() for n in range(300)]
    bodies[7] = b""
    bodies[150] = b"x" * 400_000
    _publish(broker_url, queue, bodies)

    chunks = _read_until(broker_url, queue, len(bodies), chunk=64)

    assert [body for chunk in chunks for body in chunk] == bodies
    assert max(len(chunk) for chunk in chunks) <= 64
    assert _counts(broker_url, queue) == (0, 0)


def test_what_was_not_handed_over_stays_in_the_queue(broker_url: str, queue: str) -> None:
    """Stopped after the first chunk: the rest was prefetched but not acked, and comes back."""
    _publish(broker_url, queue, [f"p{n}".encode() for n in range(200)])

    chunks = _read_until(broker_url, queue, 1, chunk=20)

    handed = sum(len(chunk) for chunk in chunks)
    assert handed >= 20
    assert _counts(broker_url, queue) == (200 - handed, 0)


def test_a_missing_queue_is_named(broker_url: str) -> None:
    with pytest.raises(LedgerReadError, match="NOT_FOUND"):
        read_ledger(
            broker_url, "test.ledger.none", lambda _: None, threading.Event(), prefetch=1, chunk=1
        )


def test_a_deleted_queue_ends_the_read_with_its_reason(broker_url: str, queue: str) -> None:
    """The broker cancels the consumer of a deleted queue (the reader asks it to say so)."""
    errors: list[Exception] = []

    def read() -> None:
        try:
            read_ledger(broker_url, queue, lambda _: None, threading.Event(), prefetch=1, chunk=1)
        except LedgerReadError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while _counts(broker_url, queue)[1] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    conn = connect(broker_url)
    conn.channel().queue_delete(queue)
    conn.close()
    reader.join(10)

    assert not reader.is_alive()
    assert [str(e) for e in errors] == ["the broker cancelled the consumer (its queue deleted?)"]


def test_a_refused_login_is_named(broker_url: str) -> None:
    parts = urllib.parse.urlsplit(broker_url.split(",", maxsplit=1)[0])
    url = parts._replace(
        netloc=f"{parts.username}:wrong-{parts.password}@{parts.hostname}:{parts.port or 5672}"
    ).geturl()
    with pytest.raises(LedgerReadError, match="403 ACCESS_REFUSED"):
        read_ledger(url, "q", lambda _: None, threading.Event(), prefetch=1, chunk=1)


def test_only_plain_amqp_is_spoken() -> None:
    with pytest.raises(LedgerReadError, match="amqps"):
        read_ledger(
            "amqps://localhost:5671/%2F",
            "q",
            lambda _: None,
            threading.Event(),
            prefetch=1,
            chunk=1,
        )
