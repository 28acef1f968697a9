"""The outbox relay's two ways, on the in-memory storage: by the row locks of one unit of work
(PostgreSQL's way: taken, published and marked in one unit), and by holds in the process, where
every relay runs in one (SQLite's way: read, held in memory while published, marked in a unit).
Each test runs both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.errors import TransientError
from gateway.service.ports import OutboxMessage
from gateway.service.relay import RelayService
from tests.contract.values import draining, run_threads
from tests.doubles import ConfirmingBroker

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


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
    broker = ConfirmingBroker()
    relay = RelayService(storage, broker, clock=lambda: NOW, batch=5)
    assert [relay.drain(), relay.drain(), relay.drain()] == [5, 2, 0]
    assert broker.published == [f"p{n}" for n in range(7)]
    assert storage.queries.outbox_pending() == (0, None)


def test_a_failure_midway_keeps_what_the_broker_confirmed(locks: bool) -> None:
    """The client fails after three messages: those three are marked sent before the error
    goes on; the other two are pending and free at once: another relay sends them once."""
    storage = _storage(5, locks)
    broker = ConfirmingBroker(breaks_at=3)
    relay = RelayService(storage, broker, clock=lambda: NOW, batch=10)
    with pytest.raises(RuntimeError, match="client failed"):
        relay.drain()
    assert storage.queries.outbox_pending() == (2, NOW)
    relay = RelayService(storage, ConfirmingBroker(), clock=lambda: NOW, batch=10, owner="relay-b")
    assert relay.drain() == 2
    assert storage.queries.outbox_pending() == (0, None)


def test_a_broker_gone_midway_is_logged_and_the_rest_waits(locks: bool) -> None:
    """A transient failure (the broker went away) does not raise: what was confirmed is
    marked, the rest waits for the next drain."""
    storage = _storage(4, locks)
    relay = RelayService(
        storage,
        ConfirmingBroker(breaks_at=1, error=TransientError("broker gone")),
        clock=lambda: NOW,
    )
    assert relay.drain() == 1
    assert storage.queries.outbox_pending() == (3, NOW)


def test_relays_of_one_process_never_share_a_message() -> None:
    """Holds: three relays of one process drain at once, each publishing slowly; every
    message is published by exactly one of them, and all are marked."""
    storage = _storage(300, locks=False)
    brokers = [ConfirmingBroker(pause=0.001) for _ in range(3)]
    relays = [
        RelayService(storage, broker, clock=lambda: NOW, batch=7, owner=f"relay-{n}")
        for n, broker in enumerate(brokers)
    ]
    sent = run_threads([draining(relay) for relay in relays])
    assert all(isinstance(count, int) for count in sent), sent
    published = [message_id for broker in brokers for message_id in broker.published]
    assert sorted(published) == sorted(f"p{n}" for n in range(300))
    assert all(broker.published for broker in brokers)  # they did drain side by side
    assert storage.queries.outbox_pending() == (0, None)
