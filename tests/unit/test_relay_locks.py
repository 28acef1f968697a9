"""The outbox relay's two ways, on the in-memory storage: by the row locks of one unit of work
(PostgreSQL's way: taken, published and marked in one unit), and by holds in the process, where
every relay runs in one (SQLite's way: read, held in memory while published, marked in a unit).
Each test runs both ways."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.adapters.confirms import Confirmations
from gateway.adapters.persistence.memory import MemoryStorage
from gateway.errors import TransientError
from gateway.service.ports import OutboxMessage
from gateway.service.relay import RelayService

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class _Broker:
    """A pipelining publisher confirming what it is given, until it is told to break: at the
    `breaks_at`-th message it raises `error` (what it took before stays confirmed)."""

    def __init__(self, breaks_at: int | None = None, error: Exception | None = None) -> None:
        self.published: list[str] = []
        self._breaks_at = breaks_at
        self._error = error or RuntimeError("the broker's client failed")
        self._tokens: list[Hashable] = []

    def submit(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> None:
        if self._breaks_at is not None and len(self.published) == self._breaks_at:
            raise self._error
        self.published.append(kw["message_id"])
        self._tokens.append(kw["token"])

    def flush(self, timeout: float | None = None) -> Confirmations:
        settled = Confirmations(confirmed=list(self._tokens), latencies=[0.0] * len(self._tokens))
        self._tokens = []
        return settled

    def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> None:
        raise AssertionError("a pipelining publisher is given its messages by submit")

    def keepalive(self) -> None:
        """Nothing to keep alive."""


@pytest.fixture(params=[True, False], ids=["locks", "holds"])
def locks(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _storage(count: int, locks: bool) -> MemoryStorage:
    storage = MemoryStorage(relay_locks=locks)
    with storage.unit_of_work() as uow:
        for n in range(count):
            message = OutboxMessage(
                f"p{n}", "treasury.ledger", "posting.payment_settled", b"{}", {}
            )
            uow.outbox.enqueue(message, NOW)
    return storage


def test_messages_are_taken_published_and_marked(locks: bool) -> None:
    """Every message confirmed is marked sent; nothing is left claimed or pending."""
    storage = _storage(7, locks)
    broker = _Broker()
    relay = RelayService(storage, broker, clock=lambda: NOW, batch=5)
    assert [relay.drain(), relay.drain(), relay.drain()] == [5, 2, 0]
    assert broker.published == [f"p{n}" for n in range(7)]
    assert storage.queries.outbox_pending() == (0, None)


def test_a_failure_midway_keeps_what_the_broker_confirmed(locks: bool) -> None:
    """The client fails after three messages: those three are marked sent before the error
    goes on; the other two are pending and free at once: another relay sends them once."""
    storage = _storage(5, locks)
    broker = _Broker(breaks_at=3)
    relay = RelayService(storage, broker, clock=lambda: NOW, batch=10)
    with pytest.raises(RuntimeError, match="client failed"):
        relay.drain()
    assert storage.queries.outbox_pending() == (2, NOW)
    relay = RelayService(storage, _Broker(), clock=lambda: NOW, batch=10, owner="relay-b")
    assert relay.drain() == 2
    assert storage.queries.outbox_pending() == (0, None)


def test_a_broker_gone_midway_is_logged_and_the_rest_waits(locks: bool) -> None:
    """A transient failure (the broker went away) does not raise: what was confirmed is
    marked, the rest waits for the next drain."""
    storage = _storage(4, locks)
    relay = RelayService(
        storage, _Broker(breaks_at=1, error=TransientError("broker gone")), clock=lambda: NOW
    )
    assert relay.drain() == 1
    assert storage.queries.outbox_pending() == (3, NOW)


class _SlowBroker(_Broker):
    """Confirms what it is given, each message after a short pause (others relays run)."""

    def submit(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> None:
        time.sleep(0.001)
        super().submit(exchange, routing_key, body, **kw)


def test_relays_of_one_process_never_share_a_message() -> None:
    """Holds: three relays of one process drain at once, each publishing slowly; every
    message is published by exactly one of them, and all are marked."""
    storage = _storage(300, locks=False)
    brokers = [_SlowBroker() for _ in range(3)]
    relays = [
        RelayService(storage, broker, clock=lambda: NOW, batch=7, owner=f"relay-{n}")
        for n, broker in enumerate(brokers)
    ]

    def drain(relay: RelayService) -> None:
        while relay.drain():
            pass

    threads = [threading.Thread(target=drain, args=(relay,)) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    published = [message_id for broker in brokers for message_id in broker.published]
    assert sorted(published) == sorted(f"p{n}" for n in range(300))
    assert all(broker.published for broker in brokers)  # they did drain side by side
    assert storage.queries.outbox_pending() == (0, None)
