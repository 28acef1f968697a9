"""`gateway demo`: a month of Phú Lương's payments through the gateway and a simulated bank."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from gateway.adapters import topology
from gateway.adapters.rabbitmq import Publisher, connect, consume
from gateway.banksim.bank import AccountBook, RevenueItem
from gateway.bootstrap import (
    build_bank,
    build_gateway,
    declare_topology,
    start_bank,
    start_gateway,
)
from gateway.config import Settings
from gateway.demo.ledger_sink import LedgerSink
from gateway.demo.month import DemoMonth, generate_month
from gateway.domain.orders import Budget, budget_line
from gateway.runtime import Runtime
from gateway.service.overview import overview

log = structlog.get_logger("gateway.demo")

DEMO_QUEUES = (
    topology.ORDERS_QUEUE,
    topology.LEDGER_QUEUE,
    topology.FROM_BANK_QUEUE,
)


@dataclass(frozen=True, slots=True)
class DemoPaths:
    """Where one demo run keeps its databases."""

    root: Path

    @property
    def gateway_db(self) -> Path:
        """The gateway's database."""
        return self.root / "gateway.db"

    @property
    def bank_db(self) -> Path:
        """The bank simulator's record."""
        return self.root / "bank.db"

    @property
    def ledger_db(self) -> Path:
        """The ledger sink's record."""
        return self.root / "ledger.db"


def _purge(settings: Settings) -> None:
    """Empty the demo's queues so a run starts from nothing left by an earlier, stopped run."""
    conn = connect(settings.amqp_url)
    try:
        channel = conn.channel()
        queues = [*DEMO_QUEUES, *(topology.bank_inbox(p) for p in settings.partners)]
        for queue in queues:
            channel.queue_purge(queue)
    finally:
        conn.close()


def publish_orders(settings: Settings, month: DemoMonth) -> int:
    """Publish the month's orders as the treasury core would (confirmed, persistent)."""
    publisher = Publisher(settings.amqp_url)
    try:
        for payload in month.orders:
            publisher.publish(
                topology.ORDERS_EXCHANGE,
                f"order.{payload['category']}",
                json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                message_id=payload["order_id"],
            )
        for index, body in enumerate(month.invalid_orders):
            publisher.publish(
                topology.ORDERS_EXCHANGE, "order.unknown", body, message_id=f"invalid-{index}"
            )
    finally:
        publisher.close()
    return len(month.orders) + len(month.invalid_orders)


def run_demo(
    settings: Settings,
    *,
    month: DemoMonth | None = None,
    workdir: Path | None = None,
    timeout: float = 110.0,
) -> dict[str, Any]:
    """Run the whole flow and return the summary (see `summary`).

    The run's databases are made afresh under `workdir` (default var/demo).
    """
    started = time.monotonic()
    paths = DemoPaths(workdir or settings.path("var/demo"))
    shutil.rmtree(paths.root, ignore_errors=True)
    settings = replace(settings, db_path=str(paths.gateway_db))
    month = month or generate_month()
    partner = settings.partners[month.partner]
    gateway = build_gateway(settings)
    book = AccountBook(closed=month.closed_accounts, unknown=month.unknown_accounts)
    bank = build_bank(settings, partner, book, paths.bank_db)
    sink = LedgerSink(paths.ledger_db)
    runtime = Runtime()
    try:
        declare_topology(settings)
        _purge(settings)
        start_gateway(gateway, runtime)
        start_bank(settings, partner, bank, runtime)

        def ledger(stop: threading.Event) -> None:
            consume(
                settings.amqp_url,
                topology.LEDGER_QUEUE,
                sink.handle,
                stop,
                prefetch=settings.prefetch,
                chunk=500,
            )

        runtime.add("ledger-sink", ledger)
        submitted = publish_orders(settings, month)
        log.info("demo.orders_published", orders=submitted)
        _report_revenue(settings, partner.name, bank, month)
        expected = submitted + len(month.revenue)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sink.count() >= expected and _all_final(gateway.db):
                break
            time.sleep(0.25)
        else:
            log.error("demo.timeout", postings=sink.count(), expected=expected)
    finally:
        runtime.stop()
    result = summary(gateway.db, settings, sink, submitted, month)
    result["duration_s"] = round(time.monotonic() - started, 2)
    result["paid_twice"] = len(bank.record.paid_twice())
    return result


