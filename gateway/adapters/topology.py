"""Exchanges and queues of the gateway, declared idempotently at start."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from pika.exceptions import ChannelClosedByBroker

from gateway.errors import ConfigError
from gateway.service.channels import (
    ADMIN_EXCHANGE,
    ADMIN_QUEUE,
    FROM_BANK_EXCHANGE,
    FROM_BANK_QUEUE,
    LEDGER_EXCHANGE,
    LEDGER_QUEUE,
    ORDERS_EXCHANGE,
    ORDERS_QUEUE,
    PARKING_EXCHANGE,
    TO_BANK_EXCHANGE,
    URGENT_ORDERS_KEY,
    URGENT_ORDERS_QUEUE,
)

log = structlog.get_logger("gateway.topology")

__all__ = [
    "ADMIN_EXCHANGE",
    "ADMIN_QUEUE",
    "FROM_BANK_EXCHANGE",
    "FROM_BANK_QUEUE",
    "LEDGER_EXCHANGE",
    "LEDGER_QUEUE",
    "ORDERS_EXCHANGE",
    "ORDERS_QUEUE",
    "PARKING_EXCHANGE",
    "TO_BANK_EXCHANGE",
    "URGENT_ORDERS_QUEUE",
]

# Queue-level code of a declaration whose arguments differ from the existing queue's.
_PRECONDITION_FAILED = 406


def bank_inbox(partner: str) -> str:
    """The queue a partner bank reads our files from."""
    return f"bank.{partner}.inbox"


def parking_queue(queue: str) -> str:
    """Where messages of `queue` that cannot be handled wait for an admin."""
    return f"{queue}.parking"


def retry_queue(queue: str) -> str:
    """Where a message of `queue` waits out a transient fault before it goes back."""
    return f"{queue}.retry"


def consumed_queues(partners: Iterable[str]) -> list[str]:
    """Every queue with a parking queue, in a stable order (for `gateway dlq`)."""
    return [
        ORDERS_QUEUE,
        URGENT_ORDERS_QUEUE,
        FROM_BANK_QUEUE,
        LEDGER_QUEUE,
        ADMIN_QUEUE,
        *(bank_inbox(p) for p in partners),
    ]


def _safe_dead_lettering() -> dict[str, Any]:
    # At-least-once dead-lettering: the broker keeps a message until the target queue confirmed
    # it (RabbitMQ requires reject-publish overflow for this strategy).
    return {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def _members(group_size: int) -> dict[str, Any]:
    # On a cluster, each quorum queue keeps its messages on this many nodes: with 3 of 3, any
    # one node may be lost without losing a confirmed message or the queue's availability.
    return {"x-quorum-initial-group-size": group_size} if group_size > 0 else {}


def _quorum_args(queue: str, delivery_limit: int, group_size: int = 0) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        **_members(group_size),
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": PARKING_EXCHANGE,
        "x-dead-letter-routing-key": queue,
        **_safe_dead_lettering(),
    }


def _retry_args(queue: str, group_size: int = 0) -> dict[str, Any]:
    # A message published here with an `expiration` dead-letters back to its queue when it
    # expires: the delay of a retry with backoff, without holding a consumer.
    return {
        "x-queue-type": "quorum",
        **_members(group_size),
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        **_safe_dead_lettering(),
    }


def declare(
    channel: Any, partners: Iterable[str], delivery_limit: int, group_size: int = 0
) -> None:
    """Declare every exchange and queue; safe to run again with the same arguments.

    `group_size` > 0 declares each quorum queue with that many members (a cluster's nodes).
    """
    channel.exchange_declare(PARKING_EXCHANGE, "direct", durable=True)
    for name, kind in (
        (ORDERS_EXCHANGE, "topic"),
        (LEDGER_EXCHANGE, "topic"),
        (TO_BANK_EXCHANGE, "direct"),
        (FROM_BANK_EXCHANGE, "direct"),
        (ADMIN_EXCHANGE, "topic"),
    ):
        channel.exchange_declare(name, kind, durable=True)

    def queue(name: str, exchange: str, keys: Iterable[str]) -> None:
        declare_queue(channel, name, exchange, keys, delivery_limit, group_size)

    queue(ORDERS_QUEUE, ORDERS_EXCHANGE, ["order.#"])
    queue(URGENT_ORDERS_QUEUE, ORDERS_EXCHANGE, [f"{URGENT_ORDERS_KEY}.#"])
    queue(LEDGER_QUEUE, LEDGER_EXCHANGE, ["posting.#"])
    queue(ADMIN_QUEUE, ADMIN_EXCHANGE, ["admin.#"])
    partner_names = list(partners)
    queue(FROM_BANK_QUEUE, FROM_BANK_EXCHANGE, partner_names)
    for partner in partner_names:
        queue(bank_inbox(partner), TO_BANK_EXCHANGE, [partner])


def declare_queue(
    channel: Any,
    name: str,
    exchange: str,
    keys: Iterable[str],
    delivery_limit: int,
    group_size: int = 0,
) -> None:
    """A quorum queue bound to `exchange`, whose dead letters go to `<name>.parking`, and its
    delayed retry queue `<name>.retry` (each with `group_size` members when > 0)."""
    channel.exchange_declare(PARKING_EXCHANGE, "direct", durable=True)
    parking = {"x-queue-type": "quorum", **_members(group_size)}
    channel.queue_declare(parking_queue(name), durable=True, arguments=parking)
    channel.queue_bind(parking_queue(name), PARKING_EXCHANGE, routing_key=name)
    args = _quorum_args(name, delivery_limit, group_size)
    channel.queue_declare(name, durable=True, arguments=args)
    channel.queue_declare(retry_queue(name), durable=True, arguments=_retry_args(name, group_size))
    for key in keys:
        channel.queue_bind(name, exchange, routing_key=key)


def declare_on(
    connection: Any, partners: Iterable[str], delivery_limit: int, group_size: int = 0
) -> None:
    """Declare everything on a connection, upgrading an empty queue declared by an older version.

    A queue whose arguments changed (a new delivery limit, safer dead-lettering) cannot be
    re-declared in place. An empty one is deleted and declared afresh; one holding messages is
    never touched: the error names it, for an admin to drain it first.
    """
    names = list(partners)
    upgraded: set[str] = set()
    while True:
        channel = connection.channel()
        try:
            declare(channel, names, delivery_limit, group_size)
            channel.close()
            return
        except ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED or "queue '" not in exc.reply_text:
                raise
            queue = exc.reply_text.split("queue '", 1)[1].split("'", 1)[0]
            if queue in upgraded:
                raise
            probe = connection.channel()
            waiting = probe.queue_declare(queue, passive=True).method.message_count
            if waiting:
                raise ConfigError(
                    f"queue {queue} was declared with other arguments and holds {waiting}"
                    " message(s): drain it, then delete it, and start again"
                ) from None
            # Quorum queues refuse `if-empty`: the count above is the check.
            probe.queue_delete(queue)
            probe.close()
            upgraded.add(queue)
            log.warning("queue.redeclared", queue=queue, reason=exc.reply_text)
