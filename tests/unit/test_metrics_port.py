"""The metrics port: what the services tell it, and how the Prometheus adapter counts it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.adapters.prometheus import PrometheusMetrics
from gateway.config import Settings
from gateway.service.intake import IntakeService
from tests.unit.test_intake import body, order


@dataclass
class RecordingMetrics:
    """A fake Metrics keeping every call, for unit tests without a registry."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def intake_chunk(self, results: Sequence[str], seconds: float) -> None:
        self.calls.append(("intake_chunk", list(results)))

    def file_built(self, partner: str, seconds: float) -> None:
        self.calls.append(("file_built", partner))

    def outbox_sent(self, exchange: str, routing_key: str) -> None:
        self.calls.append(("outbox_sent", (exchange, routing_key)))

    def publish_confirmed(self, seconds: float) -> None:
        self.calls.append(("publish_confirmed", seconds >= 0))

    def broker_reconnect(self, worker: str) -> None:
        self.calls.append(("broker_reconnect", worker))

    def transient_retry(self, queue: str) -> None:
        self.calls.append(("transient_retry", queue))

    def message_parked(self, queue: str) -> None:
        self.calls.append(("message_parked", queue))


def test_intake_tells_each_result_of_a_committed_chunk(settings: Settings) -> None:
    """New, duplicate, invalid and conflict are told apart, once per committed chunk."""
    metrics = RecordingMetrics()
    intake = IntakeService(MemoryStorage(), settings, metrics=metrics)
    first = order()
    intake.handle([body(first), body(order(order_id="BTXH2611-000002"))])
    intake.handle(
        [
            body(first),  # the same again: a no-op
            body(order(amount="999000")),  # same order_id, other content
            body(order(order_id="BTXH2611-000003", currency="XXX")),
        ]
    )
    assert metrics.calls == [
        ("intake_chunk", ["new", "new"]),
        ("intake_chunk", ["duplicate", "conflict", "invalid"]),
    ]


def test_prometheus_counts_files_postings_and_faults() -> None:
    """Files are counted by partner, postings by kind, faults by queue or worker."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.intake_chunk(["new", "new", "conflict"], 0.02)
    metrics.file_built("agribank", 0.3)
    metrics.outbox_sent("gateway.to-bank", "agribank")
    metrics.outbox_sent("gateway.to-bank", "agribank")
    metrics.outbox_sent("treasury.ledger", "posting.payment_settled")
    metrics.outbox_sent("gateway.admin", "admin.file_overdue")
    metrics.publish_confirmed(0.004)
    metrics.broker_reconnect("intake")
    metrics.transient_retry("gateway.orders")
    metrics.message_parked("gateway.orders")
    metrics.message_parked("gateway.orders")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"kbnn_gateway_{name}", labels)

    assert value("intake_messages_total", result="new") == 2
    assert value("intake_messages_total", result="conflict") == 1
    assert value("intake_chunk_seconds_count") == 1
    assert value("intake_chunk_seconds_bucket", le="0.025") == 1
    assert value("intake_chunk_seconds_bucket", le="0.01") == 0
    assert value("files_built_total", partner="agribank") == 1
    assert value("file_build_seconds_bucket", partner="agribank", le="0.5") == 1
    assert value("files_sent_total", partner="agribank") == 2
    assert value("ledger_postings_sent_total", kind="payment_settled") == 1
    assert value("outbox_other_sent_total", exchange="gateway.admin") == 1
    assert value("relay_publish_confirm_seconds_count") == 1
    assert value("broker_reconnects_total", worker="intake") == 1
    assert value("transient_retries_total", queue="gateway.orders") == 1
    assert value("messages_parked_total", queue="gateway.orders") == 2


def test_an_order_refused_at_intake_keeps_its_reason_code(settings: Settings) -> None:
    """The outcome carries DUPL for a conflict and INVD for invalid input."""
    intake = IntakeService(MemoryStorage(), settings)
    intake.handle([body(order())])
    conflict, invalid = intake.handle([body(order(amount="1")), body({"schema": "x"})])
    assert (conflict.result, conflict.code) == ("invalid", "DUPL")
    assert (invalid.result, invalid.code) == ("invalid", "INVD")
    assert json.loads(body(order()).body)["order_id"] == conflict.order_id
