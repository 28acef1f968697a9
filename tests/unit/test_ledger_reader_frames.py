"""The benchmark ledger's AMQP reader against a scripted broker on a local socket: frames split
anywhere, a heartbeat, a pause in the middle of a message, an empty body, the broker closing.
What a real broker cannot be made to do on cue (tests/integration/test_bench_ledger_reader.py
runs the reader against RabbitMQ)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pika import frame, spec

from gateway.bench.ledger_reader import LedgerReadError, read_ledger

_HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"


class _Peer:
    """The broker's side of one connection: reads the client's frames, writes scripted ones."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def send(self, method: Any, channel: int = 0) -> None:
        self.sock.sendall(frame.Method(channel, method).marshal())

    def read(self, timeout: float | None = None) -> Any:
        """The client's next method (None when it sent nothing within `timeout`)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if len(self.buf) >= 7:
                    kind, _, size = struct.unpack_from(">BHI", self.buf)
                    if len(self.buf) >= 8 + size:
                        payload = bytes(self.buf[7 : 7 + size])
                        del self.buf[: 8 + size]
                        assert kind == 1, f"the client sent a frame of type {kind}"
                        method = spec.methods[struct.unpack_from(">I", payload)[0]]()
                        method.decode(payload, 4)
                        return method
                data = self.sock.recv(65536)
                if not data:
                    return None
                self.buf += data
        except TimeoutError:
            return None

    def acks(self, timeout: float) -> list[tuple[int, bool]]:
        """The acks the client sends until it has been quiet for `timeout`."""
        found = []
        while (method := self.read(timeout)) is not None:
            assert isinstance(method, spec.Basic.Ack), method
            found.append((method.delivery_tag, method.multiple))
        return found

    def open(self, log: dict[str, Any]) -> None:
        """The handshake up to the consumer's start, what the client said kept in `log`."""
        header = b""
        while len(header) < 8:
            header += self.sock.recv(8 - len(header))
        log["header"] = header
        self.send(spec.Connection.Start(server_properties={}, mechanisms="PLAIN", locales="en_US"))
        start_ok = self.read()
        log["response"] = start_ok.response
        log["capabilities"] = start_ok.client_properties["capabilities"]
        self.send(spec.Connection.Tune(channel_max=0, frame_max=0, heartbeat=0))
        tune_ok = self.read()
        log["tune"] = (tune_ok.frame_max, tune_ok.heartbeat)
        log["vhost"] = self.read().virtual_host
        self.send(spec.Connection.OpenOk())
        assert isinstance(self.read(), spec.Channel.Open)
        self.send(spec.Channel.OpenOk(), 1)
        log["prefetch"] = self.read().prefetch_count
        self.send(spec.Basic.QosOk(), 1)
        log["queue"] = self.read().queue
        self.send(spec.Basic.ConsumeOk(consumer_tag="ctag-1"), 1)


def _message(tag: int, body: bytes, frame_size: int = 10) -> bytes:
    deliver = spec.Basic.Deliver(
        consumer_tag="ctag-1", delivery_tag=tag, redelivered=False, exchange="x", routing_key="k"
    )
    out: bytes = frame.Method(1, deliver).marshal()
    out += frame.Header(1, len(body), spec.BasicProperties()).marshal()
    for at in range(0, len(body), frame_size):
        out += frame.Body(1, body[at : at + frame_size]).marshal()
    return out


