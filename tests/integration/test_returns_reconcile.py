"""Returns (pacs.004 and camt.054 RtrInf), end-of-day statements and `gateway reconcile`, on real
SQLite, real signatures and the bank simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.rabbitmq import Delivery, Publisher, connect, consume
from gateway.banksim.bank import AccountBook, BankSimulator
from gateway.banksim.messages import ReturnLine, StatementBalances, build_camt053, build_pacs004
from gateway.banksim.wiring import bank_keypair, build_bank
from gateway.bootstrap import Gateway, build_gateway
from gateway.config import Settings
from gateway.contracts import check_posting
from gateway.demo.month import generate_month
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.signing import sign
from tests.conftest import ROOT
from tests.doubles import FakeClock, Msg, pass_quiet_time

# slow: whole flows with the bank simulator.
pytestmark = pytest.mark.slow

GATEWAY = str(Path(sys.executable).parent / "gateway")
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class Paid:
    """Three social-benefit payments settled at Agribank, and the bank that paid them."""

    gateway: Gateway
    bank: BankSimulator
    settings: Settings
    orders: list[dict[str, Any]]
    day: date

    def apply(self, body: bytes, partner: str = "agribank") -> str:
        """Hand one bank file to the gateway's inbound service."""
        return self.gateway.inbound.apply(partner, body)

    def signed(self, root: Any, partner: str = "agribank") -> bytes:
        """A file as the partner's bank signs it."""
        return sign(root, bank_keypair(self.settings, self.settings.partners[partner]))

    def state(self, order_id: str) -> str:
        """Where one order stands."""
        [(state,)] = self.gateway.storage.query(
            "SELECT state FROM orders WHERE order_id = ?", (order_id,)
        )
        return str(state)

    def postings(self, kind: str) -> list[dict[str, Any]]:
        """Ledger postings of one kind in the outbox, each checked against ledger-posting/1."""
        rows = self.gateway.storage.query(
            "SELECT body FROM outbox WHERE routing_key = ? ORDER BY id", (f"posting.{kind}",)
        )
        postings = [json.loads(body) for (body,) in rows]
        for posting in postings:
            check_posting(posting)
        return postings

    def unmatched(self) -> list[str]:
        """Reasons of the lines kept aside."""
        return [
            r for (r,) in self.gateway.storage.query("SELECT reason FROM unmatched ORDER BY id")
        ]

    def reconcile(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`gateway reconcile ARGS` against this gateway's database."""
        return self.cli("reconcile", *args)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`gateway ARGS` against this gateway's database."""
        env = {
            **os.environ,
            "GATEWAY_HOME": str(ROOT),
            "GATEWAY_DB_PATH": str(self.settings.db_file),
        }
        return subprocess.run(
            [GATEWAY, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


@pytest.fixture
def paid(settings: Settings, tmp_path: Path) -> Paid:
    """Three orders intake → batch → bank → settled by the bank's camt.054."""
    gateway = build_gateway(settings, clock=FakeClock())
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    month = generate_month(beneficiaries=3)
    social = [o for o in month.orders if o["category"] == "social_benefit"][:3]
    gateway.intake.handle([Msg(json.dumps(o, ensure_ascii=False).encode()) for o in social])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(body,)] = gateway.storage.query("SELECT body FROM outbox WHERE exchange = 'gateway.to-bank'")
    for _, _, reply in bank.receive(bytes(body)):
        assert gateway.inbound.apply("agribank", reply) == "applied"
    [(day,)] = gateway.storage.query("SELECT DISTINCT value_date FROM orders")
    result = Paid(gateway, bank, settings, social, date.fromisoformat(day))
    assert {result.state(o["order_id"]) for o in social} == {"settled"}
    return result


def _pacs004(order: dict[str, Any], amount: str | None = None, ref: str = "R1") -> ReturnLine:
    return ReturnLine(
        return_id=f"VBA-RTR-{ref}",
        original_msg_id="ANY",
        original_end_to_end_id=order["order_id"],
        amount=Decimal(amount or order["amount"]),
        currency="VND",
        settlement_date=date(2026, 11, 20),
        reason_code="AC04",
        reason_text="Tài khoản đã đóng",
    )


def test_a_pacs004_returns_a_settled_payment_once(paid: Paid) -> None:
    """settled → returned with one payment_returned posting; the same file again is a no-op."""
    victim = paid.orders[0]
    _, kind, body = paid.bank.return_payment(victim["order_id"], "AC04")
    assert kind == "pacs.004"
    assert paid.apply(body) == "applied"
    assert paid.state(victim["order_id"]) == "returned"
    [posting] = paid.postings("payment_returned")
    assert posting["order_id"] == victim["order_id"]
    assert posting["amount"] == victim["amount"]
    assert posting["reason"]["code"] == "AC04"
    assert "closed account" in posting["reason"]["text"]
    assert posting["bank_ref"].startswith("VBA-RTR-")
    assert paid.apply(body) == "duplicate"
    # The order keeps its settlement's reference and value date for reconciliation.
    [(bank_ref, value_date)] = paid.gateway.storage.query(
        "SELECT bank_ref, value_date FROM orders WHERE order_id = ?", (victim["order_id"],)
    )
    assert (bank_ref.startswith("VBA"), value_date) == (True, paid.day.isoformat())
    assert len(paid.postings("payment_returned")) == 1


def test_a_late_camt054_return_after_pacs004_changes_nothing(paid: Paid) -> None:
    """A camt.054 credit with RtrInf for a payment returned already adds no posting."""
    victim = paid.orders[0]
    paid.apply(paid.bank.return_payment(victim["order_id"], "AC04")[2])
    late = Notification(
        msg_id="VBA-N-LATE",
        created_at=AT,
        account="7411058271001",
        entries=(
            Entry(
                amount=Decimal(victim["amount"]),
                currency="VND",
                credit_debit="CRDT",
                status="BOOK",
                booking_date=AT.date(),
                value_date=AT.date(),
                account_servicer_ref="VBA-N-LATE-1",
                details=(
                    EntryDetail(
                        amount=Decimal(victim["amount"]),
                        currency="VND",
                        end_to_end_id=victim["order_id"],
                        return_reason="AC04",
                    ),
                ),
            ),
        ),
    )
    assert paid.apply(paid.signed(build_camt054(late))) == "applied"
    assert paid.state(victim["order_id"]) == "returned"
    assert len(paid.postings("payment_returned")) == 1
    assert paid.gateway.storage.query("SELECT COUNT(*) FROM revenue") == [(0,)]


def test_a_camt054_return_carries_its_reason_text_to_the_posting(
    paid: Paid, tmp_path: Path
) -> None:
    """RtrInf Rsn/Prtry and AddtlInf of a camt.054 return reach the posting, the returns row and
    `gateway parse`."""
    victim = paid.orders[1]
    why = "Tài khoản người thụ hưởng đã đóng"
    notification = Notification(
        msg_id="VBA-N-RTR-1",
        created_at=AT,
        account="7411058271001",
        entries=(
            Entry(
                amount=Decimal(victim["amount"]),
                currency="VND",
                credit_debit="CRDT",
                status="BOOK",
                booking_date=AT.date(),
                value_date=AT.date(),
                account_servicer_ref="VBA-N-RTR-1-1",
                details=(
                    EntryDetail(
                        amount=Decimal(victim["amount"]),
                        currency="VND",
                        end_to_end_id=victim["order_id"],
                        return_reason="VBA-CLOSED",
                        return_reason_text=why,
                    ),
                ),
            ),
        ),
    )
    body = paid.signed(build_camt054(notification))
    assert paid.apply(body) == "applied"
    assert paid.state(victim["order_id"]) == "returned"
    [posting] = paid.postings("payment_returned")
    assert posting["reason"] == {"code": "VBA-CLOSED", "text": why}
    assert paid.gateway.storage.query("SELECT reason_code, reason_text FROM returns") == [
        ("VBA-CLOSED", why)
    ]
    kept = tmp_path / "camt054-return.xml"
    kept.write_bytes(body)
    parsed = paid.cli("parse", str(kept))
    assert parsed.returncode == 0, parsed.stderr
    [detail] = json.loads(parsed.stdout)["content"]["entries"][0]["details"]
    assert (detail["return_reason"], detail["return_reason_text"]) == ("VBA-CLOSED", why)


def test_returns_that_do_not_fit_are_kept_aside(paid: Paid, settings: Settings) -> None:
    """Another amount, an unknown payment, another partner's order: unmatched, nothing moves."""
    first, second = paid.orders[0], paid.orders[1]
    lines = [
        _pacs004(first, amount="1", ref="R1"),
        replace_id(_pacs004(second, ref="R2"), "NOT-OURS-9"),
    ]
    assert paid.apply(paid.signed(build_pacs004("VBA-RET-BAD", AT, lines))) == "applied"
    assert paid.state(first["order_id"]) == "settled"
    assert paid.unmatched() == [
        f"return of 1 VND differs from order {first['order_id']}'s {first['amount']} VND",
        "return (AC04) of an unknown payment NOT-OURS-9",
    ]
    vietinbank = paid.signed(build_pacs004("VTB-RET-1", AT, [_pacs004(second)]), "vietinbank")
    assert paid.apply(vietinbank, "vietinbank") == "applied"
    assert paid.unmatched()[-1] == (
        f"return of order {second['order_id']}, sent to agribank, not vietinbank"
    )
    assert paid.state(second["order_id"]) == "settled"
    assert paid.postings("payment_returned") == []


def test_a_return_before_settlement_is_kept_aside(settings: Settings) -> None:
    """A pacs.004 for an order still being batched moves nothing."""
    gateway = build_gateway(settings)
    order = generate_month(beneficiaries=1).orders[0]
    gateway.intake.handle([Msg(json.dumps(order, ensure_ascii=False).encode())])
    root = build_pacs004("VBA-RET-EARLY", AT, [_pacs004(order)])
    signed = sign(root, bank_keypair(settings, settings.partners["agribank"]))
    assert gateway.inbound.apply("agribank", signed) == "applied"
    [(reason,)] = gateway.storage.query("SELECT reason FROM unmatched")
    assert reason == f"return of order {order['order_id']}, which is received, not settled"


def replace_id(line: ReturnLine, end_to_end_id: str) -> ReturnLine:
    """The same return line naming another payment."""
    return replace(line, original_end_to_end_id=end_to_end_id)


def test_a_statement_is_kept_once_and_reconciles(paid: Paid) -> None:
    """The bank's end-of-day camt.053 is stored once and reconciles with the day's payments."""
    paid.apply(paid.bank.return_payment(paid.orders[0]["order_id"], "AC04", paid.day)[2])
    _, kind, body = paid.bank.statement(paid.day, Decimal(50_000_000))
    assert kind == "camt.053"
    assert paid.apply(body) == "applied"
    assert paid.apply(body) == "duplicate"
    assert paid.gateway.storage.query("SELECT COUNT(*) FROM statements") == [(1,)]
    assert paid.gateway.storage.query("SELECT COUNT(*) FROM statement_entries") == [(4,)]
    assert paid.state(paid.orders[1]["order_id"]) == "settled"  # evidence only
    result = paid.reconcile("--date", paid.day.isoformat(), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    [verdict] = json.loads(result.stdout)
    assert verdict["reconciled"] is True
    assert verdict["debits"]["matched"] == 3
    assert verdict["credits"]["matched"] == 1
    total = sum(Decimal(o["amount"]) for o in paid.orders)
    assert Decimal(verdict["debits"]["matched_sum"]) == total
    assert verdict["balance"]["ok"] is True
    text = paid.reconcile("--date", paid.day.isoformat(), "--partner", "agribank")
    assert text.returncode == 0 and "RECONCILED" in text.stdout


def test_reconcile_names_every_difference(paid: Paid) -> None:
    """Unknown entry, missing payment, other amount, unbalanced closing: exit 1, each listed."""
    first, second, third = paid.orders
    entries = (
        _entry("DBIT", first["amount"], first["order_id"], "S-1"),
        _entry("DBIT", "1", second["order_id"], "S-2"),
        _entry("DBIT", "777", "NOBODY-1", "S-3"),
    )
    statement = Notification(
        msg_id="VBA-EOD-X", created_at=AT, account="7411058271001", entries=entries
    )
    balances = StatementBalances(paid.day, Decimal(1000), Decimal(5))
    root = build_camt053(statement, "VBA-STM-X", balances)
    assert paid.apply(paid.signed(root)) == "applied"
    result = paid.reconcile("--date", paid.day.isoformat(), "--json")
    assert result.returncode == 1
    [verdict] = json.loads(result.stdout)
    debits = verdict["debits"]
    assert (debits["matched"], verdict["reconciled"]) == (1, False)
    assert [u["end_to_end_id"] for u in debits["unknown"]] == ["NOBODY-1"]
    assert [m["order_id"] for m in debits["mismatched"]] == [second["order_id"]]
    assert [m["order_id"] for m in debits["missing"]] == [third["order_id"]]
    assert verdict["balance"]["ok"] is False
    none = paid.reconcile("--date", "2020-01-01")
    assert none.returncode == 1
    assert none.stderr.strip() == "error: no camt.053 statement for 2020-01-01"


def _entry(credit_debit: str, amount: str, end_to_end_id: str, ref: str) -> Entry:
    return Entry(
        amount=Decimal(amount),
        currency="VND",
        credit_debit=credit_debit,
        status="BOOK",
        booking_date=AT.date(),
        value_date=AT.date(),
        account_servicer_ref=ref,
        details=(EntryDetail(amount=Decimal(amount), currency="VND", end_to_end_id=end_to_end_id),),
    )


def test_a_statement_resent_in_another_file_is_kept_once(paid: Paid) -> None:
    """The same statement id in a new file (another MsgId) adds no statement and no entry."""
    statement = Notification(
        msg_id="VBA-EOD-1",
        created_at=AT,
        account="7411058271001",
        entries=(_entry("DBIT", paid.orders[0]["amount"], paid.orders[0]["order_id"], "S-1"),),
    )
    balances = StatementBalances(paid.day, Decimal(1000), Decimal(999))
    first = build_camt053(statement, "VBA-STM-1", balances)
    again = build_camt053(replace(statement, msg_id="VBA-EOD-2"), "VBA-STM-1", balances)
    assert paid.apply(paid.signed(first)) == "applied"
    assert paid.apply(paid.signed(again)) == "applied"
    assert paid.gateway.storage.query("SELECT statement_id, msg_id FROM statements") == [
        ("VBA-STM-1", "VBA-EOD-1")
    ]
    assert paid.gateway.storage.query("SELECT COUNT(*) FROM statement_entries") == [(1,)]
    assert paid.gateway.storage.query(
        "SELECT COUNT(*) FROM inbound_files WHERE msg_id LIKE 'VBA-EOD-%'"
    ) == [(2,)]


def test_a_statement_of_another_account_is_quarantined(paid: Paid) -> None:
    """A camt.053 for an account not in the partner's profile is refused whole, with the reason."""
    statement = Notification(msg_id="VBA-EOD-9", created_at=AT, account="999999", entries=())
    root = build_camt053(
        statement, "VBA-STM-9", StatementBalances(paid.day, Decimal(0), Decimal(0))
    )
    assert paid.apply(paid.signed(root)) == "quarantined"
    [(reason,)] = paid.gateway.storage.query("SELECT reason FROM quarantine")
    assert "not one of agribank's accounts" in reason
    assert paid.gateway.storage.query("SELECT COUNT(*) FROM statements") == [(0,)]


@pytest.mark.broker
def test_a_return_and_a_statement_arrive_over_the_broker(paid: Paid, broker_url: str) -> None:
    """pacs.004 (twice) and camt.053 delivered by RabbitMQ to the inbound service: the order is
    returned once, the statement kept, and every delivery acknowledged after its commit."""
    name = f"test.{uuid.uuid4().hex[:8]}"
    conn = connect(broker_url)
    channel = conn.channel()
    channel.exchange_declare(name, "direct", auto_delete=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, name, routing_key="agribank")
    victim = paid.orders[2]["order_id"]
    returned = paid.bank.return_payment(victim, "AC04", paid.day)
    statement = paid.bank.statement(paid.day)
    publisher = Publisher(broker_url)
    try:
        for reply_id, kind, body in (returned, returned, statement):
            publisher.publish(
                name, "agribank", body, message_id=reply_id, headers={"message_type": kind}
            )
    finally:
        publisher.close()
    stop = threading.Event()
    handled: list[int] = []

    def handler(deliveries: Sequence[Delivery]) -> None:
        paid.gateway.inbound.handle(deliveries)
        handled.append(len(deliveries))
        if sum(handled) >= 3:
            stop.set()

    thread = threading.Thread(
        target=consume, args=(broker_url, name, handler, stop), kwargs={"prefetch": 10, "chunk": 1}
    )
    thread.start()
    thread.join(20)
    try:
        assert not thread.is_alive()
        assert channel.queue_declare(name, passive=True).method.message_count == 0
    finally:
        channel.queue_delete(name)
        channel.exchange_delete(name)
        conn.close()
    assert paid.state(victim) == "returned"
    assert len(paid.postings("payment_returned")) == 1
    assert paid.gateway.storage.query("SELECT COUNT(*) FROM statements") == [(1,)]
    assert paid.reconcile("--date", paid.day.isoformat()).returncode == 0
