"""The broker's parking queues (`<queue>.parking`) for gateway.service.dead_letters, over pika.

Parked messages are read with `basic_get` and no ack, so that every one not settled goes back
to its parking queue when the batch closes (the connection with it). A replayed message is
published to its queue with the headers it was first published with (the parking marks
removed), persistent, mandatory and confirmed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from gateway.adapters import topology
from gateway.adapters.amqp_connect import COMMAND_WAIT
from gateway.adapters.rabbitmq import (
    PARKED_AT_HEADER,
    PARKED_REASON_HEADER,
    RETRIES_HEADER,
    connect,
)
from gateway.service.dead_letters import ParkedLetter

# Headers that describe a parking, not the message: removed when it is put back.
PARKING_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    PARKED_REASON_HEADER,
    PARKED_AT_HEADER,
    RETRIES_HEADER,
)


def parked_reason(headers: dict[str, Any]) -> str:
    """Why a message was parked: the gateway's reason, else the broker's dead-letter record."""
    reason = headers.get(PARKED_REASON_HEADER)
    if reason:
        return _text(reason)
    deaths = headers.get("x-death") or []
    if deaths:
        death = deaths[0]
        return f"broker dead-lettered it ({death.get('reason')}, {death.get('count')} time(s))"
    return "no reason recorded"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Batch:
    """The messages of one parking queue, taken without ack on one channel."""

    def __init__(self, channel: BlockingChannel, queue: str) -> None:
        self._channel = channel
        self._queue = queue
        taken: list[ParkedLetter] = []
        while True:
            method, props, body = channel.basic_get(topology.parking_queue(queue))
            if method is None:
                break
            headers = dict(props.headers or {})
            at = headers.get(PARKED_AT_HEADER)
            taken.append(
                ParkedLetter(
                    tag=method.delivery_tag,
                    message_id=props.message_id,
                    reason=parked_reason(headers),
                    parked_at=_text(at) if at else None,
                    redelivered=bool(method.redelivered),
                    body=body,
                    content_type=props.content_type,
                    headers=headers,
                    original_headers={k: v for k, v in headers.items() if k not in PARKING_HEADERS},
                )
            )
        self._letters = tuple(taken)

    @property
    def letters(self) -> Sequence[ParkedLetter]:
        return self._letters

    def republish(self, letter: ParkedLetter) -> None:
        self._channel.basic_publish(
            "",
            self._queue,
            letter.body,
            pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=letter.message_id,
                content_type=letter.content_type,
                headers=letter.original_headers,
            ),
            mandatory=True,
        )

    def settle(self, letter: ParkedLetter) -> None:
        self._channel.basic_ack(letter.tag)


class BrokerParking:
    """The parking queues of the broker at `url`; one short connection per use."""

    def __init__(self, url: str) -> None:
        self._url = url

    def counts(self, queues: Sequence[str]) -> dict[str, int | None]:
        conn = connect(self._url, within=COMMAND_WAIT)
        try:
            channel = conn.channel()
            counted: dict[str, int | None] = {}
            for queue in queues:
                try:
                    declared = channel.queue_declare(topology.parking_queue(queue), passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = conn.channel()  # the passive declare closed it
                    counted[queue] = None
                    continue
                counted[queue] = declared.method.message_count
            return counted
        finally:
            if conn.is_open:
                conn.close()

    @contextmanager
    def open(self, queue: str) -> Iterator[_Batch]:
        conn = connect(self._url, within=COMMAND_WAIT)
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            yield _Batch(channel, queue)
        finally:
            if conn.is_open:
                conn.close()
