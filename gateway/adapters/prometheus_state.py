"""What the database and the broker hold, read when Prometheus scrapes: orders and files by
state, the outbox, overdue files, bank reports, parked messages.

Each collector serialises its readings and serves a fresh one again for `max_age` seconds, so
that however often (or however many) Prometheus servers scrape, the database and the broker see
at most one reading's questions per `max_age`.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pika
from cryptography import x509
from pika.exceptions import AMQPError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.adapters.amqp_connect import LINKS, Links, node_of, parameters
from gateway.adapters.topology import consumed_queues, parking_queue
from gateway.config import Settings
from gateway.domain.states import FileState, TxState
from gateway.service.clock import utcnow
from gateway.service.overview import overview
from gateway.service.ports import Queries

PREFIX = "kbnn_gateway"


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _age_seconds(created_at: datetime | None, now: datetime) -> float:
    if created_at is None:
        return 0.0
    return max(0.0, (now - created_at).total_seconds())


class _CachedReading:
    """A collector whose reading is shared for `max_age` seconds: scrapes are serialised, and
    however often (or however many) Prometheus servers scrape, the source is read at most once
    per `max_age`. Subclasses say how to read."""

    def __init__(self, max_age: float) -> None:
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        """The gauges (from cache when fresh)."""
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= self._max_age:
                self._cached = (time.monotonic(), self.read())
            return list(self._cached[1])

    def read(self) -> list[Metric]:
        """Read the source now."""
        raise NotImplementedError


class StateCollector(_CachedReading):
    """The database's state as gauges, read at scrape time by a handful of queries (counting
    orders by state reads the table: no index names the state, see docs/storage.md, version 11).

    Scrapes are serialised and a result younger than `max_age` seconds is served again, so that
    however often (or however many) Prometheus servers scrape, the database sees at most one
    scrape's queries per `max_age`.
    """

    def __init__(
        self,
        queries: Queries,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_age: float = 1.0,
    ) -> None:
        self._queries = queries
        self._settings = settings
        self._clock = clock
        super().__init__(max_age)

    def read(self) -> list[Metric]:
        """Read the state now: one overview and four small queries."""
        now = self._clock()
        seen = overview(self._queries, self._settings, now)
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
        _, oldest = self._queries.outbox_pending()
        applied = CounterMetricFamily(
            f"{PREFIX}_bank_reports_applied",
            "Bank files (pain.002, camt.054, pacs.004, camt.053) verified, kept and applied, by"
            " partner and type.",
            labels=["partner", "message_type"],
        )
        for partner, kind, n in self._queries.applied_by_type():
            applied.add_metric([partner, kind], n)
        quarantined = GaugeMetricFamily(
            f"{PREFIX}_bank_reports_quarantined",
            "Bank files refused whole and kept in quarantine for an admin, by partner and"
            " reason class (limit, fault, signature, schema, malformed, unsupported,"
            " unknown_partner, reused_msg_id, content).",
            labels=["partner", "reason"],
        )
        for partner, reason_class, n in self._queries.quarantine_by_class():
            quarantined.add_metric([partner, reason_class], n)
        unmatched = GaugeMetricFamily(
            f"{PREFIX}_bank_lines_unmatched",
            "Lines of verified bank files that could not be applied, kept for an admin, by"
            " partner.",
            labels=["partner"],
        )
        for partner, n in sorted(self._queries.unmatched_by_partner().items()):
            unmatched.add_metric([partner], n)
        duplicates = CounterMetricFamily(
            f"{PREFIX}_bank_duplicate_file_answers",
            "Duplicate-file answers (pain.002 group RJCT, reason DUPL) banks gave to copies of"
            " our files; they move nothing, the files wait for the original's reports.",
            labels=["partner"],
        )
        for partner, n in sorted(self._queries.duplicate_answers_by_partner().items()):
            duplicates.add_metric([partner], n)
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
                _age_seconds(oldest, now),
            ),
            _gauge(
                "outbox_parked",
                "Outbox messages the broker could not route, set aside for an admin (status"
                " parked: `gateway dlq` lists them; those an admin dropped are not counted).",
                seen["outbox_parked"],
            ),
            _gauge(
                "files_overdue",
                "Files sent without a status report within their partner's deadline.",
                seen["files_overdue"],
            ),
            applied,
            quarantined,
            unmatched,
            duplicates,
        ]


class ParkingCollector(_CachedReading):
    """How many messages wait in each `<queue>.parking`, asked of the broker at scrape time.

    One short-lived connection per reading (none between scrapes to keep alive), readings
    shared for `max_age` seconds; a broker that does not answer within `timeout` seconds gives
    `kbnn_gateway_broker_up 0` and no parking figures rather than a stuck scrape.
    """

    def __init__(self, settings: Settings, *, max_age: float = 5.0, timeout: float = 2.0) -> None:
        self._urls = settings.amqp_urls
        self._queues = consumed_queues(settings.partners)
        super().__init__(max_age)
        self._timeout = timeout

    def read(self) -> list[Metric]:
        """Ask the broker now."""
        parked = GaugeMetricFamily(
            f"{PREFIX}_parked_messages",
            "Messages waiting in <queue>.parking for an admin (`gateway dlq`), by queue; parked"
            " by the gateway with a reason or by the broker's delivery limit.",
            labels=["queue"],
        )
        consumers = GaugeMetricFamily(
            f"{PREFIX}_queue_consumers",
            "Consumers attached to each queue the gateway or its partners consume (0 on"
            " gateway.orders or gateway.from-bank: no gateway instance is taking work).",
            labels=["queue"],
        )
        nodes = GaugeMetricFamily(
            f"{PREFIX}_broker_node_up",
            "Each configured broker node (host:port of a cluster's URLs): 1 when it accepted a"
            " connection at the last scrape, 0 when not.",
            labels=["node"],
        )
        up = 0.0
        for url in self._urls:
            answered = self._read_node(url, (parked, consumers) if up == 0.0 else None)
            nodes.add_metric([node_of(url)], 1.0 if answered else 0.0)
            up = max(up, 1.0 if answered else 0.0)
        host = urllib.parse.urlparse(self._urls[0]).hostname or ""
        broker = GaugeMetricFamily(
            f"{PREFIX}_broker_up",
            "1 when the broker (a node of it) answered the last scrape's questions, 0 when not.",
            labels=["host"],
        )
        broker.add_metric([host], up)
        read = [consumers, parked] if up else [parked]
        return [broker, nodes, *read] if len(self._urls) > 1 else [broker, *read]

    def _read_node(
        self, url: str, gauges: tuple[GaugeMetricFamily, GaugeMetricFamily] | None
    ) -> bool:
        """Connect to one node; with `gauges` (parked, consumers), read the parking queues and
        the consumers of each queue there. True when the node answered."""
        params = parameters(url, "gateway:metrics")
        params.socket_timeout = self._timeout
        params.blocked_connection_timeout = self._timeout
        params.stack_timeout = self._timeout
        params.connection_attempts = 1
        try:
            conn = pika.BlockingConnection(params)
        except AMQPError:
            return False
        try:
            if gauges is None:
                return True
            parked, consumers = gauges
            channel = conn.channel()
            for queue in self._queues:
                try:
                    attached = channel.queue_declare(queue, passive=True)
                    consumers.add_metric([queue], attached.method.consumer_count)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = conn.channel()  # not declared (yet): nobody consumes it
                    consumers.add_metric([queue], 0)
                try:
                    found = channel.queue_declare(parking_queue(queue), passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = conn.channel()  # not declared (yet): nothing parked there
                    continue
                parked.add_metric([queue], found.method.message_count)
            return True
        except AMQPError:
            return False
        finally:
            try:
                if conn.is_open:
                    conn.close()
            except AMQPError:
                pass


class LinksCollector:
    """Which broker node each of this process's connections is on, and their failovers (read
    from the process's LINKS at scrape time; nothing is asked of the broker)."""

    def __init__(self, links: Links = LINKS) -> None:
        self._links = links

    def collect(self) -> Iterable[Metric]:
        """One gauge per connection and node, and the failover and reconnect counters."""
        on = GaugeMetricFamily(
            f"{PREFIX}_broker_connection",
            "1 for the broker node (host:port) each worker's connection is on, 0 while it is"
            " disconnected (reconnecting).",
            labels=["worker", "node"],
        )
        failovers = CounterMetricFamily(
            f"{PREFIX}_broker_failovers",
            "Times a worker's connection was opened again on another node than before (a node"
            " of the cluster lost or unreachable).",
            labels=["worker"],
        )
        for link in self._links.snapshot():
            on.add_metric([link.worker, link.node], 1.0 if link.connected else 0.0)
            failovers.add_metric([link.worker], link.failovers)
        return [on, failovers]


