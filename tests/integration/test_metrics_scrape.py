"""Metrics as Prometheus scrapes them: the gateway's services on a real broker, a simulated bank,
and /metrics read over HTTP on a free port."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.adapters import topology
from gateway.adapters.rabbitmq import Publisher, connect
from gateway.banksim.bank import AccountBook
from gateway.banksim.wiring import build_bank, start_bank
from gateway.bootstrap import build_gateway, declare_topology, start_gateway
from gateway.config import Settings
from gateway.metrics import NO_METRICS
from gateway.runtime import Runtime
from tests.conftest import ROOT
from tests.doubles import Msg
from tests.integration.test_cli import GATEWAY
from tests.unit.test_intake import order

# slow: a running gateway scraped over HTTP.
pytestmark = [pytest.mark.broker, pytest.mark.slow]

CLOSED = "8800000000001"  # the bank says this beneficiary's account is closed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    """A TCP port nobody listens on now (never the default 9464)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def scrape(port: int) -> Samples:
    """Every sample of http://127.0.0.1:port/metrics, by name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, None when absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


def _purge(settings: Settings) -> None:
    conn = connect(settings.amqp_url)
    try:
        channel = conn.channel()
        for queue in (
            topology.ORDERS_QUEUE,
            topology.LEDGER_QUEUE,
            topology.FROM_BANK_QUEUE,
            topology.bank_inbox("agribank"),
            topology.parking_queue(topology.ORDERS_QUEUE),
            topology.parking_queue(topology.FROM_BANK_QUEUE),
        ):
            channel.queue_purge(queue)
    finally:
        conn.close()


def _publish(settings: Settings, bodies: list[bytes]) -> None:
    publisher = Publisher(settings.amqp_url)
    try:
        for n, body in enumerate(bodies):
            publisher.publish(
                topology.ORDERS_EXCHANGE, "order.social_benefit", body, message_id=f"m{n}"
            )
    finally:
        publisher.close()


def test_a_scrape_shows_orders_files_and_postings(
    settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """Three orders (one to a closed account), a duplicate, a conflict and an invalid message:
    the scrape shows where each stands, the file sent and the postings by kind."""
    port = free_port()
    settings = replace(
        settings,
        partners={"agribank": settings.partners["agribank"]},
        metrics_port=port,
        metrics_address="127.0.0.1",
    )
    gateway = build_gateway(settings)
    bank = build_bank(
        settings,
        settings.partners["agribank"],
        AccountBook(closed=frozenset({CLOSED})),
        tmp_path / "bank.db",
    )
    orders = [
        order(order_id="M-1"),
        order(order_id="M-2", amount="606000"),
        order(
            order_id="M-3",
            creditor={
                "name": "Lò Văn Páo",
                "account": {"number": CLOSED, "scheme": "BBAN"},
                "agent_bic": "VBAAVNVX",
            },
        ),
    ]
    bodies = [json.dumps(o, ensure_ascii=False).encode() for o in orders]
    conflict = json.dumps(order(order_id="M-1", amount="1000000"), ensure_ascii=False).encode()
    runtime = Runtime()
    try:
        declare_topology(settings)
        _purge(settings)
        start_gateway(gateway, runtime)
        start_bank(settings, settings.partners["agribank"], bank, runtime)
        _publish(settings, [*bodies, bodies[0], conflict, b'{"schema": "payment-order/1"}'])
        parked = Publisher(settings.amqp_url)  # one message parked as the delivery limit would
        parked.publish(topology.PARKING_EXCHANGE, topology.ORDERS_QUEUE, b"{}", message_id="p1")
        parked.close()
        deadline = time.monotonic() + 30
        samples: Samples = {}
        while time.monotonic() < deadline:
            samples = scrape(port)
            posted = sum(v for (n, _), v in samples.items() if n.endswith("postings_sent_total"))
            # The state gauges are read at most once a second: wait for a reading where the
            # five stored orders (three valid, two refused) have all reached a final state.
            states = {k[1][0][1]: v for k, v in samples.items() if k[0] == "kbnn_gateway_orders"}
            final = sum(states.get(s, 0) for s in ("settled", "rejected", "returned", "invalid"))
            if (
                posted >= 5
                and sum(states.values()) == final == 5
                and not value(samples, "kbnn_gateway_outbox_pending")
            ):
                break
            time.sleep(0.2)
    finally:
        runtime.stop()
        _purge(settings)  # the parked message made above goes with the test

    assert value(samples, "kbnn_gateway_orders", state="settled") == 2
    assert value(samples, "kbnn_gateway_orders", state="rejected") == 1
    assert value(samples, "kbnn_gateway_orders", state="invalid") == 2
    assert value(samples, "kbnn_gateway_orders", state="received") == 0
    assert value(samples, "kbnn_gateway_intake_messages_total", result="new") == 3
    assert value(samples, "kbnn_gateway_intake_messages_total", result="duplicate") == 1
    assert value(samples, "kbnn_gateway_intake_messages_total", result="conflict") == 1
    assert value(samples, "kbnn_gateway_intake_messages_total", result="invalid") == 1
    assert value(samples, "kbnn_gateway_files_built_total", partner="agribank") == 1
    assert value(samples, "kbnn_gateway_files_sent_total", partner="agribank") == 1
    assert value(samples, "kbnn_gateway_files", state="sent") == 0
    postings = "kbnn_gateway_ledger_postings_sent_total"
    assert value(samples, postings, kind="payment_settled") == 2
    assert value(samples, postings, kind="payment_rejected") == 1
    assert value(samples, postings, kind="order_invalid") == 2
    # One confirm timed per message relayed: the file and the five postings.
    assert value(samples, "kbnn_gateway_relay_publish_confirm_seconds_count") == 6
    assert value(samples, "kbnn_gateway_file_build_seconds_count", partner="agribank") == 1
    assert (value(samples, "kbnn_gateway_intake_chunk_seconds_count") or 0) >= 1
    assert value(samples, "kbnn_gateway_outbox_oldest_pending_age_seconds") == 0
    assert value(samples, "kbnn_gateway_files_overdue") == 0
    reports = "kbnn_gateway_bank_reports_applied_total"
    assert value(samples, reports, partner="agribank", message_type="pain.002") == 1
    assert value(samples, reports, partner="agribank", message_type="camt.054") == 1
    assert value(samples, "kbnn_gateway_broker_up", host="127.0.0.1") == 1
    assert value(samples, "kbnn_gateway_parked_messages", queue=topology.ORDERS_QUEUE) == 1
    assert value(samples, "kbnn_gateway_parked_messages", queue=topology.FROM_BANK_QUEUE) == 0
    # Stopping the runtime stops the exporter: the port is free again.
    with pytest.raises(urllib.error.URLError):
        scrape(port)


def test_port_zero_serves_no_metrics(settings: Settings) -> None:
    """metrics_port = 0: the services count nothing and nothing listens."""
    gateway = build_gateway(replace(settings, metrics_port=0))
    assert gateway.metrics is NO_METRICS


def test_gateway_metrics_prints_the_state_once(settings: Settings, tmp_path: Path) -> None:
    """`gateway metrics` reads the database and prints its state, no server; none is an error."""
    home = tmp_path / "home"
    shutil.copytree(ROOT / "conf", home / "conf")
    env = {"GATEWAY_HOME": str(home), "PATH": str(Path(GATEWAY).parent)}
    missing = subprocess.run(
        [GATEWAY, "metrics"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no gateway database")
    assert "Traceback" not in missing.stderr
    gateway = build_gateway(replace(settings, db_path=str(home / "var" / "gateway.db")))
    gateway.intake.handle([Msg(json.dumps(order(order_id="C-1")).encode())])
    result = subprocess.run(
        [GATEWAY, "metrics"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert 'kbnn_gateway_orders{state="received"} 1.0' in result.stdout
    assert "# TYPE kbnn_gateway_outbox_pending gauge" in result.stdout
