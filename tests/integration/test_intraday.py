"""camt.052 intraday reports on real SQLite and real signatures: booked debits settle, credits
are revenue, pending entries settle nothing, and an entry met again in a camt.054 or camt.053 is
applied once."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.banksim.bank import AccountBook, BankSimulator, RevenueItem
from gateway.banksim.messages import build_camt052
from gateway.banksim.wiring import bank_keypair, build_bank
from gateway.bootstrap import Gateway, build_gateway
from gateway.config import Settings
from gateway.iso20022 import xsd
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.profile import PartnerProfile
from gateway.profile.signature import SignaturePolicy
from gateway.signing import sign
from tests.conftest import SHARED, any_creation_time
from tests.doubles import FakeClock, Msg, pass_quiet_time
from tests.unit.test_intake import order

# slow: whole flows with the bank simulator.
pytestmark = pytest.mark.slow

AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
IDS = ("BTXH2611-000201", "BTXH2611-000202")


def notification(*entries: Entry, msg_id: str = "VBA-N-1") -> Notification:
    """Entries of the treasury's Agribank account."""
    return Notification(msg_id=msg_id, created_at=AT, account="7411058271001", entries=entries)


def entry(
    ref: str, amount: str, credit_debit: str = "DBIT", status: str = "BOOK", e2e: str | None = None
) -> Entry:
    """One entry with one detail carrying the same bank reference."""
    return Entry(
        amount=Decimal(amount),
        currency="VND",
        credit_debit=credit_debit,
        status=status,
        booking_date=date(2026, 11, 10),
        value_date=date(2026, 11, 10),
        account_servicer_ref=ref,
        details=(
            EntryDetail(
                amount=Decimal(amount),
                currency="VND",
                end_to_end_id=e2e,
                account_servicer_ref=ref,
                counterparty_name="Công ty TNHH Minh Phát" if credit_debit == "CRDT" else None,
            ),
        ),
    )


class Flow:
    """A gateway with two orders sent to Agribank in one file, and that bank's signing key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway: Gateway = build_gateway(settings, clock=FakeClock())
        payloads = [order(order_id=IDS[0]), order(order_id=IDS[1], amount="810000")]
        self.gateway.intake.handle(
            [Msg(json.dumps(p, ensure_ascii=False).encode()) for p in payloads]
        )
        pass_quiet_time(self.gateway)
        assert self.gateway.batcher.tick() == 1
        [(self.msg_id, self.file)] = self.gateway.storage.query(
            "SELECT message_id, body FROM outbox WHERE exchange = 'gateway.to-bank'"
        )
        with self.gateway.storage.unit_of_work() as uow:
            uow.files.sent(self.msg_id, datetime(2026, 11, 10, 8, 0, tzinfo=UTC))

    def signed(self, root: Any) -> bytes:
        """A file as Agribank signs it."""
        keypair = bank_keypair(self.settings, self.settings.partners["agribank"])
        assert keypair is not None
        return sign(root, keypair)

    def apply(self, root: Any) -> str:
        """Validate (as the bank does before signing), sign and hand to inbound."""
        xsd.validate(root)
        return self.gateway.inbound.apply("agribank", self.signed(root))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """A read of the gateway's database."""
        return self.gateway.storage.query(sql)

    def states(self) -> dict[str, str]:
        """Order id → state."""
        return dict(self.query("SELECT order_id, state FROM orders"))

    def postings(self) -> list[tuple[str, str]]:
        """(kind, order id or bank ref) of the ledger postings written."""
        rows = self.query("SELECT body FROM outbox WHERE exchange = 'treasury.ledger'")
        bodies = [json.loads(body) for (body,) in rows]
        return sorted((b["kind"], b["order_id"] or b["bank_ref"]) for b in bodies)


@pytest.fixture
def flow(settings: Settings) -> Flow:
    """Two orders sent in one file."""
    return Flow(settings)


DEBITS = (entry("VBA-D1", "540000", e2e=IDS[0]), entry("VBA-D2", "810000", e2e=IDS[1]))
CREDIT = entry("VBA-C1", "1500000", credit_debit="CRDT")


def test_an_intraday_report_settles_booked_debits_and_collects_credits(flow: Flow) -> None:
    """A camt.052 settles each booked debit and takes each credit in as revenue, once."""
    report = build_camt052(notification(*DEBITS, CREDIT, msg_id="VBA-IDR-1"), "IDR-1")
    assert flow.apply(report) == "applied"
    assert flow.states() == {IDS[0]: "settled", IDS[1]: "settled"}
    assert flow.postings() == [
        ("payment_settled", IDS[0]),
        ("payment_settled", IDS[1]),
        ("revenue_collected", "VBA-C1"),
    ]
    assert flow.query("SELECT message_type FROM inbound_files") == [("camt.052",)]
    assert flow.query("SELECT bank_ref, value_date FROM orders ORDER BY order_id") == [
        ("VBA-D1", "2026-11-10"),
        ("VBA-D2", "2026-11-10"),
    ]


