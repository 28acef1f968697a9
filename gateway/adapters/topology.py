"""Exchanges and queues of the gateway, declared idempotently at start."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Treasury core publishes payment orders here, routing key `order.<category>`.
ORDERS_EXCHANGE = "treasury.orders"
ORDERS_QUEUE = "gateway.orders"
# The gateway publishes ledger postings here, routing key `posting.<kind>`.
LEDGER_EXCHANGE = "treasury.ledger"
LEDGER_QUEUE = "treasury.ledger.postings"
# Files to banks reached by message: routing key = partner name, one inbox queue per partner.
TO_BANK_EXCHANGE = "gateway.to-bank"
# Bank reports to the gateway: routing key = partner name.
FROM_BANK_EXCHANGE = "gateway.from-bank"
FROM_BANK_QUEUE = "gateway.from-bank"
# Dead letters land in `<queue>.parking`, routed by the source queue's name.
PARKING_EXCHANGE = "gateway.parking"


def bank_inbox(partner: str) -> str:
    """The queue a partner bank reads our files from."""
    return f"bank.{partner}.inbox"


def _quorum_args(queue: str, delivery_limit: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": PARKING_EXCHANGE,
        "x-dead-letter-routing-key": queue,
    }


def declare(channel: Any, partners: Iterable[str], delivery_limit: int) -> None:
    """Declare every exchange and queue; safe to run again with the same arguments."""
    channel.exchange_declare(PARKING_EXCHANGE, "direct", durable=True)
    for name, kind in (
        (ORDERS_EXCHANGE, "topic"),
        (LEDGER_EXCHANGE, "topic"),
        (TO_BANK_EXCHANGE, "direct"),
        (FROM_BANK_EXCHANGE, "direct"),
    ):
        channel.exchange_declare(name, kind, durable=True)

    def queue(name: str, exchange: str, keys: Iterable[str]) -> None:
        declare_queue(channel, name, exchange, keys, delivery_limit)

    queue(ORDERS_QUEUE, ORDERS_EXCHANGE, ["order.#"])
    queue(LEDGER_QUEUE, LEDGER_EXCHANGE, ["posting.#"])
    partner_names = list(partners)
    queue(FROM_BANK_QUEUE, FROM_BANK_EXCHANGE, partner_names)
    for partner in partner_names:
        queue(bank_inbox(partner), TO_BANK_EXCHANGE, [partner])


def declare_queue(
    channel: Any, name: str, exchange: str, keys: Iterable[str], delivery_limit: int
) -> None:
    """A quorum queue bound to `exchange`, whose dead letters go to `<name>.parking`."""
    channel.exchange_declare(PARKING_EXCHANGE, "direct", durable=True)
    channel.queue_declare(f"{name}.parking", durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(f"{name}.parking", PARKING_EXCHANGE, routing_key=name)
    channel.queue_declare(name, durable=True, arguments=_quorum_args(name, delivery_limit))
    for key in keys:
        channel.queue_bind(name, exchange, routing_key=key)
