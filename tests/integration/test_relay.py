"""The outbox relay on a real broker: confirmed messages are marked sent, unroutable ones parked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.adapters import topology
from gateway.adapters.confirms import PipelinedPublisher
from gateway.adapters.persistence.postgres import PostgresStorage
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.rabbitmq import Publisher, connect
from gateway.config import Settings
from gateway.errors import TransientError
from gateway.service.clock import utcnow
from gateway.service.ports import OutboxMessage
from gateway.service.relay import RelayService
from tests.contract.values import draining, run_threads
from tests.doubles import ConfirmingBroker

pytestmark = pytest.mark.broker


def _ledger(broker_url: str) -> tuple[Any, Any]:
    """A connection and channel to the broker, the topology declared and the ledger emptied."""
    conn = connect(broker_url)
    channel = conn.channel()
    topology.declare(channel, ["agribank"], 5)
    channel.queue_purge(topology.LEDGER_QUEUE)
    return conn, channel


def _ledger_ids(conn: Any, channel: Any) -> list[str]:
    """The message ids on the ledger queue, in its order (taken off it); the connection closed."""
    ids: list[str] = []
    while True:
        method, props, _ = channel.basic_get(topology.LEDGER_QUEUE, auto_ack=True)
        if method is None:
            break
        ids.append(props.message_id)
    conn.close()
    return ids


def _postings(storage: Any, count: int, now: Any) -> None:
    """`count` postings for the ledger in the outbox, ids p0, p1, ..."""
    with storage.unit_of_work() as uow:
        for n in range(count):
            message = OutboxMessage(
                f"p{n}", topology.LEDGER_EXCHANGE, "posting.payment_settled", b"{}", {}
            )
            uow.outbox.enqueue(message, now)


def test_unroutable_messages_are_parked_and_the_rest_go_out(
    settings: Settings, broker_url: str
) -> None:
    """A message no queue takes is set aside with its reason; the next one is still sent."""
    conn, channel = _ledger(broker_url)
    storage = SqliteStorage(settings.db_file)
    now = utcnow()
    with storage.unit_of_work() as uow:
        uow.outbox.enqueue(
            OutboxMessage("m-lost", topology.TO_BANK_EXCHANGE, "nobank", b"<x/>", {}), now
        )
        uow.outbox.enqueue(
            OutboxMessage("m-ok", topology.LEDGER_EXCHANGE, "posting.payment_settled", b"{}", {}),
            now,
        )
    publisher = Publisher(broker_url)
    relay = RelayService(storage, publisher)
    try:
        assert relay.drain() == 1
        assert relay.drain() == 0  # the parked one is not retried in a loop
    finally:
        publisher.close()
    rows = storage.query(
        "SELECT message_id, sent_at IS NOT NULL, parked_why FROM outbox ORDER BY id"
    )
    assert rows[0][0] == "m-lost" and rows[0][1] == 0 and "no queue" in rows[0][2]
    assert rows[1][:2] == ("m-ok", 1)
    method, _, body = channel.basic_get(topology.LEDGER_QUEUE, auto_ack=True)
    conn.close()
    assert method is not None and body == b"{}"


def test_on_postgresql_the_relay_holds_its_messages_by_locks(
    broker_url: str, postgres_url: str
) -> None:
    """On PostgreSQL the relay takes, publishes and marks in one transaction: what the broker
    confirmed is sent, the unroutable one parked, and no claim was ever written."""
    conn, channel = _ledger(broker_url)
    storage = PostgresStorage(postgres_url, pool_size=2)
    now = utcnow()
    with storage.unit_of_work() as uow:
        for n in range(50):
            uow.outbox.enqueue(
                OutboxMessage(
                    f"p{n}", topology.LEDGER_EXCHANGE, "posting.payment_settled", b"{}", {}
                ),
                now,
            )
        uow.outbox.enqueue(
            OutboxMessage("m-lost", topology.TO_BANK_EXCHANGE, "nobank", b"<x/>", {}), now
        )
    publisher = PipelinedPublisher(broker_url, window=16)
    try:
        relay = RelayService(storage, publisher, batch=20)
        assert storage.relay_locks
        assert [relay.drain() for _ in range(4)] == [19, 20, 11, 0]
    finally:
        publisher.close()
        [(sent, parked, claimed)] = storage.query(
            "SELECT COUNT(sent_at), COUNT(parked_at), COUNT(claimed_by) FROM outbox"
        )
        storage.close()
    assert (sent, parked, claimed) == (50, 1, 0)
    depth = channel.queue_declare(topology.LEDGER_QUEUE, passive=True).method.message_count
    channel.queue_purge(topology.LEDGER_QUEUE)
    conn.close()
    assert depth == 50


def test_on_sqlite_the_relays_of_the_process_hold_their_messages_in_memory(
    settings: Settings, broker_url: str
) -> None:
    """On SQLite the relays of the gateway's one process read their messages, hold them in
    memory while they publish, and write only the marks: two relays draining at once publish
    each message exactly once, and no claim is ever written."""
    conn, channel = _ledger(broker_url)
    storage = SqliteStorage(settings.db_file)
    _postings(storage, 300, utcnow())
    publishers = [PipelinedPublisher(broker_url, window=16) for _ in range(2)]

    try:
        assert not storage.relay_locks
        relays = [
            RelayService(storage, publisher, batch=20, owner=f"relay-{n}")
            for n, publisher in enumerate(publishers)
        ]
        drained = run_threads([draining(relay) for relay in relays])
    finally:
        for publisher in publishers:
            publisher.close()
        [(sent, claimed)] = storage.query("SELECT COUNT(sent_at), COUNT(claimed_by) FROM outbox")
        storage.close()
    assert all(isinstance(count, int) and count > 0 for count in drained), drained  # side by side
    assert (sent, claimed, sum(drained)) == (300, 0, 300)
    ids = _ledger_ids(conn, channel)
    assert sorted(ids) == sorted(f"p{n}" for n in range(300))  # each once


def test_on_postgresql_a_relay_stalled_past_its_hold_lets_the_messages_go(
    postgres_url: str,
) -> None:
    """A relay whose unit sits idle longer than its hold (a broker that never confirms) loses
    it: PostgreSQL ends the session, the locks go, its marks fail as transient, and another
    relay takes the same messages at once."""
    storage = PostgresStorage(postgres_url, pool_size=2)
    now = utcnow()
    try:
        with storage.unit_of_work() as uow:
            uow.outbox.enqueue(OutboxMessage("p1", "treasury.ledger", "k", b"{}", {}), now)
        with pytest.raises(TransientError), storage.unit_of_work() as uow:
            [held] = uow.outbox.lock_pending("relay-a", 10, now, timedelta(seconds=0.3))
            time.sleep(1.2)
            uow.outbox.mark_sent([held.row_id], now)
        with storage.unit_of_work() as uow:
            taken = uow.outbox.lock_pending("relay-b", 10, now, timedelta(seconds=30))
            assert [p.message.message_id for p in taken] == ["p1"]
            uow.outbox.mark_sent([taken[0].row_id], now)
        assert storage.queries.outbox_pending() == (0, None)
    finally:
        storage.close()


class _SlowBroker:
    """Confirms every message, but only after `delay` seconds (a broker slow to confirm)."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._tokens: list[Any] = []
        self.handed = 0

    def submit(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> None:
        self._tokens.append(kw["token"])
        self.handed += 1

    def flush(self, timeout: float | None = None, through: int | None = None) -> Any:
        time.sleep(self._delay)
        confirmed, self._tokens = self._tokens, []
        latencies = [self._delay] * len(confirmed)
        return SimpleNamespace(confirmed=confirmed, latencies=latencies, unroutable=[], failed=[])

    def publish(self, *args: Any, **kw: Any) -> None:
        raise AssertionError("messages are handed over by submit")

    def keepalive(self) -> None:
        """Nothing to keep alive."""


def test_on_postgresql_confirms_that_outlast_the_hold_are_still_marked(postgres_url: str) -> None:
    """The broker confirms after the relay's hold ran out: PostgreSQL closed the unit's session
    meanwhile, so the relay marks what the broker confirmed in a unit of its own, and nothing
    is published twice by it."""
    storage = PostgresStorage(postgres_url, pool_size=2)
    now = utcnow()
    try:
        with storage.unit_of_work() as uow:
            for n in range(3):
                uow.outbox.enqueue(OutboxMessage(f"p{n}", "treasury.ledger", "k", b"{}", {}), now)
        relay = RelayService(storage, _SlowBroker(1.2), claim_seconds=0.3)
        assert relay.drain() == 3
        assert storage.queries.outbox_pending() == (0, None)
        assert relay.drain() == 0
    finally:
        storage.close()


def test_on_postgresql_a_drain_takes_the_next_batch_while_the_broker_confirms(
    broker_url: str, postgres_url: str
) -> None:
    """With `batches`, one drain takes batch after batch while they come full, each by the
    locks of a unit of its own, and the broker's confirms of each arrive while the next is
    handed over: every message is confirmed once, marked once, and no claim is written."""
    conn, channel = _ledger(broker_url)
    storage = PostgresStorage(postgres_url, pool_size=3)
    _postings(storage, 95, utcnow())
    publisher = PipelinedPublisher(broker_url, window=16)
    try:
        assert storage.overlapping_units
        relay = RelayService(storage, publisher, batch=20, batches=3)
        assert [relay.drain() for _ in range(3)] == [60, 35, 0]
    finally:
        publisher.close()
        [(sent, claimed)] = storage.query("SELECT COUNT(sent_at), COUNT(claimed_by) FROM outbox")
        storage.close()
    assert (sent, claimed) == (95, 0)
    ids = _ledger_ids(conn, channel)
    assert ids == [f"p{n}" for n in range(95)]  # each once, in the outbox's order


@pytest.mark.parametrize("eager", [False, True], ids=["in-order", "next-batch-early"])
def test_on_postgresql_each_batch_waits_only_for_its_own_confirms(
    postgres_url: str, eager: bool
) -> None:
    """A batch is settled through its own last message (`flush(through=...)`), the next batch
    already handed over; confirms of the next that arrive with it (`eager`) are kept for the
    next, whose unit marks them: each row is marked by the unit that locked it."""
    storage = PostgresStorage(postgres_url, pool_size=3)
    _postings(storage, 25, utcnow())
    broker = ConfirmingBroker(eager=eager)
    try:
        relay = RelayService(storage, broker, batch=10, batches=8)
        assert relay.drain() == 25
        assert storage.queries.outbox_pending() == (0, None)
    finally:
        storage.close()
    assert broker.published == [f"p{n}" for n in range(25)]
    assert broker.flushes == [10, 20, 25]


@pytest.mark.parametrize(
    ("error", "raised"),
    [(RuntimeError("client failed"), True), (TransientError("broker gone"), False)],
    ids=["client-fails", "broker-goes"],
)
def test_on_postgresql_a_failure_in_a_later_batch_keeps_every_earlier_confirm(
    postgres_url: str, error: Exception, raised: bool
) -> None:
    """The hand-over fails at the 25th message, in the third batch of a drain: the two batches
    before and the four messages of the third the broker confirmed are marked before the error
    goes on (a broker gone is logged instead); the other 16 are pending and free at once."""
    storage = PostgresStorage(postgres_url, pool_size=3)
    _postings(storage, 40, utcnow())
    broker = ConfirmingBroker(breaks_at=24, error=error)
    relay = RelayService(storage, broker, batch=10, batches=8)
    try:
        if raised:
            with pytest.raises(RuntimeError, match="client failed"):
                relay.drain()
        else:
            assert relay.drain() == 24
        assert broker.refusals == 1  # the drain ended at the failed hand-over
        assert storage.queries.outbox_pending()[0] == 16
        again = RelayService(storage, ConfirmingBroker(), batch=10, batches=8, owner="relay-b")
        assert again.drain() == 16
        assert storage.queries.outbox_pending() == (0, None)
    finally:
        storage.close()


def test_on_postgresql_two_relays_overlapping_batches_never_share_a_message(
    postgres_url: str,
) -> None:
    """Two relays (two instances) drain at once, each taking its next batch while its last is
    confirmed: the locks of every open unit keep each message to one of them."""
    storage = PostgresStorage(postgres_url, pool_size=6)
    _postings(storage, 300, utcnow())
    brokers = [ConfirmingBroker(pause=0.0005) for _ in range(2)]
    try:
        relays = [
            RelayService(storage, broker, batch=20, batches=4, owner=f"relay-{n}")
            for n, broker in enumerate(brokers)
        ]
        drained = run_threads([draining(relay) for relay in relays])
        assert storage.queries.outbox_pending() == (0, None)
    finally:
        storage.close()
    assert all(isinstance(count, int) and count > 0 for count in drained), drained
    published = [message_id for broker in brokers for message_id in broker.published]
    assert sorted(published) == sorted(f"p{n}" for n in range(300))  # each once


def test_on_postgresql_an_interrupt_midway_ends_every_open_unit(postgres_url: str) -> None:
    """An interrupt (Ctrl-C) while the second batch is handed over: the first batch's confirms
    and the second's so far are marked, both units end, and no lock outlives them: another
    relay takes every message left at once."""
    storage = PostgresStorage(postgres_url, pool_size=3)
    _postings(storage, 40, utcnow())
    broker = ConfirmingBroker(breaks_at=15, error=KeyboardInterrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            RelayService(storage, broker, batch=10, batches=8).drain()
        assert storage.queries.outbox_pending()[0] == 25
        again = RelayService(storage, ConfirmingBroker(), batch=50, owner="relay-b")
        assert again.drain() == 25
    finally:
        storage.close()


class _LocksSpy:
    """A PostgreSQL storage whose units record the rows they locked and the rows they marked."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self.units: list[tuple[set[int], set[int]]] = []  # (locked, marked), by unit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    @contextmanager
    def unit_of_work(self) -> Iterator[Any]:
        locked: set[int] = set()
        marked: set[int] = set()
        self.units.append((locked, marked))
        with self._storage.unit_of_work() as uow:
            outbox = uow.outbox
            lock_pending, mark_sent = outbox.lock_pending, outbox.mark_sent

            def locking(*args: Any, **kw: Any) -> Any:
                taken = lock_pending(*args, **kw)
                locked.update(item.row_id for item in taken)
                return taken

            def marking(row_ids: Any, now: Any) -> None:
                marked.update(row_ids)
                mark_sent(row_ids, now)

            setattr(outbox, "lock_pending", locking)  # noqa: B010 - wrapped for the record
            setattr(outbox, "mark_sent", marking)  # noqa: B010
            yield uow


@pytest.mark.parametrize("eager", [False, True], ids=["in-order", "next-batch-early"])
def test_on_postgresql_each_row_is_marked_by_the_unit_that_locked_it(
    postgres_url: str, eager: bool
) -> None:
    """Confirms of the next batch that arrive while a batch is settled are kept for the next
    batch's unit: every unit marks exactly the rows it locked."""
    storage = PostgresStorage(postgres_url, pool_size=3)
    _postings(storage, 35, utcnow())
    spy = _LocksSpy(storage)
    try:
        relay = RelayService(spy, ConfirmingBroker(eager=eager), batch=10, batches=8)
        assert relay.drain() == 35
    finally:
        storage.close()
    units = [(locked, marked) for locked, marked in spy.units if locked]
    assert [len(locked) for locked, _ in units] == [10, 10, 10, 5]
    assert all(marked == locked for locked, marked in units)


def test_on_postgresql_a_batch_whose_unit_lost_its_locks_is_not_taken_twice(
    postgres_url: str,
) -> None:
    """The first batch's unit sits idle past its hold while the broker is slow (PostgreSQL ends
    its session); the next batch finds the same rows unlocked: it gives them back and the drain
    ends. The first batch's confirms are marked in a unit of their own, each message was
    handed over once, and the rest wait for the next drain."""
    storage = PostgresStorage(postgres_url, pool_size=3)
    _postings(storage, 25, utcnow())
    broker = ConfirmingBroker(pause=0.1)
    try:
        relay = RelayService(storage, broker, batch=10, batches=8, claim_seconds=0.3)
        assert relay.drain() == 10
        assert broker.published == [f"p{n}" for n in range(10)]
        assert storage.queries.outbox_pending()[0] == 15
    finally:
        storage.close()
