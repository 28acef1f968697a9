"""RabbitMQ through pika: connections, confirmed publishing and chunked consuming."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, NackError, UnroutableError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from gateway.errors import PermanentError, TransientError

log = structlog.get_logger("gateway.rabbitmq")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message taken from a queue."""

    body: bytes
    headers: dict[str, Any]
    routing_key: str
    message_id: str | None
    redelivered: bool


@retry(
    retry=retry_if_exception_type(AMQPError),
    wait=wait_exponential(multiplier=0.2, max=5),
    stop=stop_after_delay(60),
    reraise=True,
)
def connect(url: str) -> pika.BlockingConnection:
    """A blocking connection, retried with backoff while the broker is away."""
    params = pika.URLParameters(url)
    if "heartbeat=" not in url:
        params.heartbeat = 30
    params.blocked_connection_timeout = 60
    params.client_properties = {"connection_name": f"gateway:{threading.current_thread().name}"}
    return pika.BlockingConnection(params)


class Publisher:
    """Publishes with confirms and `mandatory`; one connection, used by one thread."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _ensure(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._conn = connect(self._url)
            self._channel = self._conn.channel()
            self._channel.confirm_delivery()
        return self._channel

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Publish one persistent message and wait for the broker's confirm.

        A connection found dead (an idle one the broker dropped) is reopened and the publish tried
        once more; the message may then arrive twice, which every consumer here tolerates.
        """
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            content_type=content_type,
            headers=headers or {},
        )
        for attempt in (1, 2):
            try:
                channel = self._ensure()
                channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
                return
            except UnroutableError:
                raise PermanentError(
                    f"message {message_id} to {exchange}/{routing_key} has no queue to go to"
                ) from None
            except NackError:
                self.close()
                raise TransientError(f"broker refused message {message_id}") from None
            except AMQPError as exc:
                self.close()
                if attempt == 2:
                    raise TransientError(f"broker unavailable: {exc!r}") from exc
                log.info("publisher.reconnect", error=repr(exc))

    def keepalive(self) -> None:
        """Let the connection answer heartbeats while the caller has nothing to publish."""
        if self._conn is None:
            return
        try:
            self._conn.process_data_events(0)
        except AMQPError:
            self.close()

    def close(self) -> None:
        """Close the connection, ignoring errors from one already gone."""
        if self._conn is not None:
            try:
                if self._conn.is_open:
                    self._conn.close()
            except AMQPError:
                pass
        self._conn = None
        self._channel = None


ChunkHandler = Callable[[Sequence[Delivery]], object]


def consume(
    url: str,
    queue: str,
    handler: ChunkHandler,
    stop: threading.Event,
    *,
    prefetch: int,
    chunk: int,
    idle: float = 0.05,
    setup: Callable[[BlockingChannel], None] | None = None,
) -> None:
    """Feed chunks of deliveries to `handler`; ack them together only after it returns.

    A TransientError from the handler requeues the chunk; anything else requeues it too, and the
    quorum queue's delivery limit parks a message that keeps failing. A lost connection is
    reconnected with backoff until `stop` is set.
    """
    while not stop.is_set():
        try:
            conn = connect(url)
        except AMQPError as exc:
            log.warning("broker.unreachable", queue=queue, error=repr(exc))
            stop.wait(1.0)
            continue
        try:
            channel = conn.channel()
            if setup is not None:
                setup(channel)
            channel.basic_qos(prefetch_count=prefetch)
            _consume_loop(channel, queue, handler, stop, chunk=chunk, idle=idle)
        except AMQPError as exc:
            if not stop.is_set():
                log.warning("broker.connection_lost", queue=queue, error=repr(exc))
                stop.wait(0.5)
        finally:
            try:
                if conn.is_open:
                    conn.close()
            except AMQPError:
                pass


def _consume_loop(
    channel: BlockingChannel,
    queue: str,
    handler: ChunkHandler,
    stop: threading.Event,
    *,
    chunk: int,
    idle: float,
) -> None:
    pending: list[tuple[int, Delivery]] = []
    for method, props, body in channel.consume(queue, inactivity_timeout=idle):
        if method is not None:
            pending.append(
                (
                    method.delivery_tag,
                    Delivery(
                        body=body,
                        headers=dict(props.headers or {}),
                        routing_key=method.routing_key,
                        message_id=props.message_id,
                        redelivered=bool(method.redelivered),
                    ),
                )
            )
            if len(pending) < chunk:
                continue
        if pending:
            _handle(channel, queue, handler, pending)
            pending = []
        if stop.is_set():
            break
    channel.cancel()


def _handle(
    channel: BlockingChannel,
    queue: str,
    handler: ChunkHandler,
    pending: list[tuple[int, Delivery]],
) -> None:
    last_tag = pending[-1][0]
    try:
        handler([delivery for _, delivery in pending])
    except TransientError as exc:
        log.warning("chunk.retry", queue=queue, size=len(pending), error=str(exc))
        time.sleep(0.5)
        channel.basic_nack(last_tag, multiple=True, requeue=True)
        return
    except Exception as exc:
        log.warning("chunk.failed", queue=queue, size=len(pending), error=repr(exc))
        if len(pending) > 1:
            # Find the poison message: one at a time, so good neighbours are not parked with it.
            for tag, delivery in pending:
                _handle(channel, queue, handler, [(tag, delivery)])
            return
        log.exception("message.failed", queue=queue, message_id=pending[0][1].message_id)
        channel.basic_nack(last_tag, multiple=False, requeue=True)
        return
    channel.basic_ack(last_tag, multiple=len(pending) > 1)
