"""`PipelinedPublisher.flush(through=n)` waits for the messages handed over up to `n` alone: the
broker's confirms are played in by a stand-in for the connection's pump, one a pump, so how
many pumps a flush waited for shows what it waited for."""

from __future__ import annotations

from types import SimpleNamespace

import pika
import pytest
from pika.frame import Method

from gateway.adapters.confirms import PipelinedPublisher


class _Publisher(PipelinedPublisher):
    """A publisher whose messages were handed over to a broker that confirms one at each pump,
    in order; `pumps` counts the pumps."""

    def __init__(self, count: int) -> None:
        super().__init__("amqp://unused", confirm_timeout=5.0)
        self._conn = SimpleNamespace(is_open=False)
        self.pumps = 0
        for n in range(1, count + 1):
            self._tag = self._handed = n
            self._inflight[n] = (f"row-{n}", f"m{n}", 0.0, n)

    def _pump(self, time_limit: float) -> None:
        self.pumps += 1
        if self._inflight:
            tag = next(iter(self._inflight))
            self._on_confirm(Method(1, pika.spec.Basic.Ack(delivery_tag=tag, multiple=False)))


def test_a_flush_through_a_count_returns_once_those_are_settled() -> None:
    publisher = _Publisher(10)
    first = publisher.flush(through=4)
    # Waited for four; what arrived with the last read (the fifth) comes back too.
    assert first.confirmed == [f"row-{n}" for n in range(1, 6)]
    assert publisher.outstanding == 5  # handed over after the count: still in flight
    rest = publisher.flush()
    assert rest.confirmed == [f"row-{n}" for n in range(6, 11)]
    assert publisher.outstanding == 0


def test_a_flush_through_a_count_already_settled_only_reads_what_arrived() -> None:
    publisher = _Publisher(5)
    assert publisher.flush(through=0).confirmed == ["row-1"]  # one read, no wait
    assert publisher.pumps == 1
    assert publisher.handed == 5


@pytest.mark.parametrize("through", [None, 3])
def test_confirms_that_never_come_fail_every_message_in_flight(through: int | None) -> None:
    """Past the timeout, the connection is given up: every unconfirmed message is failed, to be
    sent again, the ones after the count included."""

    class Silent(_Publisher):
        def _pump(self, time_limit: float) -> None:
            self.pumps += 1

    publisher = Silent(5)
    settled = publisher.flush(timeout=0.05, through=through)
    assert settled.confirmed == []
    assert [token for token, _ in settled.failed] == [f"row-{n}" for n in range(1, 6)]
    assert publisher.outstanding == 0
