"""Publishing with pipelined publisher confirms: many messages in flight on one channel.

Waiting for the broker's confirm after every message (pika's BlockingChannel in confirm mode)
caps a publisher at one round trip and one quorum-queue commit per message. Here messages are
handed to the broker up to `window` ahead of their confirms, and each confirm (single or
`multiple`) is matched to its message by delivery tag as it arrives: an ack confirms it, a nack
releases it for a later retry, and a `mandatory` message the broker returned (no queue bound) is
reported unroutable, its ack notwithstanding. Nothing is reported confirmed that the broker did
not confirm; messages whose connection or channel was lost before their confirm are reported
failed, to be sent again (consumers drop duplicates by message id).

The connection is the one `gateway.adapters.rabbitmq.connect` opens; only the channel's confirm
handling lives here. pika's BlockingConnection offers no public way to publish on a confirming
channel without awaiting each confirm, so the channel's underlying asynchronous channel is used,
its events pumped by `process_data_events`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from gateway import crashpoints
from gateway.adapters.amqp_connect import LINKS
from gateway.adapters.amqp_frames import publish_frames
from gateway.adapters.rabbitmq import UNCONFIRMED, connect
from gateway.errors import PermanentError, TransientError
from gateway.metrics import NO_METRICS, Metrics

log = structlog.get_logger("gateway.rabbitmq")

# Bytes of frames gathered before they are written to the socket (and confirms read).
_FLUSH_BYTES = 128 * 1024


@dataclass
class Confirmations:
    """What became of submitted messages, by the token each was submitted with."""

    # Confirmed by the broker (acked, not returned), in the order the confirms arrived.
    confirmed: list[Hashable] = field(default_factory=list)
    # Seconds from each confirmed message's hand-over to its confirm, in the same order.
    latencies: list[float] = field(default_factory=list)
    # Returned by the broker as unroutable (no queue bound): a permanent fault, with the reason.
    unroutable: list[tuple[Hashable, str]] = field(default_factory=list)
    # Nacked, or their connection lost before the confirm: to be sent again, with the reason.
    failed: list[tuple[Hashable, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.confirmed) + len(self.unroutable) + len(self.failed)


class PipelinedPublisher:
    """Publishes persistent, `mandatory` messages with up to `window` confirms outstanding.

    One connection, used by one thread. `submit` hands a message over (waiting only while the
    window is full), `take` returns what was settled since the last `take`, `flush` waits until
    every submitted message is settled (or, `through=handed` read earlier, every message handed
    over until then: the ones handed over since stay in flight) and returns the same.
    `publish` is one message, confirmed before it returns, for callers that send one at a time.
    """

    def __init__(
        self,
        url: str,
        *,
        window: int = 1000,
        confirm_timeout: float = 30.0,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._url = url
        self._window = max(1, window)
        self._confirm_timeout = confirm_timeout
        self._metrics = metrics
        self._link: str | None = None
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._impl: Any = None  # the asynchronous pika.channel.Channel under self._channel
        self._tag = 0
        # Messages handed over since the publisher was made (`handed`): delivery tags start
        # again on each channel, this count never does.
        self._handed = 0
        # Delivery tag -> (token, message id, when handed over, its number in `handed`), in
        # tag order, which is the order they were handed over.
        self._inflight: OrderedDict[int, tuple[Hashable, str, float, int]] = OrderedDict()
        self._returned: dict[str, str] = {}
        self._settled = Confirmations()
        self._selected = False
        # Frames of messages handed over, written to the socket together (see _coalesce).
        self._frames: list[bytes] = []
        self._frame_bytes = 0
        self._emit: Any = None
        self._collecting = False

    # --- the connection -------------------------------------------------------------------

    def _ensure(self) -> Any:
        if self._impl is not None and self._impl.is_open and self._conn is not None:
            return self._impl
        self._lose("connection reopened")
        # Named by its thread in LINKS: the node it is on and its failovers (amqp_connect).
        self._link = self._link or threading.current_thread().name
        self._conn = connect(self._url, self._link)
        self._channel = self._conn.channel()
        impl = self._channel._impl
        self._selected = False
        impl.add_on_return_callback(self._on_return)
        impl.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_select_ok)
        deadline = time.monotonic() + self._confirm_timeout
        while not self._selected:
            if time.monotonic() > deadline or not impl.is_open:
                self._lose("confirm mode not granted")
                raise TransientError("broker did not grant confirm mode")
            self._conn.process_data_events(0.01)
        self._impl = impl
        self._tag = 0
        self._coalesce(self._conn)
        return impl

    def _coalesce(self, conn: pika.BlockingConnection) -> None:
        """Gather the frames of the messages handed over and write them in one piece per
        `_FLUSH_BYTES` (pika writes each frame with a system call of its own: three a message).
        The bytes on the wire are the same; other frames (heartbeats) pass straight through."""
        impl_conn = conn._impl
        emit = impl_conn._output_marshaled_frames
        self._frames, self._frame_bytes, self._emit = [], 0, emit

        def output(frames: list[bytes]) -> None:
            if self._collecting:
                self._frames.extend(frames)
                self._frame_bytes += sum(len(f) for f in frames)
            else:
                self._write_frames()
                emit(frames)

        self._collecting = False
        impl_conn._output_marshaled_frames = output

    def _write_frames(self) -> None:
        if self._frames and self._emit is not None:
            frames, self._frames, self._frame_bytes = self._frames, [], 0
            self._emit([b"".join(frames)])

    def _on_select_ok(self, _frame: Any) -> None:
        self._selected = True

    def _lose(self, reason: str) -> None:
        """The connection is gone or given up: every unconfirmed message failed."""
        for token, *_ in self._inflight.values():
            self._settled.failed.append((token, reason))
        self._inflight.clear()
        self._returned.clear()
        if self._conn is not None:
            LINKS.lost(self._link or "")
            try:
                if self._conn.is_open:
                    self._conn.close()
            except AMQPError:
                pass
        self._conn = None
        self._channel = None
        self._impl = None

    def _pump(self, time_limit: float) -> None:
        """Send what is buffered and read the confirms that arrived (within `time_limit`)."""
        assert self._conn is not None
        try:
            self._write_frames()
            self._conn.process_data_events(time_limit)
        except AMQPError as exc:
            log.info("publisher.connection_lost", error=repr(exc), unconfirmed=len(self._inflight))
            self._metrics.broker_reconnect("publisher")
            self._lose(f"broker unavailable: {exc!r}")
            return
        if self._impl is not None and not self._impl.is_open:
            self._lose("channel closed by the broker")

    # --- the broker's answers ---------------------------------------------------------------

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        # A returned message is acked afterwards: remember it until its ack arrives.
        message_id = str(properties.message_id)
        self._returned[message_id] = (
            f"message {message_id} to {method.exchange}/{method.routing_key} has no queue to go to"
        )

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        last = int(method.delivery_tag)
        tags = [last] if not method.multiple else [t for t in self._inflight if t <= last]
        now = time.perf_counter()
        for tag in tags:
            entry = self._inflight.pop(tag, None)
            if entry is None:
                continue
            token, message_id, handed, _ = entry
            returned = self._returned.pop(message_id, None)
            if not acked:
                self._settled.failed.append((token, f"broker refused message {message_id}"))
            elif returned is not None:
                self._settled.unroutable.append((token, returned))
            else:
                self._settled.confirmed.append(token)
                self._settled.latencies.append(now - handed)

    # --- publishing --------------------------------------------------------------------------

    def submit(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: dict[str, Any] | None = None,
        content_type: str = "application/json",
        token: Hashable | None = None,
    ) -> None:
        """Hand one message to the broker; its fate comes back by `take` or `flush` under
        `token` (default: the message id). Waits only while `window` confirms are outstanding.
        A broker that cannot be reached now raises TransientError (nothing was handed over)."""
        while self._inflight and len(self._inflight) >= self._window:
            self._pump(0.002)
        try:
            impl = self._ensure()
            frames = publish_frames(
                impl.channel_number,
                exchange,
                routing_key,
                body,
                message_id=message_id,
                content_type=content_type,
                headers=headers or {},
                body_max=impl.connection._body_max_length,
            )
            if frames is not None and impl.is_open:
                # The frames pika would write (see gateway/adapters/amqp_frames.py).
                self._frames.append(frames)
                self._frame_bytes += len(frames)
            else:
                self._publish_by_pika(
                    impl, exchange, routing_key, body, message_id, content_type, headers
                )
        except AMQPError as exc:
            self._lose(f"broker unavailable: {exc!r}")
            raise TransientError(f"broker unavailable: {exc!r}") from exc
        self._tag += 1
        self._handed += 1
        self._inflight[self._tag] = (
            message_id if token is None else token,
            message_id,
            time.perf_counter(),
            self._handed,
        )
        if crashpoints.armed(UNCONFIRMED):
            assert self._conn is not None
            self._write_frames()
            self._conn._flush_output(lambda: True)
        crashpoints.hit(UNCONFIRMED)
        if self._frame_bytes >= _FLUSH_BYTES:
            self._pump(0)

    def _publish_by_pika(
        self,
        impl: Any,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str,
        content_type: str,
        headers: dict[str, Any] | None,
    ) -> None:
        """A message of another shape than `publish_frames` writes: pika marshals it."""
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            content_type=content_type,
            headers=headers or {},
        )
        self._collecting = True
        try:
            impl.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        finally:
            self._collecting = False

    def take(self) -> Confirmations:
        """What was settled since the last call (reading the confirms that arrived)."""
        if self._conn is not None and self._inflight:
            self._pump(0)
        settled, self._settled = self._settled, Confirmations()
        return settled

    @property
    def handed(self) -> int:
        """How many messages were handed over so far (for `flush(through=...)`)."""
        return self._handed

    def flush(self, timeout: float | None = None, through: int | None = None) -> Confirmations:
        """Wait until every submitted message is settled, or (`through`, a `handed` read
        earlier) every message handed over until then; returns what was settled meanwhile,
        of any message. Messages still unconfirmed after `timeout` seconds are reported failed
        (the connection is dropped with them, and every other unconfirmed message)."""
        deadline = time.monotonic() + (self._confirm_timeout if timeout is None else timeout)
        while self._inflight and (through is None or self._oldest() <= through):
            if time.monotonic() > deadline:
                self._lose(f"no confirm within {self._confirm_timeout:.0f} s")
                break
            self._pump(0.01)
        return self.take()

    def _oldest(self) -> int:
        """The hand-over number of the oldest message in flight."""
        return next(iter(self._inflight.values()))[3]

    @property
    def outstanding(self) -> int:
        """Messages handed over and not yet settled."""
        return len(self._inflight)

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
        """Publish one message and return once the broker confirmed it (PermanentError when no
        queue takes it, TransientError when it is refused or the broker is away)."""
        self.submit(
            exchange,
            routing_key,
            body,
            message_id=message_id,
            headers=headers,
            content_type=content_type,
            token=message_id,
        )
        settled = self.flush()
        for _, reason in settled.unroutable:
            raise PermanentError(reason)
        for _, reason in settled.failed:
            raise TransientError(reason)

    def keepalive(self) -> None:
        """Let the connection answer heartbeats while there is nothing to publish."""
        if self._conn is not None:
            self._pump(0)

    def close(self) -> None:
        """Close the connection; unconfirmed messages are reported failed by the next `take`."""
        self._lose("publisher closed")