def _report_revenue(settings: Settings, partner: str, bank: Any, month: DemoMonth) -> None:
    items = [
        RevenueItem(
            bank_ref=c.bank_ref,
            payer_name=c.payer_name,
            amount=format(c.amount, "f"),
            currency="VND",
            value_date=c.value_date,
            remittance=c.remittance,
            structured_ref=budget_line(Budget(**c.budget)),
        )
        for c in month.revenue
    ]
    reply_id, kind, body = bank.revenue_notification(items)
    publisher = Publisher(settings.amqp_url)
    try:
        publisher.publish(
            topology.FROM_BANK_EXCHANGE,
            partner,
            body,
            message_id=reply_id,
            headers={"partner": partner, "message_type": kind},
            content_type="application/xml",
        )
    finally:
        publisher.close()


def _all_final(db: Any) -> bool:
    rows = db.query(
        "SELECT COUNT(*) FROM orders WHERE state NOT IN ('settled', 'rejected', 'returned')"
    )
    return int(rows[0][0]) == 0


def summary(
    db: Any, settings: Settings, sink: LedgerSink, submitted: int, month: DemoMonth
) -> dict[str, Any]:
    """Orders by state, rejections by reason, files, postings and VND totals that add up."""
    by_state = {state: n for state, n in db.query("SELECT state, COUNT(*) FROM orders GROUP BY 1")}
    invalid = int(db.query("SELECT COUNT(*) FROM invalid_orders")[0][0])
    if invalid:
        by_state["invalid"] = invalid
    reasons = {
        code: n
        for code, n in db.query(
            "SELECT reason_code, COUNT(*) FROM orders WHERE state = 'rejected' GROUP BY 1"
        )
    }

    def vnd(state: str) -> Decimal:
        rows = db.query("SELECT amount FROM orders WHERE state = ? AND currency = 'VND'", (state,))
        return sum((Decimal(row[0]) for row in rows), Decimal(0))

    files = int(db.query("SELECT COUNT(*) FROM files WHERE sent_at IS NOT NULL")[0][0])
    postings = sink.by_kind()
    accepted_vnd = sum(
        (Decimal(row[0]) for row in db.query("SELECT amount FROM orders WHERE currency = 'VND'")),
        Decimal(0),
    )
    return {
        "orders_submitted": submitted,
        "orders_accepted": sum(n for s, n in by_state.items() if s != "invalid"),
        "by_state": dict(sorted(by_state.items())),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "files_sent": files,
        "postings_by_kind": {k: v[0] for k, v in sorted(postings.items())},
        "postings_duplicated": sink.duplicates(),
        "accepted_vnd": int(accepted_vnd),
        "settled_vnd": int(vnd("settled")),
        "rejected_vnd": int(vnd("rejected")),
        "revenue_vnd": int(postings.get("revenue_collected", (0, Decimal(0)))[1]),
        "posted_settled_vnd": int(postings.get("payment_settled", (0, Decimal(0)))[1]),
        "posted_rejected_vnd": int(postings.get("payment_rejected", (0, Decimal(0)))[1]),
        "revenue_reported": len(month.revenue),
        **{
            key: value
            for key, value in overview(db, settings).items()
            if key in ("outbox_parked", "quarantined_inbound", "unmatched_lines")
        },
    }


def render(result: dict[str, Any]) -> str:
    """The summary as a person reads it."""

    def money(value: int) -> str:
        return f"{value:,}".replace(",", ".") + " VND"

    lines = [
        "KBNN Phú Lương — one month through the bank gateway",
        f"  orders submitted        {result['orders_submitted']:>8}"
        f"   (accepted {result['orders_accepted']},"
        f" invalid {result['by_state'].get('invalid', 0)})",
        "  orders by state",
        *(f"    {state:<20}{count:>8}" for state, count in result["by_state"].items()),
        "  rejections by reason",
        *(f"    {code:<20}{count:>8}" for code, count in result["rejected_by_reason"].items()),
        f"  files sent to the bank  {result['files_sent']:>8}",
        "  ledger postings by kind",
        *(f"    {kind:<20}{count:>8}" for kind, count in result["postings_by_kind"].items()),
        f"  postings duplicated     {result['postings_duplicated']:>8}",
        f"  EndToEndIds paid twice  {result['paid_twice']:>8}",
        f"  waiting for an admin    {result['quarantined_inbound'] + result['unmatched_lines']:>8}"
        "   (quarantined files, unmatched report lines)",
        "  totals",
        f"    accepted orders       {money(result['accepted_vnd']):>24}",
        f"    settled               {money(result['settled_vnd']):>24}",
        f"    rejected              {money(result['rejected_vnd']):>24}",
        f"    settled + rejected    {money(result['settled_vnd'] + result['rejected_vnd']):>24}",
        f"    revenue collected     {money(result['revenue_vnd']):>24}",
        f"  finished in {result['duration_s']} s",
    ]
    return "\n".join(lines)
