"""Metrics: what the services count and time for admins, through one small port.

The services and the broker adapter call a `Metrics`; the composition root gives them the
Prometheus one (gateway/adapters/prometheus.py) when metrics are served, and `NO_METRICS`, which
does nothing, otherwise. What the database already knows (orders and files by state, the outbox,
quarantined reports) is not counted here: the exporter reads it at scrape time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Metrics(Protocol):
    """Events worth counting or timing, told by the service or adapter where they happen."""

    def intake_chunk(self, results: Sequence[str], seconds: float) -> None:
        """A chunk of orders was committed: each message's result and the chunk's latency.

        Results are `new`, `duplicate`, `invalid` or `conflict` (same order_id, other content).
        """

    def file_built(self, partner: str, seconds: float) -> None:
        """A payment file was built, validated and signed (and committed) in `seconds`."""

    def outbox_sent(self, exchange: str, routing_key: str) -> None:
        """An outbox message reached its destination (broker confirm or partner folder)."""

    def publish_confirmed(self, seconds: float) -> None:
        """The broker confirmed one published message `seconds` after it was handed over."""

    def broker_reconnect(self, worker: str) -> None:
        """A worker lost its broker connection and opens a new one."""

    def transient_retry(self, queue: str) -> None:
        """A message met a transient fault and waits in `<queue>.retry` for another try."""

    def message_parked(self, queue: str) -> None:
        """A message was parked in `<queue>.parking` with its reason, for an admin."""


class NoMetrics:
    """The default: counts nothing (metrics disabled, unit tests, tools)."""

    def intake_chunk(self, results: Sequence[str], seconds: float) -> None:
        """Nothing."""

    def file_built(self, partner: str, seconds: float) -> None:
        """Nothing."""

    def outbox_sent(self, exchange: str, routing_key: str) -> None:
        """Nothing."""

    def publish_confirmed(self, seconds: float) -> None:
        """Nothing."""

    def broker_reconnect(self, worker: str) -> None:
        """Nothing."""

    def transient_retry(self, queue: str) -> None:
        """Nothing."""

    def message_parked(self, queue: str) -> None:
        """Nothing."""


NO_METRICS: Metrics = NoMetrics()


def intake_result(result: str, reason_code: str | None) -> str:
    """The intake metric's result of one outcome: an `invalid` refused as DUPL is a conflict."""
    return "conflict" if result == "invalid" and reason_code == "DUPL" else result
