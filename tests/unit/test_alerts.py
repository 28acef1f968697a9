"""The alert rules and the Grafana dashboard that ship with the gateway: promtool accepts the
rules and their test cases fire as written, and both speak only of metrics the gateway serves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from gateway.adapters import prometheus_state
from gateway.adapters.persistence.memory import MemoryStorage
from gateway.adapters.prometheus import prometheus_metrics
from gateway.adapters.prometheus_state import CertificateCollector, ParkingCollector
from gateway.config import Settings

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "conf" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "conf" / "grafana" / "kbnn-gateway.json"
METRIC = re.compile(r"\b(kbnn_gateway_[a-z0-9_]+)")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool missing: scripts/test installs Debian's prometheus package"
        if os.environ.get("CI") or os.environ.get("GATEWAY_REQUIRE_BROKER"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class FakeChannel:
    """A broker channel whose queues all exist, with one consumer and nothing parked."""

    def queue_declare(self, queue: str, passive: bool = False) -> Any:
        return SimpleNamespace(method=SimpleNamespace(message_count=0, consumer_count=1))


class FakeConnection:
    is_open = True

    def __init__(self, _params: Any) -> None:
        pass

    def channel(self) -> FakeChannel:
        return FakeChannel()

    def close(self) -> None:
        pass


def served_names(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every sample name the gateway's /metrics can carry (counters with _total, histograms
    with _bucket, _sum and _count), from the registries themselves."""
    monkeypatch.setattr(prometheus_state.pika, "BlockingConnection", FakeConnection)
    metrics = prometheus_metrics(MemoryStorage().queries, settings)
    broker = CollectorRegistry(auto_describe=False)
    # Two broker URLs, as a cluster has: the per-node gauge is served then.
    cluster = replace(settings, amqp_url=f"{settings.amqp_url},{settings.amqp_url}")
    broker.register(ParkingCollector(cluster))
    broker.register(CertificateCollector(settings))
    names: set[str] = set()
    for registry in (metrics.registry, broker):
        for line in generate_latest(registry).decode().splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                names |= {
                    "counter": {name.removesuffix("_total") + "_total"},
                    "histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"},
                }.get(kind, {name})
    return names


def test_promtool_accepts_the_rules() -> None:
    """`promtool check rules` finds no error in conf/prometheus/alerts.yml."""
    done = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


def test_the_rules_fire_as_their_test_cases_say() -> None:
    """`promtool test rules`: overdue files, outbox lag, a consumer gone and a certificate
    ending within 30 days raise their alerts with the texts written."""
    done = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_cover_what_admins_must_hear_of() -> None:
    """Overdue files, outbox lag, parked messages, quarantines, a consumer down and a
    certificate expiring each have a rule."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"][0]["rules"]
    exprs = {rule["alert"]: rule["expr"] for rule in rules}
    for alert, metric in {
        "GatewayFileOverdue": "kbnn_gateway_files_overdue",
        "GatewayOutboxLagging": "kbnn_gateway_outbox_oldest_pending_age_seconds",
        "GatewayMessagesParked": "kbnn_gateway_parked_messages",
        "GatewayReportsQuarantined": "kbnn_gateway_bank_reports_quarantined",
        "GatewayConsumerDown": "kbnn_gateway_queue_consumers",
        "GatewayCertificateExpiring": "kbnn_gateway_certificate_not_after_timestamp_seconds",
    }.items():
        assert metric in exprs[alert], alert


def test_rules_and_dashboard_name_only_served_metrics(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kbnn_gateway_* name in the rules and the dashboard is one the gateway serves."""
    served = served_names(settings, monkeypatch)
    assert "kbnn_gateway_queue_consumers" in served
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 12
    used = set(METRIC.findall(" ".join(exprs))) | set(METRIC.findall(ALERTS.read_text()))
    assert used - served == set()
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))
