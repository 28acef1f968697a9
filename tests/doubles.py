"""Test doubles shared by the suites: a broker delivery and a clock the test moves by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

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
