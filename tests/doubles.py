"""Test doubles shared by the suites: a broker delivery, a clock the test moves by hand, and a
pipelining publisher that confirms what it is given."""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway.adapters.confirms import Confirmations
from gateway.service.clock import utcnow

if TYPE_CHECKING:
    from gateway.bootstrap import Gateway


@dataclass
class Msg:
    """A broker delivery as the services see it (intake reads its body; inbound its headers
    and routing key too)."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    routing_key: str = "agribank"


class FakeClock:
    """A clock that stands still until the test moves it (`advance`): the batcher's quiet time
    passes at once instead of by sleeping, and no slow machine makes a group go quiet early.

    It starts at the real time, so that certificates and pins are judged as they are today.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


def pass_quiet_time(gateway: Gateway) -> None:
    """Move the gateway's clock past the batcher's quiet time: its groups are ready at once.
    The gateway must have been built on a FakeClock (`build_gateway(..., clock=FakeClock())`)."""
    clock = gateway.clock
    assert isinstance(clock, FakeClock), "build the gateway on a FakeClock to move its time"
    clock.advance(gateway.settings.batch_quiet_seconds + 0.1)


class ConfirmingBroker:
    """A pipelining publisher (`RelayService`'s) confirming what it is given, each message after
    `pause` seconds, until it is told to break: at the `breaks_at`-th message it raises `error`
    (what it took before stays confirmed). `published` lists the message ids it took.

    `flush(through=n)` confirms the first `n` messages handed over; `eager` confirms all it
    holds then, as a broker whose confirms of later messages arrived meanwhile. `flushes` lists
    the `through` of each flush."""

    def __init__(
        self,
        breaks_at: int | None = None,
        error: BaseException | None = None,
        pause: float = 0.0,
        eager: bool = False,
    ) -> None:
        self.published: list[str] = []
        self._breaks_at = breaks_at
        self._error = error or RuntimeError("the broker's client failed")
        self._pause = pause
        self._eager = eager
        self._tokens: list[tuple[int, Hashable]] = []  # (hand-over number, token), unconfirmed
        self.flushes: list[int | None] = []
        self.refusals = 0  # submits that raised `error`

    def submit(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> None:
        if self._breaks_at is not None and len(self.published) == self._breaks_at:
            self.refusals += 1
            raise self._error
        if self._pause:
            time.sleep(self._pause)
        self.published.append(kw["message_id"])
        self._tokens.append((len(self.published), kw["token"]))

    @property
    def handed(self) -> int:
        return len(self.published)

    def flush(self, timeout: float | None = None, through: int | None = None) -> Confirmations:
        self.flushes.append(through)
        last = None if self._eager else through
        confirmed = [token for n, token in self._tokens if last is None or n <= last]
        self._tokens = [(n, token) for n, token in self._tokens if last is not None and n > last]
        return Confirmations(confirmed=confirmed, latencies=[0.0] * len(confirmed))

    def publish(self, exchange: str, routing_key: str, body: bytes, **kw: Any) -> None:
        raise AssertionError("a pipelining publisher is given its messages by submit")

    def keepalive(self) -> None:
        """Nothing to keep alive."""