@pytest.mark.parametrize("first", ["camt.052", "camt.054"])
def test_an_entry_in_camt052_and_camt054_is_applied_once(flow: Flow, first: str) -> None:
    """The same bookings reported intraday and by notification, in either order, are applied
    once: one posting each, nothing unmatched."""
    entries = notification(*DEBITS, CREDIT, msg_id=f"VBA-{first}")
    intraday = build_camt052(replace(entries, msg_id="VBA-IDR-2"), "IDR-2")
    notified = build_camt054(replace(entries, msg_id="VBA-NTF-2"))
    for root in (intraday, notified) if first == "camt.052" else (notified, intraday):
        assert flow.apply(root) == "applied"
    assert flow.states() == {IDS[0]: "settled", IDS[1]: "settled"}
    assert len(flow.postings()) == 3
    assert flow.query("SELECT COUNT(*) FROM unmatched") == [(0,)]
    assert flow.query("SELECT COUNT(*) FROM revenue") == [(1,)]


def test_a_pending_entry_settles_nothing_until_it_is_booked(flow: Flow) -> None:
    """PDNG in a camt.052 moves nothing and is not an admin's problem; booked later (same
    reference) in a camt.054, it settles."""
    pending = build_camt052(
        notification(entry("VBA-D1", "540000", status="PDNG", e2e=IDS[0]), msg_id="VBA-IDR-3"),
        "IDR-3",
    )
    assert flow.apply(pending) == "applied"
    assert flow.states()[IDS[0]] == "sent"
    assert flow.query("SELECT COUNT(*) FROM unmatched") == [(0,)]
    assert flow.postings() == []
    booked = build_camt054(notification(DEBITS[0], msg_id="VBA-NTF-3"))
    assert flow.apply(booked) == "applied"
    assert flow.states()[IDS[0]] == "settled"
    assert flow.postings() == [("payment_settled", IDS[0])]


def test_an_intraday_report_of_another_account_is_quarantined(flow: Flow) -> None:
    """A camt.052 for an account not in the partner's profile is refused whole."""
    foreign = replace(notification(*DEBITS, msg_id="VBA-IDR-4"), account="1234567890")
    assert flow.apply(build_camt052(foreign, "IDR-4")) == "quarantined"
    [(reason,)] = flow.query("SELECT reason FROM quarantine")
    assert "is for account 1234567890" in reason
    assert set(flow.states().values()) == {"sent"}


def test_bank_simulator_intraday_then_notification_then_statement(
    settings: Settings, tmp_path: Path
) -> None:
    """The simulated bank's camt.052 settles the day's payments and revenue; its camt.054 and
    camt.053 of the same bookings change nothing more, and the statement reconciles."""
    flow = Flow(settings)
    bank: BankSimulator = build_bank(
        settings, settings.partners["agribank"], AccountBook(), tmp_path / "bank.db"
    )
    replies = {kind: body for _, kind, body in bank.receive(bytes(flow.file))}
    today = datetime.now(UTC).date()
    _, _, revenue = bank.revenue_notification(
        [
            RevenueItem(
                bank_ref="VBA2611R000201",
                payer_name="Trần Văn Bình",
                amount="1500000",
                currency="VND",
                value_date=today,
                remittance="Thuế thu nhập cá nhân",
            )
        ]
    )
    _, kind, intraday = bank.intraday_report(today)
    assert kind == "camt.052"
    inbound = flow.gateway.inbound
    assert inbound.apply("agribank", replies["pain.002"]) == "applied"
    assert inbound.apply("agribank", intraday) == "applied"
    assert flow.states() == {IDS[0]: "settled", IDS[1]: "settled"}
    assert inbound.apply("agribank", replies["camt.054"]) == "applied"
    assert inbound.apply("agribank", revenue) == "applied"
    _, _, statement = bank.statement(today)
    assert inbound.apply("agribank", statement) == "applied"
    assert flow.postings() == [
        ("payment_settled", IDS[0]),
        ("payment_settled", IDS[1]),
        ("revenue_collected", "VBA2611R000201"),
    ]
    assert flow.query("SELECT COUNT(*) FROM unmatched") == [(0,)]


@pytest.mark.parametrize(
    ("name", "unmatched"),
    [
        ("31_camt052_00104_genkgo_pdng.xml", []),
        (
            "30_camt052_00102_genkgo.xml",
            [("AAAASESS-FP-ACCR-01", "debit naming no payment (no EndToEndId)")],
        ),
    ],
)
def test_third_party_camt052_samples_through_inbound(
    settings: Settings, name: str, unmatched: list[tuple[str, str]]
) -> None:
    """genkgo's camt.052 samples, from a partner holding their account and signing nothing: the
    pending entry (31) settles nothing and is not kept aside; the booked batch debit (30) names
    no payment of ours and is kept as unmatched. (Both reuse one MsgId, so each gets its own
    gateway.)"""
    samples = SHARED / "iso20022" / "samples"
    if not samples.is_dir():
        pytest.skip(f"third-party samples not present at {samples}")
    # The samples are years old: their creation time is not held to the receipt tolerance.
    swiss = any_creation_time(
        PartnerProfile(
            name="genkgo",
            bic="UBSWCHZH80A",
            accounts=("CH2801234000123456789",),
            signature=SignaturePolicy(mode="none"),
        )
    )
    gateway = build_gateway(replace(settings, partners={**settings.partners, "genkgo": swiss}))
    assert gateway.inbound.apply("genkgo", (samples / name).read_bytes()) == "applied"
    assert gateway.storage.query("SELECT message_type FROM inbound_files") == [("camt.052",)]
    assert gateway.storage.query("SELECT reference, reason FROM unmatched") == unmatched
