"""Inbound rules on real SQLite and real signatures: what moves an order, and what is kept aside."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.banksim.wiring import bank_keypair
from gateway.bootstrap import Gateway, build_gateway
from gateway.config import Settings
from gateway.contracts import check_posting
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification, StatusReport, TxStatus
from gateway.iso20022.pain002 import build_pain002
from gateway.signing import sign
from tests.conftest import pin_certificate
from tests.doubles import FakeClock, Msg, pass_quiet_time
from tests.unit.test_intake import order

# slow: whole flows with the bank simulator.
pytestmark = pytest.mark.slow

AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
IDS = ("BTXH2611-000001", "BTXH2611-000002")


@dataclass
class Sent:
    """A gateway with one file of two 540,000 VND orders sent to Agribank."""

    gateway: Gateway
    settings: Settings
    msg_id: str

    def signed(self, root: Any, partner: str = "agribank") -> bytes:
        """A file as the partner's bank signs it."""
        return sign(root, bank_keypair(self.settings, self.settings.partners[partner]))

    def states(self) -> dict[str, str]:
        """Order id → state."""
        return dict(self.gateway.storage.query("SELECT order_id, state FROM orders"))

    def unmatched(self) -> list[str]:
        """Reasons of the unmatched lines kept so far."""
        return [
            r for (r,) in self.gateway.storage.query("SELECT reason FROM unmatched ORDER BY id")
        ]

    def postings(self) -> list[dict[str, Any]]:
        """Ledger postings written so far, each checked against ledger-posting/1."""
        rows = self.gateway.storage.query(
            "SELECT body FROM outbox WHERE exchange = 'treasury.ledger'"
        )
        postings = [json.loads(body) for (body,) in rows]
        for posting in postings:
            check_posting(posting)
        return postings


@pytest.fixture
def sent(settings: Settings) -> Sent:
    """Two orders batched into one file and marked sent."""
    gateway = build_gateway(settings, clock=FakeClock())
    payloads = [order(order_id=i) for i in IDS]
    gateway.intake.handle([Msg(json.dumps(p, ensure_ascii=False).encode()) for p in payloads])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(msg_id,)] = gateway.storage.query("SELECT msg_id FROM files")
    with gateway.storage.unit_of_work() as uow:
        uow.files.sent(msg_id, datetime(2026, 11, 10, 8, 0, tzinfo=UTC))
    return Sent(gateway, settings, msg_id)


def debit(
    end_to_end_id: str,
    amount: str = "540000",
    status: str = "BOOK",
    credit: str = "DBIT",
    return_reason: str | None = None,
    account: str = "7411058271001",
    ref: str = "VBA-1",
) -> Notification:
    """A camt.054 with one entry."""
    return Notification(
        msg_id=f"VBA-N-{ref}",
        created_at=AT,
        account=account,
        entries=(
            Entry(
                amount=Decimal(amount),
                currency="VND",
                credit_debit=credit,
                status=status,
                booking_date=date(2026, 11, 10),
                value_date=date(2026, 11, 10),
                account_servicer_ref=ref,
                details=(
                    EntryDetail(
                        amount=Decimal(amount),
                        currency="VND",
                        end_to_end_id=end_to_end_id,
                        return_reason=return_reason,
                    ),
                ),
            ),
        ),
    )


def test_a_pending_debit_settles_nothing(sent: Sent) -> None:
    """Only a booked debit settles; a pending one is kept aside with its status."""
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(debit(IDS[0], status="PDNG"))))
    assert sent.states()[IDS[0]] == "sent"
    assert sent.unmatched() == ["entry status PDNG is not booked"]


def test_a_debit_of_another_amount_settles_nothing(sent: Sent) -> None:
    """A debit whose amount differs from the order's is kept aside, not booked."""
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(debit(IDS[0], amount="1"))))
    assert sent.states()[IDS[0]] == "sent"
    assert "differs from order" in sent.unmatched()[0]
    assert sent.postings() == []


def test_a_debit_for_an_unknown_payment_is_kept(sent: Sent) -> None:
    """A debit naming no order of ours is kept with its reason."""
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(debit("NOT-OURS-1"))))
    assert sent.unmatched() == ["debit for an unknown payment NOT-OURS-1"]


