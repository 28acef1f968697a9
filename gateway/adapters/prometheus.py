"""Prometheus metrics: the services' counters and timings, the database's and the broker's state
(gateway/adapters/prometheus_state.py), and the HTTP server of /metrics.

Everything here is named `kbnn_gateway_*` and kept in a registry of its own (never the library's
global one), so that several gateways in one process, as in tests, do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import start_http_server

from gateway.adapters.prometheus_state import (
    PREFIX,
    CertificateCollector,
    LinksCollector,
    ParkingCollector,
    StateCollector,
)
from gateway.adapters.topology import LEDGER_EXCHANGE, TO_BANK_EXCHANGE
from gateway.config import Settings
from gateway.service.ports import Queries


class PrometheusMetrics:
    """The `Metrics` port on prometheus_client counters and histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._intake = Counter(
            f"{PREFIX}_intake_messages",
            "Payment-order messages taken in, by result: new (stored), duplicate (same id and"
            " content again, a no-op), invalid (refused with a reason), conflict (same order_id,"
            " other content; refused).",
            ["result"],
            registry=registry,
        )
        self._intake_seconds = Histogram(
            f"{PREFIX}_intake_chunk_seconds",
            "Time to check, store and commit one chunk of orders taken from the broker.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self._build_seconds = Histogram(
            f"{PREFIX}_file_build_seconds",
            "Time to build, XSD-validate, sign and store one pain.001 file, by partner.",
            ["partner"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self._files_built = Counter(
            f"{PREFIX}_files_built",
            "Signed pain.001 files built and put in the outbox, by partner.",
            ["partner"],
            registry=registry,
        )
        self._files_sent = Counter(
            f"{PREFIX}_files_sent",
            "Payment files delivered to the partner (broker confirm or written to its folder),"
            " by partner; a resend after a crash counts again.",
            ["partner"],
            registry=registry,
        )
        self._postings = Counter(
            f"{PREFIX}_ledger_postings_sent",
            "Ledger postings confirmed by the broker on treasury.ledger, by kind.",
            ["kind"],
            registry=registry,
        )
        self._others = Counter(
            f"{PREFIX}_outbox_other_sent",
            "Other outbox messages confirmed by the broker (admin events), by exchange.",
            ["exchange"],
            registry=registry,
        )
        self._confirm_seconds = Histogram(
            f"{PREFIX}_relay_publish_confirm_seconds",
            "Time from handing an outbox message to the broker to its publisher confirm.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=registry,
        )
        self._reconnects = Counter(
            f"{PREFIX}_broker_reconnects",
            "Times a worker lost its broker connection and opened a new one, by worker.",
            ["worker"],
            registry=registry,
        )
        self._retries = Counter(
            f"{PREFIX}_transient_retries",
            "Messages that met a transient fault and were put in <queue>.retry, by queue.",
            ["queue"],
            registry=registry,
        )
        self._parked = Counter(
            f"{PREFIX}_messages_parked",
            "Messages parked in <queue>.parking with their reason for an admin, by queue.",
            ["queue"],
            registry=registry,
        )

    def intake_chunk(self, results: Sequence[str], seconds: float) -> None:
        """Count each message's result; time the chunk."""
        for result in results:
            self._intake.labels(result).inc()
        self._intake_seconds.observe(seconds)

    def file_built(self, partner: str, seconds: float) -> None:
        """Count and time one built file."""
        self._files_built.labels(partner).inc()
        self._build_seconds.labels(partner).observe(seconds)

    def outbox_sent(self, exchange: str, routing_key: str) -> None:
        """A file (by partner), a posting (by kind) or another message reached its destination."""
        if exchange == TO_BANK_EXCHANGE:
            self._files_sent.labels(routing_key).inc()
        elif exchange == LEDGER_EXCHANGE:
            self._postings.labels(routing_key.removeprefix("posting.")).inc()
        else:
            self._others.labels(exchange).inc()

    def publish_confirmed(self, seconds: float) -> None:
        """Time one publisher confirm."""
        self._confirm_seconds.observe(seconds)

    def broker_reconnect(self, worker: str) -> None:
        """Count one reconnect."""
        self._reconnects.labels(worker).inc()

    def transient_retry(self, queue: str) -> None:
        """Count one retry."""
        self._retries.labels(queue).inc()

    def message_parked(self, queue: str) -> None:
        """Count one parked message."""
        self._parked.labels(queue).inc()


def state_registry(queries: Queries, settings: Settings) -> CollectorRegistry:
    """A registry holding only the database's state (for `gateway metrics`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(queries, settings, max_age=0.0))
    return registry


def exposition(registry: CollectorRegistry) -> str:
    """The registry in Prometheus text format."""
    return generate_latest(registry).decode("utf-8")


def prometheus_metrics(queries: Queries, settings: Settings) -> PrometheusMetrics:
    """The services' metrics and the database's state, in one registry of their own."""
    metrics = PrometheusMetrics(CollectorRegistry(auto_describe=False))
    metrics.registry.register(StateCollector(queries, settings))
    metrics.registry.register(ParkingCollector(settings))
    metrics.registry.register(CertificateCollector(settings))
    metrics.registry.register(LinksCollector())
    ProcessCollector(registry=metrics.registry)  # process_* : CPU, resident memory, open files
    return metrics


def serve(metrics: PrometheusMetrics, address: str, port: int) -> Callable[[], None]:
    """Serve the registry on http://address:port/metrics in a thread; returns its stop function.

    Raises OSError when the port cannot be bound.
    """
    server, thread = start_http_server(port, addr=address, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
