"""A consumer's connection kept answering heartbeats while its thread handles a long chunk.

pika's BlockingConnection answers the broker's heartbeats only while its thread is inside pika.
A consumer handles each chunk in that thread, so a chunk that takes longer than about two
heartbeats (20 s with the gateway's 10 s: a 20,000-entry camt.054 applied while three instances
share two cores) went silent, and the broker closed the connection. The chunk's work was
committed but its ack lost, so the chunk and every delivery prefetched behind it came again and
were read a second time, only to be found done.

`HeartbeatKeeper.busy()` wraps a handler. After `GRACE_SECONDS` busy, a helper thread takes the
connection and lets pika answer heartbeats until the handler returns; the consumer's thread
takes the connection back only once the helper is out of pika. The connection is never used by
two threads at once, and the handler never touches it. A chunk handled within the grace costs
two notifications of the helper, which finds nothing to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from pika.exceptions import AMQPError

# How long a handler runs before the helper starts answering heartbeats (well inside the 10 s
# heartbeat), and how long each turn of pika's I/O loop may wait for a frame.
GRACE_SECONDS = 1.0
TURN_SECONDS = 0.5


def _nothing() -> None:
    """A callback that wakes pika's I/O loop, so the helper leaves it at once."""


class HeartbeatKeeper:
    """Answers one connection's heartbeats while its thread is busy in a handler."""

    def __init__(self, conn: Any, name: str) -> None:
        self._conn = conn
        self._cond = threading.Condition()
        # (number, start) of the handler running now; None between handlers.
        self._busy: tuple[int, float] | None = None
        self._count = 0
        self._pumping = False
        self._closed = False
        # Held by the helper while it is inside pika.
        self._inside = threading.Lock()
        # What the helper met on the connection (e.g. the broker gone): raised to the consumer.
        self._error: AMQPError | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}-heartbeats", daemon=True)
        self._thread.start()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Around a handler: the connection answers heartbeats while it runs, and is the
        caller's again when it returns or raises."""
        with self._cond:
            self._count += 1
            self._busy = (self._count, time.monotonic())
            self._cond.notify()
        try:
            yield
        finally:
            self._take_back()

    def raise_if_lost(self) -> None:
        """Raise what the helper met on the connection (the broker gone): the chunk's ack
        cannot reach the broker, and its deliveries come again on the next connection."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the helper (the connection is the caller's to close)."""
        with self._cond:
            self._closed = True
            self._busy = None
            self._cond.notify()
        self._thread.join(timeout=GRACE_SECONDS + TURN_SECONDS + 1.0)

    def _take_back(self) -> None:
        with self._cond:
            self._busy = None
            pumping = self._pumping
            self._cond.notify()
        if pumping:
            # A connection already gone ends the helper's turn by itself.
            with suppress(AMQPError):
                self._conn.add_callback_threadsafe(_nothing)
        with self._inside:
            pass  # the helper is out of pika

    def _run(self) -> None:
        while True:
            with self._cond:
                number = self._wait_past_grace()
                if number is None:
                    return
                self._pumping = True
                self._inside.acquire()
            try:
                self._answer(number)
            finally:
                with self._cond:
                    self._pumping = False
                self._inside.release()
            if self._error is not None:
                return

    def _wait_past_grace(self) -> int | None:
        """(Holding the condition) the number of a handler busy for GRACE_SECONDS; None once
        closed."""
        while True:
            while not self._closed and self._busy is None:
                self._cond.wait()
            if self._closed or self._busy is None:
                return None
            number, started = self._busy
            left = started + GRACE_SECONDS - time.monotonic()
            while left > 0 and self._busy is not None and self._busy[0] == number:
                self._cond.wait(left)
                left = started + GRACE_SECONDS - time.monotonic()
            if self._closed:
                return None
            if self._busy is not None and self._busy[0] == number:
                return number

    def _answer(self, number: int) -> None:
        """Turn pika's I/O loop until handler `number` has returned."""
        while True:
            try:
                self._conn.process_data_events(time_limit=TURN_SECONDS)
            except AMQPError as exc:
                self._error = exc
                return
            except Exception as exc:  # any other fault of pika's ends the connection too
                self._error = AMQPError(f"the connection's I/O loop failed: {exc!r}")
                return
            with self._cond:
                if self._busy is None or self._busy[0] != number:
                    return
