"""RabbitMQ through pika: connections, confirmed publishing and chunked consuming."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, NackError, UnroutableError

from gateway import crashpoints
from gateway.adapters import topology
from gateway.adapters.amqp_connect import LINKS, SERVICE_WAIT, connect
from gateway.adapters.amqp_heartbeats import HeartbeatKeeper
from gateway.errors import PermanentError, TransientError
from gateway.metrics import NO_METRICS, Metrics

log = structlog.get_logger("gateway.rabbitmq")

__all__ = ["Delivery", "Publisher", "RetryPolicy", "connect", "consume", "park", "take_while"]

# The crash point between handing a message to the broker and reading its confirm.
UNCONFIRMED = "relay.published_unconfirmed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message taken from a queue."""

    body: bytes
    headers: dict[str, Any]
    routing_key: str
    message_id: str | None
    redelivered: bool
    content_type: str | None = None


class Publisher:
    """Publishes with confirms and `mandatory`; one connection, used by one thread.

    `url` names one node or the nodes of a cluster (comma-separated); a lost connection is
    opened again on the next node that answers, tried for `within` seconds while none does.
    `worker` names the connection in LINKS (default: the name of the thread that first
    publishes).
    """

    def __init__(
        self,
        url: str,
        metrics: Metrics = NO_METRICS,
        *,
        worker: str | None = None,
        within: float = SERVICE_WAIT,
    ) -> None:
        self._url = url
        self._within = within
        self._metrics = metrics
        self._worker = worker
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _ensure(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            if self._worker is None:
                self._worker = threading.current_thread().name
            self._conn = connect(self._url, self._worker, within=self._within)
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
            # A connection opened before may have died while idle (the broker dropped it): then
            # it is opened again and the publish tried once more. One opened now has already
            # been tried for `within` seconds.
            reused = self._channel is not None and self._channel.is_open
            try:
                channel = self._ensure()
            except AMQPError as exc:
                self.close()
                raise TransientError(f"broker unavailable: {str(exc) or repr(exc)}") from exc
            try:
                if crashpoints.armed(UNCONFIRMED):
                    self._hand_over_and_die(channel, exchange, routing_key, body, properties)
                crashpoints.hit(UNCONFIRMED)
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
                if attempt == 2 or not reused:
                    raise TransientError(f"broker unavailable: {exc!r}") from exc
                log.info("publisher.reconnect", error=repr(exc))
                self._metrics.broker_reconnect("publisher")

    def _hand_over_and_die(
        self,
        channel: BlockingChannel,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
    ) -> None:
        """Crash point: the message leaves for the broker and the process dies before the
        confirm is read, as when the machine fails in that instant (pika has no public way to
        publish on a confirming channel without awaiting the confirm)."""
        channel._impl.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        if self._conn is not None:
            self._conn._flush_output(lambda: True)
        crashpoints.hit(UNCONFIRMED)

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
            if self._worker is not None:
                LINKS.lost(self._worker)
            try:
                if self._conn.is_open:
                    self._conn.close()
            except AMQPError:
                pass
        self._conn = None
        self._channel = None


ChunkHandler = Callable[[Sequence[Delivery]], object]

# Headers the gateway sets on messages it retries or parks.
RETRIES_HEADER = "x-gateway-retries"
ROUTING_KEY_HEADER = "x-gateway-routing-key"
PARKED_REASON_HEADER = "x-gateway-parked-reason"
PARKED_AT_HEADER = "x-gateway-parked-at"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a message whose handling met a transient fault waits in `<queue>.retry`."""

    # Delay before the first retry, doubled at each further one, up to `max_delay`.
    first_delay: float = 0.5
    max_delay: float = 30.0
    # Retries after which the message is parked with the last fault as its reason.
    limit: int = 12

    def delay(self, retries: int) -> float:
        """Seconds to wait before retry number `retries` (1-based)."""
        return min(self.first_delay * 2.0 ** (retries - 1), self.max_delay)


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
    name: str | None = None,
    retry: RetryPolicy | None = None,
    metrics: Metrics = NO_METRICS,
) -> None:
    """Feed chunks of deliveries to `handler`; ack them together only after it returns.

    A TransientError from the handler sends the chunk to `<queue>.retry`, from which each message
    comes back after a growing delay (parked after `retry.limit` retries). A PermanentError parks
    the message with its reason. Anything else requeues it, and the quorum queue's delivery limit
    parks a message that keeps failing. A lost connection is reconnected with backoff until
    `stop` is set, on the next node of a cluster that answers (`url` names one node or several,
    comma-separated); the deliveries not acked on the lost connection come again there.
    `name` names the crash point before the ack (`<name>.before_ack`) and the connection in LINKS.
    """
    worker = _Worker(queue, handler, name or queue, retry or RetryPolicy(), metrics)

    def work(conn: Any, channel: BlockingChannel, side: BlockingChannel) -> None:
        if setup is not None:
            setup(channel)
        channel.basic_qos(prefetch_count=prefetch)
        keeper = HeartbeatKeeper(conn, name or queue)
        try:
            worker.loop(channel, side, keeper, stop, chunk=chunk, idle=idle)
        finally:
            keeper.close()

    while not stop.is_set():
        _session(url, queue, name or queue, stop, metrics, work)


def _session(
    url: str,
    queue: str,
    link: str,
    stop: threading.Event,
    metrics: Metrics,
    work: Callable[[Any, BlockingChannel, BlockingChannel], None],
) -> None:
    """One connection of a consumer of `queue`: `work` given it, its channel and a side channel
    with confirms (retries and parking); a broker out of reach waited for, a lost connection
    logged and counted, the connection closed in the end (the caller opens the next)."""
    try:
        conn = connect(url, link)
    except AMQPError as exc:
        log.warning("broker.unreachable", queue=queue, error=repr(exc))
        stop.wait(1.0)
        return
    try:
        channel = conn.channel()
        side = conn.channel()
        side.confirm_delivery()
        work(conn, channel, side)
    except AMQPError as exc:
        if not stop.is_set():
            log.warning("broker.connection_lost", queue=queue, error=repr(exc))
            metrics.broker_reconnect(link)
            stop.wait(0.5)
    finally:
        LINKS.lost(link)
        try:
            if conn.is_open:
                conn.close()
        except AMQPError:
            pass


def take_while(
    url: str,
    queue: str,
    handler: ChunkHandler,
    stop: threading.Event,
    *,
    ready: Callable[[], bool],
    name: str,
    idle: float = 0.1,
    retry: RetryPolicy | None = None,
    metrics: Metrics = NO_METRICS,
) -> None:
    """Take deliveries one at a time (`basic.get`) while `ready()` holds, each handled, retried,
    parked and acked as `consume` does. Nothing is prefetched: when `ready()` stops holding, no
    delivery waits on this connection to be given back (a quorum queue would count it against
    its delivery limit), and the connection is closed until it holds again."""
    worker = _Worker(queue, handler, name, retry or RetryPolicy(), metrics)

    def take(conn: Any, channel: BlockingChannel, side: BlockingChannel) -> None:
        keeper = HeartbeatKeeper(conn, name)
        try:
            while not stop.is_set() and ready():
                method, props, body = channel.basic_get(queue)
                if method is None:
                    conn.sleep(idle)
                    continue
                delivery = _delivery(method, props, body)
                worker.handle_one(channel, side, keeper, method.delivery_tag, delivery)
        finally:
            keeper.close()

    while not stop.is_set():
        if ready():
            _session(url, queue, name, stop, metrics, take)
        else:
            stop.wait(idle)


def _delivery(method: Any, props: Any, body: bytes) -> Delivery:
    headers = dict(props.headers or {})
    return Delivery(
        body=body,
        headers=headers,
        # A retried message keeps the routing key it was first published with.
        routing_key=str(headers.get(ROUTING_KEY_HEADER) or method.routing_key),
        message_id=props.message_id,
        redelivered=bool(method.redelivered),
        content_type=props.content_type,
    )


class _Worker:
    """Handles chunks of one queue: ack, retry later, park or requeue."""

    def __init__(
        self, queue: str, handler: ChunkHandler, name: str, retry: RetryPolicy, metrics: Metrics
    ) -> None:
        self._queue = queue
        self._metrics = metrics
        self._handler = handler
        self._name = name
        self._retry = retry

    def loop(
        self,
        channel: BlockingChannel,
        side: BlockingChannel,
        keeper: HeartbeatKeeper,
        stop: threading.Event,
        *,
        chunk: int,
        idle: float,
    ) -> None:
        pending: list[tuple[int, Delivery]] = []
        for method, props, body in channel.consume(self._queue, inactivity_timeout=idle):
            if method is not None:
                pending.append((method.delivery_tag, _delivery(method, props, body)))
                if len(pending) < chunk:
                    continue
            if pending:
                self._handle(channel, side, keeper, pending)
                pending = []
            if stop.is_set():
                break
        channel.cancel()

    def handle_one(
        self,
        channel: BlockingChannel,
        side: BlockingChannel,
        keeper: HeartbeatKeeper,
        tag: int,
        delivery: Delivery,
    ) -> None:
        """One delivery, taken by `basic.get`: handled and acked as a chunk of one."""
        self._handle(channel, side, keeper, [(tag, delivery)])

    def _handle(
        self,
        channel: BlockingChannel,
        side: BlockingChannel,
        keeper: HeartbeatKeeper,
        pending: list[tuple[int, Delivery]],
    ) -> None:
        last_tag = pending[-1][0]
        try:
            # The connection answers heartbeats however long the handler takes.
            with keeper.busy():
                self._handler([delivery for _, delivery in pending])
        except TransientError as exc:
            keeper.raise_if_lost()  # nothing can be retried or acked on a connection gone
            log.warning("chunk.retry", queue=self._queue, size=len(pending), error=str(exc))
            for _, delivery in pending:
                self._retry_later(side, delivery, str(exc))
            channel.basic_ack(last_tag, multiple=True)
            return
        except Exception as exc:
            keeper.raise_if_lost()  # the chunk comes again on the next connection as it is
            log.warning("chunk.failed", queue=self._queue, size=len(pending), error=repr(exc))
            if len(pending) > 1:
                # Find the poison message: one at a time, so good neighbours are not parked.
                for tag, delivery in pending:
                    self._handle(channel, side, keeper, [(tag, delivery)])
                return
            delivery = pending[0][1]
            if isinstance(exc, PermanentError):
                park(side, self._queue, delivery, str(exc))
                self._metrics.message_parked(self._queue)
                channel.basic_ack(last_tag)
                return
            log.exception("message.failed", queue=self._queue, message_id=delivery.message_id)
            channel.basic_nack(last_tag, multiple=False, requeue=True)
            return
        keeper.raise_if_lost()
        crashpoints.hit(f"{self._name}.before_ack")
        channel.basic_ack(last_tag, multiple=len(pending) > 1)

    def _retry_later(self, side: BlockingChannel, delivery: Delivery, reason: str) -> None:
        retries = int(delivery.headers.get(RETRIES_HEADER, 0)) + 1
        if retries > self._retry.limit:
            park(
                side, self._queue, delivery, f"still failing after {retries - 1} retries: {reason}"
            )
            self._metrics.message_parked(self._queue)
            return
        delay = self._retry.delay(retries)
        headers = {
            **delivery.headers,
            RETRIES_HEADER: retries,
            ROUTING_KEY_HEADER: delivery.routing_key,
        }
        side.basic_publish(
            "",
            topology.retry_queue(self._queue),
            delivery.body,
            _properties(delivery, headers, expiration=str(int(delay * 1000))),
            mandatory=True,
        )
        self._metrics.transient_retry(self._queue)
        log.info(
            "message.retry_scheduled",
            queue=self._queue,
            message_id=delivery.message_id,
            retries=retries,
            delay_s=delay,
        )


def _properties(
    delivery: Delivery, headers: dict[str, Any], expiration: str | None = None
) -> pika.BasicProperties:
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=delivery.message_id,
        content_type=delivery.content_type,
        headers=headers,
        expiration=expiration,
    )


def park(channel: BlockingChannel, queue: str, delivery: Delivery, reason: str) -> None:
    """Put a message in `<queue>.parking` with the reason (on a confirming channel)."""
    headers = {
        **delivery.headers,
        PARKED_REASON_HEADER: reason[:1000],
        PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
        ROUTING_KEY_HEADER: delivery.routing_key,
    }
    channel.basic_publish(
        topology.PARKING_EXCHANGE,
        queue,
        delivery.body,
        _properties(delivery, headers),
        mandatory=True,
    )
    log.error("message.parked", queue=queue, message_id=delivery.message_id, reason=reason)
