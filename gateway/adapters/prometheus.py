"""Prometheus metrics: the services' counters and timings, and the database's state at scrape time.

Everything here is named `kbnn_gateway_*` and kept in a registry of its own (never the library's
global one), so that several gateways in one process, as in tests, do not collide.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import pika
from pika.exceptions import AMQPError
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server

from gateway.adapters.db import Database
from gateway.adapters.topology import (
    LEDGER_EXCHANGE,
    TO_BANK_EXCHANGE,
    consumed_queues,
    parking_queue,
)
from gateway.config import Settings
from gateway.domain.states import FileState, TxState
from gateway.service.clock import utcnow
from gateway.service.overview import overview

PREFIX = "kbnn_gateway"

# What a quarantined bank file's reason says, by class: the first class whose words appear wins.
REASON_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unknown_partner", ("unknown partner",)),
    ("reused_msg_id", ("reused msgid",)),
    ("signature", ("signature", "signed", "certificate", "digest", "ds:")),
    ("schema", ("fails its xsd",)),
    ("malformed", ("malformed xml", "doctype", "entity", "entities", "document is", "bytes;")),
    ("unsupported", ("not supported", "not a supported", "not a report", "expected a")),
)


def reason_class(reason: str) -> str:
    """The class of a quarantine reason, for a label with few values; `content` when none fits."""
    text = reason.lower()
    for name, words in REASON_CLASSES:
        if any(word in text for word in words):
            return name
    return "content"


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


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _age_seconds(created_at: str | None, now: datetime) -> float:
    if not created_at:
        return 0.0
    return max(0.0, (now - datetime.fromisoformat(created_at)).total_seconds())


class StateCollector:
    """The database's state as gauges, read at scrape time by a handful of indexed queries.

    Scrapes are serialised and a result younger than `max_age` seconds is served again, so that
    however often (or however many) Prometheus servers scrape, the database sees at most one
    scrape's queries per `max_age`. The connection is closed after each read: the HTTP server
    answers each scrape on a new thread.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_age: float = 1.0,
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        """The state gauges (from cache when fresh)."""
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= self._max_age:
                try:
                    self._cached = (time.monotonic(), self.read())
                finally:
                    self._db.close()
            return list(self._cached[1])

    def read(self) -> list[Metric]:
        """Read the state now: one overview and four small queries."""
        now = self._clock()
        seen = overview(self._db, self._settings, now)
        orders = GaugeMetricFamily(
            f"{PREFIX}_orders",
            "Payment orders by state (invalid: refused at intake), as the database holds them.",
            labels=["state"],
        )
        counts = {str(state): 0 for state in TxState} | seen["orders"]
        for state, n in sorted(counts.items()):
            orders.add_metric([state], n)
        files = GaugeMetricFamily(
            f"{PREFIX}_files", "Outbound payment files by state.", labels=["state"]
        )
        for state, n in sorted(({str(s): 0 for s in FileState} | seen["files"]).items()):
            files.add_metric([state], n)
        oldest = self._db.query(
            "SELECT created_at FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL"
            " ORDER BY id LIMIT 1"
        )
        applied = CounterMetricFamily(
            f"{PREFIX}_bank_reports_applied",
            "Bank files (pain.002, camt.054) verified, kept and applied, by partner and type.",
            labels=["partner", "message_type"],
        )
        for partner, kind, n in self._db.query(
            "SELECT partner, message_type, COUNT(*) FROM inbound_files GROUP BY 1, 2"
        ):
            applied.add_metric([partner, kind], n)
        quarantined = GaugeMetricFamily(
            f"{PREFIX}_bank_reports_quarantined",
            "Bank files refused whole and kept in quarantine for an admin, by partner and"
            " reason class (signature, schema, malformed, unsupported, unknown_partner,"
            " reused_msg_id, content).",
            labels=["partner", "reason"],
        )
        by_class: dict[tuple[str, str], int] = {}
        for partner, reason, n in self._db.query(
            "SELECT partner, reason, COUNT(*) FROM quarantine GROUP BY 1, 2"
        ):
            key = (partner, reason_class(reason))
            by_class[key] = by_class.get(key, 0) + n
        for key, n in sorted(by_class.items()):
            quarantined.add_metric(list(key), n)
        unmatched = GaugeMetricFamily(
            f"{PREFIX}_bank_lines_unmatched",
            "Lines of verified bank files that could not be applied, kept for an admin, by"
            " partner.",
            labels=["partner"],
        )
        for partner, n in self._db.query("SELECT partner, COUNT(*) FROM unmatched GROUP BY 1"):
            unmatched.add_metric([partner], n)
        return [
            orders,
            files,
            _gauge(
                "outbox_pending",
                "Outbox messages (files, postings, admin events) waiting to be sent.",
                seen["outbox_pending"],
            ),
            _gauge(
                "outbox_oldest_pending_age_seconds",
                "Age of the oldest outbox message waiting to be sent (0 when none waits).",
                _age_seconds(oldest[0][0] if oldest else None, now),
            ),
            _gauge(
                "outbox_parked",
                "Outbox messages the broker could not route, set aside for an admin (those an"
                " admin dropped with `gateway dlq drop` are not counted).",
                self._db.query(
                    "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NOT NULL"
                    " AND parked_why NOT LIKE 'dropped: %'"
                )[0][0],
            ),
            _gauge(
                "files_overdue",
                "Files sent without a status report within their partner's deadline.",
                seen["files_overdue"],
            ),
            applied,
            quarantined,
            unmatched,
        ]


