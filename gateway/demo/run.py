"""`gateway demo`: a month of Phú Lương's payments through the gateway and a simulated bank."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from gateway.adapters import topology
from gateway.adapters.filedrop import SIGNATURE_SUFFIX, LocalFolder
from gateway.adapters.rabbitmq import Publisher, connect, consume
from gateway.banksim.bank import AccountBook, RevenueItem
from gateway.banksim.files import TAKEN
from gateway.banksim.wiring import build_bank, publish_reply, start_bank
from gateway.bootstrap import build_gateway, declare_topology, start_gateway
from gateway.config import PartnerProfile, Settings
from gateway.demo import eod
from gateway.demo.ledger_sink import LedgerSink
from gateway.demo.month import DemoMonth, generate_month
from gateway.domain.orders import Budget, budget_line
from gateway.domain.states import TxState
from gateway.progress import Progress, quiet
from gateway.runtime import Runtime
from gateway.service.file_scanner import CLAIMED, FAILED, PROCESSED, REASON_SUFFIX
from gateway.service.overview import overview
from gateway.service.ports import Queries

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

    def bank_db_of(self, partner: str) -> Path:
        """The record of the bank simulator playing `partner`."""
        return self.bank_db if partner == "agribank" else self.root / f"bank-{partner}.db"

    def exchange(self, partner: str) -> Path:
        """The pair of folders shared with a file-exchange partner during the run."""
        return self.root / "exchange" / partner

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
    timeout: float = 140.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the whole flow and return the summary (see `summary`); `progress` shows how far it
    is (orders final of submitted, files sent, bank reports taken in) while it waits.

    The run's databases and the file-exchange folders are made afresh under `workdir` (default
    var/demo). The utility bills leave from the treasury's VietinBank account, over file
    exchange, when a `vietinbank` profile is configured; everything else goes to Agribank by
    message.
    """
    started = time.monotonic()
    paths = DemoPaths(workdir or settings.path("var/demo"))
    shutil.rmtree(paths.root, ignore_errors=True)
    if month is None:
        files_bank = "vietinbank" if "vietinbank" in settings.partners else "agribank"
        month = generate_month(bills_partner=files_bank)
    settings = demo_settings(settings, paths, month)
    gateway = build_gateway(settings)
    queries = gateway.storage.queries
    book = AccountBook(closed=month.closed_accounts, unknown=month.unknown_accounts)
    banks = {
        name: build_bank(settings, settings.partners[name], book, paths.bank_db_of(name))
        for name in month.partners
    }
    sink = LedgerSink(paths.ledger_db)
    runtime = Runtime()
    try:
        declare_topology(settings)
        _purge(settings)
        start_gateway(gateway, runtime)
        for name, bank in banks.items():
            start_bank(settings, settings.partners[name], bank, runtime)

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
        shown = progress or quiet()
        shown.update("publishing the month's orders", force=True)
        submitted = publish_orders(settings, month)
        log.info("demo.orders_published", orders=submitted)
        _report_revenue(settings, month.partner, banks[month.partner], month)
        expected = submitted + len(month.revenue)
        deadline = time.monotonic() + timeout

        def show() -> None:
            shown.update(how_far(queries, submitted))

        _wait_until(lambda: sink.count() >= expected and _all_final(queries), deadline, show)
        # Two benefits come back after payment, then each bank closes the day.
        returned = eod.return_payments(settings, queries, month.partner, banks[month.partner])
        expected += len(returned)
        _wait_until(
            lambda: sink.count() >= expected and _count(queries, "returned") >= len(returned),
            deadline,
            show,
        )
        statements = eod.send_statements(settings, banks)
        _wait_until(lambda: _statements(queries) >= statements, deadline, show)
        shown.done(how_far(queries, submitted))
    finally:
        runtime.stop()
    result = summary(queries, settings, sink, submitted, month)
    result["database"] = gateway.storage.kind
    gateway.storage.close()
    result["duration_s"] = round(time.monotonic() - started, 2)
    result["paid_twice"] = sum(len(bank.record.paid_twice()) for bank in banks.values())
    return result


