"""The benchmark's ledger stand-in reads `treasury.ledger` through this small AMQP 0-9-1
consumer rather than through pika.

The real ledger runs on the treasury's machines; in `scripts/bench_e2e` its stand-in shares the
gateway's two cores, and what it spends there is taken from the gateway. Through pika (the
gateway's `consume`) it spent about 50 µs of CPU a posting (100,000 postings: 4.98 and 5.32
CPU-seconds in two runs on 2026-12-01), nearly all of it pika's generic decoding and dispatch
of each delivery's three frames; this reads them in about 10 µs (0.92 and 0.98 CPU-seconds,
the same queue and postings, alternated). It is measuring apparatus: the gateway's own
consumers all go through pika (`gateway/adapters/rabbitmq.py`), with its failover, heartbeats
and flow control.

What it does: the AMQP handshake (PLAIN, heartbeats off), `basic.qos` and `basic.consume` on
one channel, then frames read off the socket: each `basic.deliver` with its content header and
body frames is one message; the bodies are handed over in chunks and acked together
(`multiple`) after the handler returns, or when the queue goes quiet. Any other method from the
broker (a channel or the connection closed, the consumer cancelled) ends the read with the
broker's words; the caller's runtime opens a new connection, and what was not acked comes again.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from pika import frame, spec
from pika.amqp_object import Method

from gateway.adapters.amqp_connect import broker_urls
from gateway.errors import GatewayError

_FRAME_HEADER = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">I")
_LONGLONG = struct.Struct(">Q")
_METHOD, _HEADER, _BODY, _HEARTBEAT = 1, 2, 3, 8
_FRAME_END = 0xCE
_DELIVER = (60 << 16) | 60
_CHANNEL = 1
_READ_BYTES = 1 << 17

BodiesHandler = Callable[[list[bytes]], object]


class LedgerReadError(GatewayError):
    """The broker ended the read, or said something a consumer does not expect."""


class _Connection:
    """One AMQP connection with one channel, frames read from a buffer refilled from the socket."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "amqp":
            raise LedgerReadError(
                f"the ledger reader speaks plain amqp:// only, not {parts.scheme}"
            )
        self._sock = socket.create_connection((parts.hostname or "localhost", parts.port or 5672))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.settimeout(timeout)
        self._buf = bytearray()
        self._pos = 0
        user = unquote(parts.username or "guest")
        password = unquote(parts.password or "guest")
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self._sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(spec.Connection.Start, wait=True)
        self.send(
            spec.Connection.StartOk(
                client_properties={"product": "gateway bench ledger"},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
                locale="en_US",
            ),
            channel=0,
        )
        tune = self.expect(spec.Connection.Tune, wait=True)
        self.send(
            spec.Connection.TuneOk(channel_max=1, frame_max=tune.frame_max, heartbeat=0), channel=0
        )
        self.send(spec.Connection.Open(virtual_host=vhost), channel=0)
        self.expect(spec.Connection.OpenOk, wait=True)
        self.send(spec.Channel.Open())
        self.expect(spec.Channel.OpenOk, wait=True)

    def send(self, method: Method, channel: int = _CHANNEL) -> None:
        self._sock.sendall(frame.Method(channel, method).marshal())

    def next_frame(self, wait: bool) -> tuple[int, int, int] | None:
        """(type, start, end) of the next whole frame's payload in `self.buf`; None when the
        socket stays quiet for its timeout and `wait` is false."""
        while True:
            buf, pos = self._buf, self._pos
            if len(buf) - pos >= 7:
                kind, _channel, size = _FRAME_HEADER.unpack_from(buf, pos)
                end = pos + 7 + size
                if len(buf) > end:
                    if buf[end] != _FRAME_END:
                        raise LedgerReadError("a frame from the broker lacks its end marker")
                    self._pos = end + 1
                    return kind, pos + 7, end
            try:
                data = self._sock.recv(_READ_BYTES)
            except TimeoutError:
                if wait:
                    continue
                return None
            if not data:
                raise LedgerReadError("the broker closed the connection")
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += data

    @property
    def buf(self) -> bytearray:
        return self._buf

    def method(self, start: int, end: int) -> Method:
        """The method frame at `start:end`, decoded by pika's spec."""
        method = spec.methods[_METHOD_ID.unpack_from(self._buf, start)[0]]()
        method.decode(bytes(self._buf[start:end]), 4)
        return method

    def expect(self, kind: type[Method], *, wait: bool) -> Method:
        while True:
            found = self.next_frame(wait)
            if found is None or found[0] == _HEARTBEAT:
                continue
            if found[0] != _METHOD:
                raise LedgerReadError(
                    f"expected {kind.NAME}, the broker sent a frame of type {found[0]}"
                )
            method = self.method(found[1], found[2])
            if not isinstance(method, kind):
                raise LedgerReadError(f"expected {kind.NAME}, the broker said {_said(method)}")
            return method

    def close(self) -> None:
        try:
            self.send(
                spec.Connection.Close(
                    reply_code=200, reply_text="bench done", class_id=0, method_id=0
                ),
                channel=0,
            )
            self._sock.settimeout(1.0)
            self.expect(spec.Connection.CloseOk, wait=False)
        except (OSError, LedgerReadError):
            pass
        finally:
            self._sock.close()


def _said(method: Method) -> str:
    text = getattr(method, "reply_text", None)
    code = getattr(method, "reply_code", None)
    return f"{method.NAME} {code} {text}" if text is not None else method.NAME


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
    """Consume `queue` until `stop` is set: bodies to `handler` in chunks of up to `chunk`,
    acked together after it returns (and when the queue has been quiet for `idle` seconds)."""
    conn = _Connection(broker_urls(url)[0], idle)
    try:
        conn.send(spec.Basic.Qos(prefetch_count=prefetch))
        conn.expect(spec.Basic.QosOk, wait=True)
        conn.send(spec.Basic.Consume(queue=queue))
        conn.expect(spec.Basic.ConsumeOk, wait=True)
        _read(conn, handler, stop, chunk)
    finally:
        conn.close()


def _read(conn: _Connection, handler: BodiesHandler, stop: threading.Event, chunk: int) -> None:
    bodies: list[bytes] = []  # whole messages not yet handed over
    parts: list[bytes] = []  # the body frames of the message being read
    tag = 0  # the delivery being read
    done = 0  # the last delivery read whole: what an ack covers
    left = 0
    while not stop.is_set():
        found = conn.next_frame(wait=False)
        if found is None:  # quiet: what has come whole is handled and acked
            bodies = _handed(conn, handler, bodies, done)
            continue
        kind, start, end = found
        buf = conn.buf
        if kind == _BODY:
            parts.append(bytes(buf[start:end]))
            left -= end - start
            if left <= 0:
                bodies.append(parts[0] if len(parts) == 1 else b"".join(parts))
                parts = []
                done = tag
                if len(bodies) >= chunk:
                    bodies = _handed(conn, handler, bodies, done)
        elif kind == _HEADER:
            left = _LONGLONG.unpack_from(buf, start + 4)[0]
            if left == 0:
                bodies.append(b"")
                done = tag
        elif kind == _METHOD:
            if _METHOD_ID.unpack_from(buf, start)[0] != _DELIVER:
                raise LedgerReadError(f"the broker said {_said(conn.method(start, end))}")
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
