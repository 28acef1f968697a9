"""The outbox relays of one gateway process on SQLite: each reads its messages on a snapshot,
holds them in the process's memory while it publishes, and writes only the marks. Real SQLite
files, no broker (the brokers here confirm what they are given)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.errors import TransientError
from gateway.service.relay import RelayService
from tests.contract.values import T0, draining, message, run_threads
from tests.doubles import ConfirmingBroker


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqliteStorage]:
    store = SqliteStorage(tmp_path / "gateway.db")
    yield store
    store.close()


def _enqueue(storage: SqliteStorage, count: int) -> None:
    with storage.unit_of_work() as uow:
        for n in range(count):
            uow.outbox.enqueue(message(n), T0)


def test_three_relays_publish_each_message_once_and_write_no_claim(
    storage: SqliteStorage,
) -> None:
    """Three relays, two on the gateway's storage and one on a second storage object of the
    same file (as a tool in the process would open it), drain 300 messages at once: each is
    published by exactly one of them, every relay published some, all are marked sent, and
    no row was ever claimed."""
    _enqueue(storage, 300)
    second = SqliteStorage(storage.path, upgrade=False)
    brokers = [ConfirmingBroker(pause=0.001) for _ in range(3)]
    stores = [storage, storage, second]
    relays = [
        RelayService(store, broker, clock=lambda: T0, batch=7, owner=f"relay-{n}")
        for n, (store, broker) in enumerate(zip(stores, brokers, strict=True))
    ]

    try:
        sent = run_threads([draining(relay) for relay in relays])
    finally:
        second.close()
    assert all(isinstance(count, int) and count > 0 for count in sent), sent
    published = [message_id for broker in brokers for message_id in broker.published]
    assert sorted(published) == sorted(message(n).message_id for n in range(300))
    assert storage.query("SELECT COUNT(sent_at), COUNT(claimed_by) FROM outbox") == [(300, 0)]


def test_a_failed_mark_lets_the_messages_go_for_the_next_drain(
    storage: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit marking what the broker confirmed fails (the disk, say): the error goes on, the
    messages stay pending and are no longer held, so the next drain sends them again (the
    same ids: the ledger drops the second copy)."""
    _enqueue(storage, 5)
    broker = ConfirmingBroker()
    relay = RelayService(storage, broker, clock=lambda: T0, batch=10)
    real_unit = storage.unit_of_work

    def failing_unit() -> Any:
        raise TransientError("database commit failed: disk I/O error")

    monkeypatch.setattr(storage, "unit_of_work", failing_unit)
    with pytest.raises(TransientError, match="disk I/O"):
        relay.drain()
    monkeypatch.setattr(storage, "unit_of_work", real_unit)
    assert storage.queries.outbox_pending() == (5, T0)
    again = RelayService(storage, ConfirmingBroker(), clock=lambda: T0, batch=10, owner="relay-b")
    assert again.drain() == 5
    assert storage.queries.outbox_pending() == (0, None)
    assert len(broker.published) == 5