def test_a_return_of_an_unknown_payment_is_never_revenue(sent: Sent) -> None:
    """A credit carrying return information is not booked as revenue when nothing matches."""
    returned = debit("NOT-OURS-2", credit="CRDT", return_reason="AC04", ref="VBA-2")
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(returned)))
    assert sent.unmatched() == ["return (AC04) of an unknown payment NOT-OURS-2"]
    assert sent.gateway.storage.query("SELECT COUNT(*) FROM revenue") == [(0,)]
    assert sent.postings() == []


def test_a_return_before_settlement_is_kept(sent: Sent) -> None:
    """A return of a payment not yet settled is kept aside; the order does not move."""
    returned = debit(IDS[0], credit="CRDT", return_reason="AC04", ref="VBA-3")
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(returned)))
    assert sent.states()[IDS[0]] == "sent"
    assert sent.unmatched() == [f"return of order {IDS[0]}, which is sent, not settled"]


def test_a_payment_group_rejection_rejects_its_orders(sent: Sent) -> None:
    """A PmtInf-level RJCT with no transaction lines rejects every order of that group."""
    report = StatusReport(
        msg_id="VBA-STS-G1",
        created_at=AT,
        original_msg_id=sent.msg_id,
        original_msg_name_id="pain.001.001.09",
        group_status="RJCT",
        transactions=(
            TxStatus(
                original_end_to_end_id=None,
                original_pmt_inf_id=f"{sent.msg_id}-001",
                status="RJCT",
                reason_code="AM04",
                reason_text="Không đủ số dư",
            ),
        ),
    )
    assert sent.gateway.inbound.apply("agribank", sent.signed(build_pain002(report))) == "applied"
    assert set(sent.states().values()) == {"rejected"}
    postings = sent.postings()
    assert sorted(p["order_id"] for p in postings) == sorted(IDS)
    assert {p["reason"]["code"] for p in postings} == {"AM04"}
    assert sent.gateway.storage.query("SELECT state FROM files") == [("rejected",)]


def test_a_partner_cannot_move_another_partners_orders(sent: Sent, tmp_path: Any) -> None:
    """A validly signed report from another bank, about our Agribank file, moves nothing."""
    other = pin_certificate(
        replace(
            sent.settings.partners["agribank"],
            name="vietcombank",
            bic="BFTVVNVX",
            accounts=("BBAN:0011000000001",),
        ),
        tmp_path / "keys" / "banksim-vietcombank.cert.pem",
    )
    settings = replace(sent.settings, partners={**sent.settings.partners, "vietcombank": other})
    gateway = build_gateway(settings)
    foreign = Sent(gateway, settings, sent.msg_id)
    report = StatusReport(
        msg_id="VCB-STS-1",
        created_at=AT,
        original_msg_id=sent.msg_id,
        original_msg_name_id="pain.001.001.09",
        group_status="RJCT",
        transactions=(),
    )
    assert gateway.inbound.apply(
        "vietcombank", foreign.signed(build_pain002(report), "vietcombank")
    )
    assert set(foreign.states().values()) == {"sent"}
    assert foreign.unmatched() == [
        f"vietcombank reports on {sent.msg_id}, a file we never sent to it (it went to agribank)"
    ]


def test_a_notification_for_another_account_is_quarantined(sent: Sent) -> None:
    """A camt.054 for an account the partner's profile does not list is refused whole."""
    foreign = debit(IDS[0], account="9999999999")
    result = sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(foreign)))
    assert result == "quarantined"
    [(reason,)] = sent.gateway.storage.query("SELECT reason FROM quarantine")
    assert "not one of agribank's accounts" in reason


def test_revenue_amounts_are_posted_in_minor_units(sent: Sent) -> None:
    """A credit written 1500000.00 VND is posted as 1500000."""
    credit = debit("", amount="1500000.00", credit="CRDT", ref="VBA2611R000001")
    credit = replace(
        credit,
        entries=(
            replace(
                credit.entries[0],
                details=(replace(credit.entries[0].details[0], end_to_end_id=None),),
            ),
        ),
    )
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(credit)))
    [posting] = sent.postings()
    assert posting["kind"] == "revenue_collected"
    assert posting["amount"] == "1500000"


def test_raw_files_are_kept(sent: Sent) -> None:
    """Every applied file is kept as received, for audit."""
    body = sent.signed(build_camt054(debit(IDS[0])))
    sent.gateway.inbound.apply("agribank", body)
    assert sent.gateway.storage.query("SELECT raw FROM inbound_files") == [(body,)]
    assert sent.states()[IDS[0]] == "settled"