def _run(
    script: Callable[[_Peer, dict[str, Any]], None],
    url_tail: str = "guest:guest@127.0.0.1:{port}/%2F",
    chunk: int = 100,
) -> tuple[list[list[bytes]], dict[str, Any], LedgerReadError | None]:
    """The reader against `script`, until the script ends the connection."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    log: dict[str, Any] = {}

    def serve() -> None:
        sock, _ = server.accept()
        with sock:
            peer = _Peer(sock)
            peer.open(log)
            script(peer, log)

    broker = threading.Thread(target=serve, daemon=True)
    broker.start()
    handed: list[list[bytes]] = []
    error = None
    try:
        read_ledger(
            "amqp://" + url_tail.format(port=port),
            "treasury.ledger.postings",
            lambda bodies: handed.append(list(bodies)),
            threading.Event(),
            prefetch=100,
            chunk=chunk,
        )
    except LedgerReadError as exc:
        error = exc
    broker.join(10)
    server.close()
    assert not broker.is_alive()
    return handed, log, error


def test_messages_split_anywhere_are_handed_whole_and_acked_once_whole() -> None:
    """Byte by byte, a heartbeat between messages, a pause inside a message's body frames, an
    empty body: each message handed over once, whole; no ack covers the message still arriving."""

    def script(peer: _Peer, log: dict[str, Any]) -> None:
        for byte in _message(1, "một".encode()):
            peer.sock.sendall(bytes([byte]))
        peer.sock.sendall(_HEARTBEAT)
        second = _message(2, b"A" * 25 + b"B" * 25)
        peer.sock.sendall(second[:-20])  # its last body frames held back
        log["acks in the pause"] = peer.acks(0.3)
        peer.sock.sendall(second[-20:] + _message(3, b""))
        log["acks after"] = peer.acks(0.3)
        peer.send(spec.Connection.Close(320, "CONNECTION_FORCED - shutdown", 0, 0))
        log["answer"] = peer.read(2)

    handed, log, error = _run(script, "us%40er:p%3Ass@127.0.0.1:{port}/v%2Fh")

    assert [body for chunk in handed for body in chunk] == [
        "một".encode(),
        b"A" * 25 + b"B" * 25,
        b"",
    ]
    assert log["acks in the pause"] == [(1, True)]
    assert log["acks after"] == [(3, True)]
    assert isinstance(log["answer"], spec.Connection.CloseOk)
    assert error is not None and "320 CONNECTION_FORCED - shutdown" in str(error)
    assert log["header"] == b"AMQP\x00\x00\x09\x01"
    assert log["response"] == b"\0us@er\0p:ss"
    assert log["vhost"] == "v/h"
    assert log["tune"] == (0, 0)
    assert log["capabilities"]["consumer_cancel_notify"] is True
    assert (log["prefetch"], log["queue"]) == (100, "treasury.ledger.postings")


def test_a_full_chunk_is_handed_over_without_waiting_for_quiet() -> None:
    def script(peer: _Peer, log: dict[str, Any]) -> None:
        peer.sock.sendall(b"".join(_message(tag, b"p%d" % tag) for tag in range(1, 8)))
        log["acks"] = peer.acks(0.3)
        peer.send(spec.Connection.Close(320, "CONNECTION_FORCED", 0, 0))
        peer.read(2)

    handed, log, _ = _run(script, chunk=3)

    assert [len(chunk) for chunk in handed] == [3, 3, 1]
    assert log["acks"] == [(3, True), (6, True), (7, True)]


def test_a_cancelled_consumer_ends_the_read_with_its_reason() -> None:
    def script(peer: _Peer, log: dict[str, Any]) -> None:
        peer.send(spec.Basic.Cancel(consumer_tag="ctag-1"), 1)
        log["close"] = peer.read(2)
        peer.send(spec.Connection.CloseOk())

    _, log, error = _run(script)

    assert error is not None and "cancelled the consumer" in str(error)
    assert isinstance(log["close"], spec.Connection.Close)


def test_a_stream_that_is_not_amqp_is_named() -> None:
    def script(peer: _Peer, log: dict[str, Any]) -> None:
        peer.sock.sendall(b"\x03\x00\x01\x00\x00\x00\x02hiX")
        peer.read(1)

    _, _, error = _run(script)

    assert error is not None and "ends with byte 0x58, not 0xCE" in str(error)


def test_a_broker_out_of_reach_is_named() -> None:
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(LedgerReadError, match=f"cannot reach the broker at 127.0.0.1:{port}"):
        read_ledger(
            f"amqp://127.0.0.1:{port}/", "q", lambda _: None, threading.Event(), prefetch=1, chunk=1
        )


def test_a_chunk_larger_than_the_prefetch_is_refused() -> None:
    """Refused before any connection is opened: the broker's port is never knocked on."""
    broker = socket.create_server(("127.0.0.1", 0))
    broker.setblocking(False)
    port = broker.getsockname()[1]
    with pytest.raises(ValueError, match="chunk 10 must be between 1 and prefetch 5"):
        read_ledger(
            f"amqp://127.0.0.1:{port}/",
            "q",
            lambda _: None,
            threading.Event(),
            prefetch=5,
            chunk=10,
        )
    with pytest.raises(BlockingIOError):
        broker.accept()  # no connection waiting
    broker.close()