def demo_settings(settings: Settings, paths: DemoPaths, month: DemoMonth) -> Settings:
    """The run's settings: its own database and folders, and the month's first morning as now.

    Orders are taken as arriving at 08:00 (Hà Nội) on the month's first day, so the partners'
    cut-offs and calendar keep the days the month asks for, whenever the demo is run.
    """
    partners = dict(settings.partners)
    for name, profile in partners.items():
        if profile.files is not None and profile.files.sftp is None:
            root = paths.exchange(name)
            folders = replace(
                profile.files, outbound=str(root / "to-bank"), inbound=str(root / "from-bank")
            )
            partners[name] = replace(profile, files=folders)
    first = min(date.fromisoformat(o["requested_execution_date"]) for o in month.orders)
    as_of = datetime.combine(first.replace(day=1), dt_time(8, 0), ZoneInfo("Asia/Ho_Chi_Minh"))
    db_url = settings.db_url
    if settings.database == "postgresql":
        # A schema of its own, made afresh like the SQLite file is.
        from gateway.adapters.persistence.postgres import fresh_schema  # noqa: PLC0415

        db_url = fresh_schema(settings.db_url, "gateway_demo")
    return replace(
        settings,
        db_path=str(paths.gateway_db),
        db_url=db_url,
        partners=partners,
        as_of=settings.as_of or as_of.isoformat(),
    )


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
    reply = bank.revenue_notification(items)
    publisher = Publisher(settings.amqp_url)
    try:
        publish_reply(publisher, partner, bank, reply)
    finally:
        publisher.close()


def _wait_until(
    done: Callable[[], bool], deadline: float, show: Callable[[], None] | None = None
) -> None:
    while time.monotonic() < deadline:
        if show is not None:
            show()
        if done():
            return
        time.sleep(0.25)
    log.error("demo.timeout")


def how_far(queries: Queries, submitted: int) -> str:
    """The run's progress in one line: orders in a final state (invalid ones included) of those
    submitted, files that reached their bank, bank reports taken in."""
    states = queries.orders_by_state()
    final = sum(states.get(state.value, 0) for state in (TxState.SETTLED, TxState.REJECTED))
    final += states.get(TxState.RETURNED.value, 0) + queries.invalid_count()
    files = sum(queries.sent_files_by_partner().values())
    reports = sum(n for _, _, n in queries.applied_by_type())
    return f"orders final {final:,} of {submitted:,}, files sent {files}, bank reports {reports}"


def _count(queries: Queries, state: str) -> int:
    return queries.orders_by_state().get(state, 0)


def _statements(queries: Queries) -> int:
    return sum(len(queries.statements_of_day(day)) for day in queries.statement_days())


def _all_final(queries: Queries) -> bool:
    waiting = {TxState.RECEIVED, TxState.BATCHED, TxState.SENT, TxState.ACKNOWLEDGED}
    return not any(n for state, n in queries.orders_by_state().items() if state in waiting)


def summary(
    queries: Queries, settings: Settings, sink: LedgerSink, submitted: int, month: DemoMonth
) -> dict[str, Any]:
    """Orders by state, rejections by reason, files, postings and VND totals that add up."""
    by_state = queries.orders_by_state()
    invalid = queries.invalid_count()
    if invalid:
        by_state["invalid"] = invalid
    reasons = queries.rejected_by_reason()

    def vnd(state: TxState | None = None) -> Decimal:
        orders = queries.orders_in_state(state, currency="VND")
        return sum((o.amount for o in orders), Decimal(0))

    postings = sink.by_kind()
    files_by_partner = queries.sent_files_by_partner()
    return {
        "orders_submitted": submitted,
        "orders_accepted": sum(n for s, n in by_state.items() if s != "invalid"),
        "by_state": dict(sorted(by_state.items())),
        "rejected_by_reason": dict(sorted(reasons.items(), key=lambda item: str(item[0]))),
        "files_sent": sum(files_by_partner.values()),
        "postings_by_kind": {k: v[0] for k, v in sorted(postings.items())},
        "postings_duplicated": sink.duplicates(),
        "accepted_vnd": int(vnd()),
        "settled_vnd": int(vnd(TxState.SETTLED)),
        "rejected_vnd": int(vnd(TxState.REJECTED)),
        "returned_vnd": int(vnd(TxState.RETURNED)),
        "posted_returned_vnd": int(postings.get("payment_returned", (0, Decimal(0)))[1]),
        **eod.reconciliation_summary(queries),
        "revenue_vnd": int(postings.get("revenue_collected", (0, Decimal(0)))[1]),
        "posted_settled_vnd": int(postings.get("payment_settled", (0, Decimal(0)))[1]),
        "posted_rejected_vnd": int(postings.get("payment_rejected", (0, Decimal(0)))[1]),
        "revenue_reported": len(month.revenue),
        "files_by_partner": files_by_partner,
        "orders_by_partner": queries.orders_by_partner(),
        "file_exchange": {
            name: exchange_counts(profile)
            for name, profile in sorted(settings.partners.items())
            if profile.files is not None and profile.files.sftp is None
        },
        **{
            key: value
            for key, value in overview(queries, settings).items()
            if key in ("outbox_parked", "quarantined_inbound", "unmatched_lines")
        },
    }


def exchange_counts(profile: PartnerProfile) -> dict[str, int]:
    """What lies in a local file-exchange partner's folders after the run."""
    assert profile.files is not None
    outbound = LocalFolder(Path(profile.files.outbound))
    inbound = LocalFolder(Path(profile.files.inbound))
    return {
        "payment_files_taken_by_bank": len(outbound.files(TAKEN)),
        "payment_files_waiting": len(outbound.files()),
        "reports_processed": len(
            [e for e in inbound.files(PROCESSED) if not e.name.endswith(SIGNATURE_SUFFIX)]
        ),
        "reports_failed": len(
            [e for e in inbound.files(FAILED) if not e.name.endswith(REASON_SUFFIX)]
        ),
        "reports_waiting": len(inbound.files()) + len(inbound.files(CLAIMED)),
    }


def render(result: dict[str, Any]) -> str:
    """The summary as a person reads it."""

    def money(value: int) -> str:
        return f"{value:,}".replace(",", ".") + " VND"

    lines = [
        "KBNN Phú Lương — one month through the bank gateway",
        f"  database                {result['database']:>8}",
        f"  orders submitted        {result['orders_submitted']:>8}"
        f"   (accepted {result['orders_accepted']},"
        f" invalid {result['by_state'].get('invalid', 0)})",
        "  orders by state",
        *(f"    {state:<20}{count:>8}" for state, count in result["by_state"].items()),
        "  rejections by reason",
        *(f"    {code!s:<20}{count:>8}" for code, count in result["rejected_by_reason"].items()),
        f"  files sent to the bank  {result['files_sent']:>8}",
        *(
            f"    {partner:<20}{count:>8}"
            for partner, count in sorted(result["files_by_partner"].items())
        ),
        *(
            f"  {name} folders: {c['payment_files_taken_by_bank']} payment files taken by the"
            f" bank, {c['reports_processed']} reports read, {c['reports_failed']} failed,"
            f" {c['payment_files_waiting'] + c['reports_waiting']} waiting"
            for name, c in result["file_exchange"].items()
        ),
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
        f"    returned              {money(result['returned_vnd']):>24}",
        f"    settled + rejected + returned"
        f" {money(result['settled_vnd'] + result['rejected_vnd'] + result['returned_vnd']):>18}",
        f"    revenue collected     {money(result['revenue_vnd']):>24}",
        f"  end-of-day statements   {result['statements']:>8}"
        f"   (reconciled {result['statements_reconciled']}"
        + (
            ": reconciliation OK)"
            if result["statements_reconciled"] == result["statements"]
            else f"; NOT reconciled: {', '.join(result['reconciliation_problems'])})"
        ),
        f"  finished in {result['duration_s']} s",
    ]
    return "\n".join(lines)
