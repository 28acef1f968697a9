"""The outbox relay on a real broker: confirmed messages are marked sent, unroutable ones parked."""

from __future__ import annotations

import pytest

from gateway.adapters import topology
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.rabbitmq import Publisher, connect
from gateway.config import Settings
from gateway.service.clock import utcnow
from gateway.service.ports import OutboxMessage
from gateway.service.relay import RelayService

pytestmark = pytest.mark.broker


def test_unroutable_messages_are_parked_and_the_rest_go_out(
    settings: Settings, broker_url: str
) -> None:
    """A message no queue takes is set aside with its reason; the next one is still sent."""
    conn = connect(broker_url)
    channel = conn.channel()
    topology.declare(channel, ["agribank"], 5)
    channel.queue_purge(topology.LEDGER_QUEUE)
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
