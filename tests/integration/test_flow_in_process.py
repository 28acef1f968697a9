"""The whole path in one process, without a broker: intake → batcher → bank → inbound → postings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.banksim.bank import AccountBook, BankSimulator, RevenueItem
from gateway.banksim.wiring import bank_keypair, build_bank
from gateway.bootstrap import build_gateway
from gateway.config import Settings
from gateway.contracts import check_posting
from gateway.demo.month import generate_month
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification, StatusReport, TxStatus
from gateway.iso20022.pain002 import build_pain002
from gateway.iso20022.xml import parse_xml
from gateway.signing import sign
from tests.conftest import SHARED
from tests.doubles import FakeClock, Msg, pass_quiet_time

# slow: whole flows with the bank simulator.
pytestmark = pytest.mark.slow


@pytest.fixture
def month_orders() -> Any:
    """A small month: 40 beneficiaries plus the bills and supplier transfers."""
    return generate_month(beneficiaries=40)


def outbox(storage: SqliteStorage, exchange: str) -> list[tuple[str, bytes]]:
    """Unsent outbox messages to one exchange."""
    rows = storage.query(
        "SELECT message_id, body FROM outbox WHERE exchange = ? AND sent_at IS NULL ORDER BY id",
        (exchange,),
    )
    return [(m, bytes(b)) for m, b in rows]


def test_month_runs_to_final_states(settings: Settings, month_orders: Any, tmp_path: Any) -> None:
    """Every order ends settled or rejected, with one posting each and the right totals."""
    gateway = build_gateway(settings, clock=FakeClock())
    partner = settings.partners["agribank"]
    beneficiaries = sorted(
        o["creditor"]["account"]["number"]
        for o in month_orders.orders
        if o["category"] == "social_benefit"
    )
    closed = beneficiaries[:2]  # the bank says these two accounts are closed
    bank: BankSimulator = build_bank(
        settings, partner, AccountBook(closed=frozenset(closed)), tmp_path / "bank.db"
    )
    bodies = [json.dumps(o, ensure_ascii=False).encode() for o in month_orders.orders]
    gateway.intake.handle([Msg(b, {}) for b in bodies + month_orders.invalid_orders])
    gateway.intake.handle([Msg(b, {}) for b in bodies[:5]])  # redelivered: no-ops

    assert gateway.batcher.tick() == 0  # nothing is cut while the groups are still filling
    pass_quiet_time(gateway)
    # One file per execution date and batch (or category when the order has no batch).
    groups = {
        (o["requested_execution_date"], o.get("batch_ref") or o["category"])
        for o in month_orders.orders
    }
    assert gateway.batcher.tick() == len(groups)
    files = outbox(gateway.storage, "gateway.to-bank")
    assert len(files) == len(groups)
    for msg_id, body in files:
        with gateway.storage.unit_of_work() as uow:
            uow.files.sent(msg_id, datetime(2026, 11, 10, tzinfo=UTC))
        for _, _, reply in bank.receive(body):
            assert gateway.inbound.apply("agribank", reply) == "applied"
        # The same file again: the bank pays nothing twice and the replies are duplicates.
        for _, _, reply in bank.receive(body):
            assert gateway.inbound.apply("agribank", reply) == "duplicate"

    states = dict(gateway.storage.query("SELECT state, COUNT(*) FROM orders GROUP BY 1"))
    assert states == {"settled": len(month_orders.orders) - len(closed), "rejected": len(closed)}
    postings = [json.loads(b) for _, b in outbox(gateway.storage, "treasury.ledger")]
    for posting in postings:
        check_posting(posting)  # what the services really emit keeps the published contract
    kinds = [p["kind"] for p in postings]
    assert kinds.count("payment_settled") == states["settled"]
    assert kinds.count("payment_rejected") == len(closed)
    assert kinds.count("order_invalid") == len(month_orders.invalid_orders)
    total = sum(Decimal(o["amount"]) for o in month_orders.orders)
    posted = sum(Decimal(p["amount"]) for p in postings if p["kind"].startswith("payment_"))
    assert posted == total
    assert bank.record.paid_twice() == []


def test_a_tampered_report_is_quarantined(settings: Settings, tmp_path: Any) -> None:
    """A bank file whose signature does not verify changes nothing and is kept with the reason."""
    gateway = build_gateway(settings)
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    _, _, body = bank.revenue_notification(
        [
            RevenueItem(
                bank_ref="VBA2611R000001",
                payer_name="Trần Văn Bình",
                amount="1500000",
                currency="VND",
                value_date=date(2026, 11, 12),
                remittance="Thuế thu nhập cá nhân",
            )
        ]
    )
    tampered = body.replace(b"1500000", b"9500000")
    assert gateway.inbound.apply("agribank", tampered) == "quarantined"
    [(reason,)] = gateway.storage.query("SELECT reason FROM quarantine")
    assert "signature" in reason.lower() or "digest" in reason.lower()
    assert gateway.inbound.apply("agribank", body) == "applied"
    assert gateway.storage.query("SELECT amount FROM revenue") == [("1500000",)]


def test_a_pain002_001_10_is_read_after_its_xsd(settings: Settings) -> None:
    """A third-party pain.002.001.10 is verified, checked against its shipped XSD and read."""
    sample = SHARED / "iso20022" / "samples" / "08_pain002_00110_de_vop_03.xml"
    if not sample.exists():
        pytest.skip(f"third-party samples not present at {sample.parent}")
    gateway = build_gateway(settings)
    signed = sign(
        parse_xml(sample.read_bytes()), bank_keypair(settings, settings.partners["agribank"])
    )
    assert gateway.inbound.apply("agribank", signed) == "applied"
    assert gateway.storage.query("SELECT message_type FROM inbound_files") == [("pain.002",)]
    assert gateway.storage.query("SELECT COUNT(*) FROM quarantine") == [(0,)]


def _signed_by_bank(settings: Settings, root: Any) -> bytes:
    return sign(root, bank_keypair(settings, settings.partners["agribank"]))


def test_returns_and_late_reports(settings: Settings, tmp_path: Any) -> None:
    """A return moves a settled order to returned; a late rejection of it moves nothing."""
    gateway = build_gateway(settings, clock=FakeClock())
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    month = generate_month(beneficiaries=3)
    social = [o for o in month.orders if o["category"] == "social_benefit"]
    gateway.intake.handle([Msg(json.dumps(o, ensure_ascii=False).encode(), {}) for o in social])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(msg_id, body)] = outbox(gateway.storage, "gateway.to-bank")
    for _, _, reply in bank.receive(body):
        gateway.inbound.apply("agribank", reply)
    victim = social[0]
    returned = Notification(
        msg_id="VBA-RTN-0001",
        created_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        account="7411058271001",
        entries=(
            Entry(
                amount=Decimal(victim["amount"]),
                currency="VND",
                credit_debit="CRDT",
                status="BOOK",
                booking_date=date(2026, 11, 20),
                value_date=date(2026, 11, 20),
                account_servicer_ref="VBA-RTN-REF-1",
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
    assert gateway.inbound.apply(
        "agribank", _signed_by_bank(settings, build_camt054(returned))
    ) == ("applied")
    late = StatusReport(
        msg_id="VBA-LATE-0001",
        created_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
        original_msg_id=msg_id,
        original_msg_name_id="pain.001.001.09",
        group_status="RJCT",
        transactions=(
            TxStatus(
                original_end_to_end_id=social[1]["order_id"],
                original_pmt_inf_id=f"{msg_id}-001",
                status="RJCT",
                reason_code="AC04",
            ),
        ),
    )
    assert gateway.inbound.apply("agribank", _signed_by_bank(settings, build_pain002(late))) == (
        "applied"
    )
    states = dict(gateway.storage.query("SELECT order_id, state FROM orders"))
    assert states[victim["order_id"]] == "returned"
    assert states[social[1]["order_id"]] == "settled"
    postings = [json.loads(b) for _, b in outbox(gateway.storage, "treasury.ledger")]
    [returned_posting] = [p for p in postings if p["kind"] == "payment_returned"]
    assert returned_posting["order_id"] == victim["order_id"]
    assert returned_posting["reason"]["code"] == "AC04"
    assert returned_posting["amount"] == victim["amount"]
    assert not [p for p in postings if p["kind"] == "payment_rejected"]