class CertificateCollector(_CachedReading):
    """When the certificates the gateway relies on stop being valid: our signing certificates
    (current and next) in the keys folder, and each partner's pinned ones (the earlier of the
    certificate's own end and the pin's `not_after`). Files are read at most every `max_age`
    seconds; one that cannot be read is left out (the partner's reports are quarantined then,
    which has its own alert)."""

    def __init__(self, settings: Settings, *, max_age: float = 60.0) -> None:
        self._settings = settings
        super().__init__(max_age)

    def read(self) -> list[Metric]:
        """Read the certificates now."""
        gauge = GaugeMetricFamily(
            f"{PREFIX}_certificate_not_after_timestamp_seconds",
            "When a certificate stops being trusted (Unix time): ours (owner=treasury) and each"
            " partner's pinned ones; alert when less than 30 days remain.",
            labels=["owner", "name"],
        )
        settings = self._settings
        ours = settings.keys_path
        for stem in (settings.signing_key, f"{settings.signing_key}.next"):
            end = _not_after(ours / f"{stem}.cert.pem")
            if end is not None:
                gauge.add_metric(["treasury", stem], end.timestamp())
        for partner in sorted(settings.partners.values(), key=lambda p: p.name):
            for pinned in partner.signature.certificates:
                end = _not_after(settings.path(pinned.path))
                if end is None:
                    continue
                if pinned.not_after is not None:
                    end = min(end, pinned.not_after)
                gauge.add_metric([partner.name, Path(pinned.path).name], end.timestamp())
        return [gauge]


def _not_after(path: Path) -> datetime | None:
    """The end of a PEM certificate's validity, or None when it cannot be read."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc
