"""The benchmark's ledger stand-in reads the ledger's queue (`treasury.ledger.postings`) through
this small AMQP 0-9-1 consumer rather than through pika.

The real ledger runs on the treasury's machines; in `scripts/bench_e2e` its stand-in shares the
gateway's two cores, and what it spends there is taken from the gateway. Through pika (the
gateway's `consume`) it spent about 50 µs of CPU a posting (100,000 postings: 4.98 and 5.32
CPU-seconds in two runs on 2026-12-01), nearly all of it pika's generic decoding and dispatch
of each delivery's three frames; this reads them in about 10 µs (0.92 and 0.98 CPU-seconds,
the same queue and postings, alternated). It is measuring apparatus: the gateway's own
consumers all go through pika (`gateway/adapters/rabbitmq.py`), with its failover, heartbeats
and flow control. It connects to the first node a cluster URL names.

What it does: the AMQP handshake (PLAIN, heartbeats off), `basic.qos` and `basic.consume` on
one channel, then frames read off the socket: each `basic.deliver` with its content header and
body frames is one message; the bodies are handed over in chunks and acked together
(`multiple`, up to the last message read whole) after the handler returns, or when the queue
goes quiet. When stopped it closes the connection and reads on until the broker confirms the
close, so that its last ack has been taken; what was delivered but not handed over comes again.
Any other method from the broker (a channel or the connection closed, the consumer cancelled
because its queue was deleted, a login refused) ends the read with the broker's words; the
caller's runtime opens a new connection.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from pika import frame, spec
from pika.amqp_object import Method

from gateway.adapters.amqp_connect import broker_urls, node_of
from gateway.errors import GatewayError

_FRAME_HEADER = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">I")
_LONGLONG = struct.Struct(">Q")
_METHOD, _HEADER, _BODY, _HEARTBEAT = 1, 2, 3, 8
_FRAME_END = 0xCE
_DELIVER = (60 << 16) | 60
_CLOSE_OK = (10 << 16) | 51
_CHANNEL = 1
_READ_BYTES = 1 << 17
# Seconds to open the TCP connection; for the whole handshake; for the broker to confirm a close.
CONNECT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0
# What the broker is asked to do for this client: say why a login was refused (instead of
# dropping the connection), and cancel the consumer when its queue is deleted.
_CAPABILITIES = {"authentication_failure_close": True, "consumer_cancel_notify": True}

BodiesHandler = Callable[[list[bytes]], object]


class LedgerReadError(GatewayError):
    """The broker ended the read, or said something a consumer does not expect."""


class _Connection:
    """One AMQP connection with one channel, frames read from a buffer refilled from the socket."""

    def __init__(self, url: str, idle: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "amqp":
            raise LedgerReadError(
                f"the ledger reader speaks plain amqp:// only, not {parts.scheme}://"
            )
        self.node = node_of(url)
        address = (parts.hostname or "localhost", parts.port or 5672)
        try:
            self._sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise LedgerReadError(f"cannot reach the broker at {self.node}: {exc}") from None
        self.buf = bytearray()  # what came from the socket; frames read from `_pos` on
        self._pos = 0
        self.closed_by_broker = False
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.settimeout(min(idle, 1.0))
            self._handshake(
                unquote(parts.username or "guest"),
                unquote(parts.password or "guest"),
                unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
            )
        except BaseException:
            self._sock.close()
            raise
        self._sock.settimeout(idle)

    def _handshake(self, user: str, password: str, vhost: str) -> None:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        self._sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(spec.Connection.Start, deadline)
        self.send(
            spec.Connection.StartOk(
                client_properties={
                    "product": "gateway bench ledger",
                    "capabilities": _CAPABILITIES,
                },
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
                locale="en_US",
            ),
            channel=0,
        )
        tune = self.expect(spec.Connection.Tune, deadline)
        self.send(
            spec.Connection.TuneOk(channel_max=1, frame_max=tune.frame_max, heartbeat=0), channel=0
        )
        self.send(spec.Connection.Open(virtual_host=vhost), channel=0)
        self.expect(spec.Connection.OpenOk, deadline)
        self.send(spec.Channel.Open())
        self.expect(spec.Channel.OpenOk, deadline)

    def send(self, method: Method, channel: int = _CHANNEL) -> None:
        self._sock.sendall(frame.Method(channel, method).marshal())

    def next_frame(self) -> tuple[int, int, int] | None:
        """(type, start, end) of the next whole frame's payload in `self.buf`; None when the
        socket stays quiet for its timeout."""
        while True:
            buf, pos = self.buf, self._pos
            if len(buf) - pos >= 7:
                kind, _channel, size = _FRAME_HEADER.unpack_from(buf, pos)
                end = pos + 7 + size
                if len(buf) > end:
                    if buf[end] != _FRAME_END:
                        raise LedgerReadError(
                            f"a frame from the broker (type {kind}, {size} bytes) ends with byte"
                            f" 0x{buf[end]:02X}, not 0xCE: the stream is not AMQP 0-9-1"
                        )
                    self._pos = end + 1
                    return kind, pos + 7, end
            try:
                data = self._sock.recv(_READ_BYTES)
            except TimeoutError:
                return None
            if not data:
                raise LedgerReadError(f"the broker at {self.node} closed the connection")
            if self._pos:
                del self.buf[: self._pos]
                self._pos = 0
            self.buf += data

    def method(self, start: int, end: int) -> Method:
        """The method frame at `start:end`, decoded by pika's spec."""
        method_id = _METHOD_ID.unpack_from(self.buf, start)[0]
        known = spec.methods.get(method_id)
        if known is None:
            raise LedgerReadError(
                f"the broker sent an unknown method (class {method_id >> 16},"
                f" method {method_id & 0xFFFF})"
            )
        method = known()
        method.decode(bytes(self.buf[start:end]), 4)
        if isinstance(method, spec.Connection.Close):
            self.closed_by_broker = True
        return method

    def expect(self, kind: type[Method], deadline: float) -> Method:
        """The next method, which must be a `kind`; heartbeats skipped, waited for until
        `deadline` (monotonic)."""
        while True:
            found = self.next_frame()
            if found is None:
                if time.monotonic() > deadline:
                    raise LedgerReadError(f"no {kind.NAME} from the broker at {self.node} in time")
                continue
            if found[0] == _HEARTBEAT:
                continue
            if found[0] != _METHOD:
                raise LedgerReadError(
                    f"expected {kind.NAME}, the broker sent a frame of type {found[0]}"
                )
            method = self.method(found[1], found[2])
            if not isinstance(method, kind):
                raise LedgerReadError(f"expected {kind.NAME}, {_said(method)}")
            return method

    def close(self) -> None:
        """Close the connection: answer the broker's close, or ask for one and read on
        (deliveries dropped unacked) until the broker confirms it, its acks taken before."""
        try:
            if self.closed_by_broker:
                self.send(spec.Connection.CloseOk(), channel=0)
                return
            self.send(
                spec.Connection.Close(reply_code=200, reply_text="done", class_id=0, method_id=0),
                channel=0,
            )
            self._sock.settimeout(0.2)
            deadline = time.monotonic() + CLOSE_TIMEOUT
            while time.monotonic() < deadline:
                found = self.next_frame()
                if (
                    found is not None
                    and found[0] == _METHOD
                    and _METHOD_ID.unpack_from(self.buf, found[1])[0] == _CLOSE_OK
                ):
                    return
        except (OSError, LedgerReadError):
            pass
        finally:
            self._sock.close()


def _said(method: Method) -> str:
    """What a method from the broker says, in words."""
    if isinstance(method, spec.Basic.Cancel):
        return "the broker cancelled the consumer (its queue deleted?)"
    text = getattr(method, "reply_text", None)
    code = getattr(method, "reply_code", None)
    return f"the broker said {method.NAME} {code} {text}" if text is not None else method.NAME


def read_ledger(
    url: str,
    queue: str,
    handler: BodiesHandler,
    stop: threading.Event,
    *,
    prefetch: int,
    chunk: int,
    idle: float = 0.05,
) -> None:
    """Consume `queue` until `stop` is set: bodies to `handler` in chunks of up to `chunk` (no
    more than `prefetch`: a chunk must be able to fill), acked together after it returns, and
    whatever has come whole when the queue has been quiet for `idle` seconds."""
    if not 0 < chunk <= prefetch:
        raise ValueError(f"chunk {chunk} must be between 1 and prefetch {prefetch}")
    conn = _Connection(broker_urls(url)[0], idle)
    try:
        conn.send(spec.Basic.Qos(prefetch_count=prefetch))
        conn.expect(spec.Basic.QosOk, time.monotonic() + HANDSHAKE_TIMEOUT)
        conn.send(spec.Basic.Consume(queue=queue))
        conn.expect(spec.Basic.ConsumeOk, time.monotonic() + HANDSHAKE_TIMEOUT)
        _read(conn, handler, stop, chunk)
    finally:
        conn.close()


def _read(conn: _Connection, handler: BodiesHandler, stop: threading.Event, chunk: int) -> None:
    bodies: list[bytes] = []  # whole messages not yet handed over
    parts: list[bytes] = []  # the body frames of the message being read
    tag = 0  # the delivery being read
    done = 0  # the last delivery read whole: what an ack covers
    left = 0  # its body's bytes still to come

    def whole(body: bytes) -> None:
        nonlocal bodies, done
        bodies.append(body)
        done = tag
        if len(bodies) >= chunk:
            bodies = _handed(conn, handler, bodies, done)

    while not stop.is_set():
        found = conn.next_frame()
        if found is None:  # quiet: what has come whole is handled and acked
            bodies = _handed(conn, handler, bodies, done)
            continue
        kind, start, end = found
        buf = conn.buf
        if kind == _BODY:
            parts.append(bytes(buf[start:end]))
            left -= end - start
            if left <= 0:
                whole(parts[0] if len(parts) == 1 else b"".join(parts))
                parts = []
        elif kind == _HEADER:
            left = _LONGLONG.unpack_from(buf, start + 4)[0]
            if left == 0:
                whole(b"")
        elif kind == _METHOD:
            if _METHOD_ID.unpack_from(buf, start)[0] != _DELIVER:
                raise LedgerReadError(_said(conn.method(start, end)))
            tag_at = start + 5 + buf[start + 4]  # past the consumer tag
            tag = _LONGLONG.unpack_from(buf, tag_at)[0]
        elif kind != _HEARTBEAT:
            raise LedgerReadError(f"the broker sent a frame of unknown type {kind}")
    _handed(conn, handler, bodies, done)


def _handed(
    conn: _Connection, handler: BodiesHandler, bodies: list[bytes], done: int
) -> list[bytes]:
    """Hand the chunk over, then ack it (every delivery up to `done`); the next chunk's list."""
    if bodies:
        handler(bodies)
        conn.send(spec.Basic.Ack(delivery_tag=done, multiple=True))
    return []