class ParkingCollector:
    """How many messages wait in each `<queue>.parking`, asked of the broker at scrape time.

    One short-lived connection per reading (none between scrapes to keep alive), readings
    shared for `max_age` seconds; a broker that does not answer within `timeout` seconds gives
    `kbnn_gateway_broker_up 0` and no parking figures rather than a stuck scrape.
    """

    def __init__(self, settings: Settings, *, max_age: float = 5.0, timeout: float = 2.0) -> None:
        self._url = settings.amqp_url
        self._queues = consumed_queues(settings.partners)
        self._max_age = max_age
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        """The broker gauges (from cache when fresh)."""
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= self._max_age:
                self._cached = (time.monotonic(), self.read())
            return list(self._cached[1])

    def read(self) -> list[Metric]:
        """Ask the broker now."""
        parked = GaugeMetricFamily(
            f"{PREFIX}_parked_messages",
            "Messages waiting in <queue>.parking for an admin (`gateway dlq`), by queue; parked"
            " by the gateway with a reason or by the broker's delivery limit.",
            labels=["queue"],
        )
        params = pika.URLParameters(self._url)
        params.socket_timeout = self._timeout
        params.blocked_connection_timeout = self._timeout
        params.stack_timeout = self._timeout
        params.connection_attempts = 1
        params.client_properties = {"connection_name": "gateway:metrics"}
        up = 1.0
        try:
            conn = pika.BlockingConnection(params)
        except AMQPError:
            up = 0.0
        else:
            try:
                channel = conn.channel()
                for queue in self._queues:
                    try:
                        found = channel.queue_declare(parking_queue(queue), passive=True)
                    except pika.exceptions.ChannelClosedByBroker:
                        channel = conn.channel()  # not declared (yet): nothing parked there
                        continue
                    parked.add_metric([queue], found.method.message_count)
            except AMQPError:
                up = 0.0
            finally:
                try:
                    if conn.is_open:
                        conn.close()
                except AMQPError:
                    pass
        host = urllib.parse.urlparse(self._url).hostname or ""
        broker = GaugeMetricFamily(
            f"{PREFIX}_broker_up",
            "1 when the broker answered the last scrape's questions, 0 when it did not.",
            labels=["host"],
        )
        broker.add_metric([host], up)
        return [broker, parked]


def state_registry(db: Database, settings: Settings) -> CollectorRegistry:
    """A registry holding only the database's state (for `gateway metrics`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(db, settings, max_age=0.0))
    return registry


def exposition(registry: CollectorRegistry) -> str:
    """The registry in Prometheus text format."""
    return generate_latest(registry).decode("utf-8")


def prometheus_metrics(db: Database, settings: Settings) -> PrometheusMetrics:
    """The services' metrics and the database's state, in one registry of their own."""
    metrics = PrometheusMetrics(CollectorRegistry(auto_describe=False))
    metrics.registry.register(StateCollector(db, settings))
    metrics.registry.register(ParkingCollector(settings))
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