def status_report(sent: Sent, *lines: TxStatus, group: str | None = None, msg: str = "S1") -> bytes:
    """A signed pain.002 about the sent file."""
    report = StatusReport(
        msg_id=f"VBA-STS-{msg}",
        created_at=AT,
        original_msg_id=sent.msg_id,
        original_msg_name_id="pain.001.001.09",
        group_status=group,
        transactions=lines,
    )
    return sent.signed(build_pain002(report))


def test_a_line_naming_only_the_instruction_id_rejects_only_that_order(sent: Sent) -> None:
    """OrgnlInstrId alone identifies the order (we send the same id); its group is untouched."""
    line = TxStatus(
        original_end_to_end_id=None,
        original_instr_id=IDS[0],
        original_pmt_inf_id=f"{sent.msg_id}-001",
        status="RJCT",
        reason_code="AC04",
    )
    sent.gateway.inbound.apply("agribank", status_report(sent, line, group="PART"))
    assert sent.states() == {IDS[0]: "rejected", IDS[1]: "sent"}


def test_every_detail_of_a_revenue_entry_is_booked(sent: Sent) -> None:
    """Details sharing their entry's reference are booked apart, not collapsed into one."""
    base = debit("", amount="600000", credit="CRDT", ref="VBA2611R000777")
    details = tuple(
        EntryDetail(amount=Decimal(amount), currency="VND", counterparty_name=f"Người nộp {n}")
        for n, amount in enumerate(("200000", "150000", "250000"), start=1)
    )
    entry = replace(base.entries[0], details=details)
    sent.gateway.inbound.apply(
        "agribank", sent.signed(build_camt054(replace(base, entries=(entry,))))
    )
    revenue = [p for p in sent.postings() if p["kind"] == "revenue_collected"]
    assert sorted(p["amount"] for p in revenue) == ["150000", "200000", "250000"]
    assert len({p["posting_id"] for p in revenue}) == 3


def test_a_reused_msg_id_with_other_content_is_quarantined(sent: Sent) -> None:
    """A second file under a MsgId already seen is kept aside, never dropped as a duplicate."""
    first = debit(IDS[0], ref="VBA-SAME")
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(first)))
    other = replace(debit(IDS[1], ref="VBA-OTHER"), msg_id=first.msg_id)
    assert sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(other))) == (
        "quarantined"
    )
    [(reason,)] = sent.gateway.storage.query("SELECT reason FROM quarantine")
    assert f"reused MsgId {first.msg_id}" in reason
    assert sent.states()[IDS[1]] == "sent"


def test_a_processing_instruction_inside_an_amount_is_refused(sent: Sent) -> None:
    """A PI survives C14N and would cut the amount short when read: the file is refused."""
    body = sent.signed(build_camt054(debit(IDS[0])))
    hostile = body.replace(b">540000<", b">540<?x?>000<")
    assert sent.gateway.inbound.apply("agribank", hostile) == "quarantined"
    [(reason,)] = sent.gateway.storage.query("SELECT reason FROM quarantine")
    assert "processing instruction" in reason
    assert sent.states()[IDS[0]] == "sent"


def test_contradictions_from_the_bank_are_kept_for_a_person(sent: Sent) -> None:
    """A second debit under another reference, or a rejection after settlement, moves nothing."""
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(debit(IDS[0], ref="R-1"))))
    sent.gateway.inbound.apply("agribank", sent.signed(build_camt054(debit(IDS[0], ref="R-2"))))
    late = TxStatus(
        original_end_to_end_id=IDS[0],
        original_pmt_inf_id=f"{sent.msg_id}-001",
        status="RJCT",
        reason_code="AC04",
    )
    sent.gateway.inbound.apply("agribank", status_report(sent, late, group="RJCT", msg="LATE"))
    assert sent.states()[IDS[0]] == "settled"
    assert sent.unmatched()[0] == f"second debit R-2 for order {IDS[0]}, settled by R-1"
    assert f"RJCT for order {IDS[0]}, which is already settled" in sent.unmatched()
    assert sorted(p["kind"] for p in sent.postings()) == ["payment_rejected", "payment_settled"]
    assert (
        sent.gateway.storage.query("SELECT state FROM files") == [("rejected",)]
        or sent.states()[IDS[1]] == "rejected"
    )
