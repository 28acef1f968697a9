"""The rules for bank replies (pain.002, camt.054, pacs.004), applied in memory.

Each test stores orders in a file sent to a partner, applies one reply in a unit of work, and
checks where the orders stand, what was posted to the treasury ledger and what was kept aside.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import structlog.testing

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.config import PartnerProfile, load_settings
from gateway.domain.states import FileState, TxState
from gateway.errors import InvalidMessage
from gateway.iso20022.model import (
    Entry,
    EntryDetail,
    Notification,
    PaymentReturn,
    ReturnedTransaction,
    StatusReport,
    TxStatus,
)
from gateway.service.channels import LEDGER_EXCHANGE
from gateway.service.notifications import MORE, apply_notification, notification_steps
from gateway.service.ports import FileRecord, NewOrder, OutboundFile, StoredOrder
from gateway.service.reports import apply_report, report_steps
from gateway.service.returns import apply_return
from tests.conftest import ROOT

NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
SETTLED_ON = date(2026, 11, 10)
RETURNED_ON = date(2026, 11, 13)
AMOUNT = Decimal("540000")
FILE = "KBNN-AGR-20261110-000001"
# The treasury's account at Agribank, as a camt.054 names it.
ACCOUNT = "7411058271001"


@pytest.fixture(scope="module")
def partners() -> dict[str, PartnerProfile]:
    """The partner profiles of the repository (conf/partners/*.toml)."""
    return dict(load_settings(ROOT).partners)


@pytest.fixture
def agribank(partners: dict[str, PartnerProfile]) -> PartnerProfile:
    """The partner whose replies the tests apply."""
    return partners["agribank"]


@pytest.fixture
def storage() -> MemoryStorage:
    """A fresh storage in memory."""
    return MemoryStorage()


def send_file(
    storage: MemoryStorage,
    orders: Sequence[tuple[str, str]],
    *,
    msg_id: str = FILE,
    partner: str = "agribank",
    amount: Decimal = AMOUNT,
) -> None:
    """Store orders (order_id, pmt_inf_id), batch them into one file and send it."""
    with storage.unit_of_work() as uow:
        for order_id, _ in orders:
            payload = {"order_id": order_id, "budget": {"chapter": "622"}}
            uow.orders.add(
                NewOrder(
                    order_id=order_id,
                    content_hash=f"h-{order_id}",
                    payload=json.dumps(payload),
                    partner=partner,
                    group_key=f"{partner}|g",
                    category="social_benefit",
                    amount=amount,
                    currency="VND",
                ),
                NOW,
            )
        uow.files.add(
            OutboundFile(
                msg_id=msg_id,
                partner=partner,
                message_type="pain.001.001.09",
                nb_of_txs=len(orders),
                ctrl_sum=amount * len(orders),
                sha256="0" * 64,
            ),
            NOW,
        )
        uow.orders.mark_batched(list(orders), msg_id, NOW)
        uow.files.sent(msg_id, NOW)


def report(
    msg_id: str,
    *lines: TxStatus,
    group_status: str | None = None,
    original: str = FILE,
) -> StatusReport:
    """A pain.002 on one of our files."""
    return StatusReport(
        msg_id=msg_id,
        created_at=NOW,
        original_msg_id=original,
        original_msg_name_id="pain.001.001.09",
        group_status=group_status,
        transactions=lines,
    )


def debit(bank_ref: str, order_id: str, amount: Decimal = AMOUNT) -> Entry:
    """A booked camt.054 debit of one of our payments."""
    return Entry(
        amount=amount,
        currency="VND",
        credit_debit="DBIT",
        status="BOOK",
        booking_date=SETTLED_ON,
        value_date=SETTLED_ON,
        account_servicer_ref=bank_ref,
        details=(EntryDetail(amount=amount, currency="VND", end_to_end_id=order_id),),
    )


def notification(msg_id: str, *entries: Entry, account: str = ACCOUNT) -> Notification:
    """A camt.054 for the treasury's account."""
    return Notification(msg_id=msg_id, created_at=NOW, account=account, entries=entries)


def payment_return(msg_id: str, *lines: ReturnedTransaction) -> PaymentReturn:
    """A pacs.004 on our file."""
    return PaymentReturn(msg_id=msg_id, created_at=NOW, original_msg_id=FILE, transactions=lines)


def returned(return_id: str, order_id: str, amount: Decimal = AMOUNT) -> ReturnedTransaction:
    """One payment coming back, with the bank's reason."""
    return ReturnedTransaction(
        amount=amount,
        currency="VND",
        return_id=return_id,
        original_msg_id=FILE,
        original_end_to_end_id=order_id,
        settlement_date=RETURNED_ON,
        reason_code="AC04",
        reason_text="Tài khoản đã đóng",
    )


def apply(storage: MemoryStorage, partner: PartnerProfile, message: Any, raw: bytes) -> str:
    """Apply one reply by the rules of its kind, in one unit of work."""
    with storage.unit_of_work() as uow:
        if isinstance(message, StatusReport):
            return apply_report(uow, partner, message, raw, NOW)
        if isinstance(message, Notification):
            return apply_notification(uow, partner, message, raw, NOW)
        return apply_return(uow, partner, message, raw, NOW)


def raw_of(message: StatusReport | Notification | PaymentReturn) -> bytes:
    """Bytes standing for the file a message was read from (one file per MsgId)."""
    return f"<{type(message).__name__} {message.msg_id}/>".encode()


def order(storage: MemoryStorage, order_id: str) -> StoredOrder:
    """An order as committed."""
    stored = storage.queries.order(order_id)
    assert stored is not None
    return stored


def postings(storage: MemoryStorage) -> list[dict[str, Any]]:
    """The ledger postings in the outbox, oldest first."""
    rows = storage.snapshot().outbox.values()
    return [json.loads(r.message.body) for r in rows if r.message.exchange == LEDGER_EXCHANGE]


def unmatched_reasons(storage: MemoryStorage) -> list[str]:
    """Why each kept line could not be applied, oldest first."""
    return [line.reason for line, _ in storage.snapshot().unmatched]


def settle_by_report(storage: MemoryStorage, partner: PartnerProfile, order_id: str) -> None:
    """The bank reports the order settled (ACSC)."""
    settled = report(f"R-SETTLE-{order_id}", TxStatus(order_id, "ACSC"))
    assert apply(storage, partner, settled, raw_of(settled)) == "applied"


# --- pain.002 status reports -----------------------------------------------------------------


def test_actc_acknowledges_without_a_posting(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """ACTC moves a sent order to acknowledged, keeps the code, and posts nothing."""
    send_file(storage, [("O-1", "P-1")])
    message = report("R-1", TxStatus("O-1", "ACTC"))
    assert apply(storage, agribank, message, raw_of(message)) == "applied"
    stored = order(storage, "O-1")
    assert (stored.state, stored.status_code) == (TxState.ACKNOWLEDGED, "ACTC")
    assert postings(storage) == []


def test_acsc_settles_with_a_payment_settled_posting(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """ACSC settles the order and writes its payment_settled posting in the same unit."""
    send_file(storage, [("O-1", "P-1")])
    settle_by_report(storage, agribank, "O-1")
    assert order(storage, "O-1").state == "settled"
    [posting] = postings(storage)
    assert posting["kind"] == "payment_settled"
    assert (posting["order_id"], posting["msg_id"]) == ("O-1", FILE)
    assert (posting["status"], posting["amount"], posting["currency"]) == ("ACSC", "540000", "VND")
    assert posting["budget"] == {"chapter": "622"}


def test_rjct_rejects_with_its_reason_and_a_posting(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """RJCT with a reason rejects the order, keeps the reason and posts payment_rejected."""
    send_file(storage, [("O-1", "P-1")])
    line = TxStatus("O-1", "RJCT", reason_code="AC01", reason_text="Số tài khoản không đúng")
    message = report("R-1", line)
    apply(storage, agribank, message, raw_of(message))
    stored = order(storage, "O-1")
    assert (stored.state, stored.reason_code) == (TxState.REJECTED, "AC01")
    [posting] = postings(storage)
    assert posting["kind"] == "payment_rejected"
    assert posting["reason"] == {"code": "AC01", "text": "Số tài khoản không đúng"}


def test_a_late_actc_after_settled_moves_nothing(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """An ACTC arriving after the settlement leaves the order settled, unposted and unflagged."""
    send_file(storage, [("O-1", "P-1")])
    settle_by_report(storage, agribank, "O-1")
    late = report("R-LATE", TxStatus("O-1", "ACTC"))
    assert apply(storage, agribank, late, raw_of(late)) == "applied"
    stored = order(storage, "O-1")
    assert (stored.state, stored.status_code) == (TxState.SETTLED, "ACSC")
    assert len(postings(storage)) == 1
    assert unmatched_reasons(storage) == []


def test_the_opposite_final_status_is_kept_as_unmatched(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """RJCT for a settled order changes nothing and is kept for a person, with the reason."""
    send_file(storage, [("O-1", "P-1")])
    settle_by_report(storage, agribank, "O-1")
    contrary = report("R-CONTRARY", TxStatus("O-1", "RJCT", reason_code="AM04"))
    apply(storage, agribank, contrary, raw_of(contrary))
    assert order(storage, "O-1").state == "settled"
    assert [p["kind"] for p in postings(storage)] == ["payment_settled"]
    assert unmatched_reasons(storage) == ["RJCT for order O-1, which is already settled"]


def test_a_group_status_covers_the_orders_not_named(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A line's own status wins for its order; the group status moves the file's others."""
    send_file(storage, [("O-1", "P-1"), ("O-2", "P-1"), ("O-3", "P-1")])
    message = report("R-1", TxStatus("O-2", "RJCT", reason_code="AC04"), group_status="ACCP")
    apply(storage, agribank, message, raw_of(message))
    states = {o: order(storage, o).state for o in ("O-1", "O-2", "O-3")}
    assert states == {
        "O-1": TxState.ACKNOWLEDGED,
        "O-2": TxState.REJECTED,
        "O-3": TxState.ACKNOWLEDGED,
    }
    assert storage.snapshot().files[FILE].state is FileState.ACKNOWLEDGED
    assert [p["order_id"] for p in postings(storage)] == ["O-2"]


def test_a_pmtinf_status_covers_only_its_group(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A PmtInf rejected whole rejects that group's orders; the other group stays sent."""
    send_file(storage, [("O-1", "P-1"), ("O-2", "P-1"), ("O-3", "P-2")])
    group = TxStatus(None, "RJCT", original_pmt_inf_id="P-1", reason_code="AM04")
    message = report("R-1", group)
    apply(storage, agribank, message, raw_of(message))
    assert [order(storage, o).state for o in ("O-1", "O-2", "O-3")] == [
        "rejected",
        "rejected",
        "sent",
    ]
    assert sorted(p["order_id"] for p in postings(storage)) == ["O-1", "O-2"]
    assert {p["reason"]["code"] for p in postings(storage)} == {"AM04"}


def test_a_report_on_another_partners_file_is_unmatched(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """Agribank reporting on a file sent to VietinBank moves nothing and is kept, named."""
    send_file(storage, [("O-1", "P-1")], msg_id="KBNN-VTB-1", partner="vietinbank")
    message = report("R-1", TxStatus("O-1", "ACSC"), original="KBNN-VTB-1")
    assert apply(storage, agribank, message, raw_of(message)) == "applied"
    assert order(storage, "O-1").state == "sent"
    assert postings(storage) == []
    [reason] = unmatched_reasons(storage)
    assert "a file we never sent to it (it went to vietinbank)" in reason


def test_a_line_for_an_unknown_order_is_unmatched(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A status for an order the file does not hold is kept aside; the others still move."""
    send_file(storage, [("O-1", "P-1")])
    message = report("R-1", TxStatus("O-1", "ACSC"), TxStatus("O-404", "ACSC"))
    apply(storage, agribank, message, raw_of(message))
    assert order(storage, "O-1").state == "settled"
    assert unmatched_reasons(storage) == ["no order O-404"]


def test_the_same_report_twice_is_a_duplicate(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """The same bytes again are a duplicate that changes nothing."""
    send_file(storage, [("O-1", "P-1")])
    message = report("R-1", TxStatus("O-1", "ACSC"))
    assert apply(storage, agribank, message, raw_of(message)) == "applied"
    assert apply(storage, agribank, message, raw_of(message)) == "duplicate"
    assert len(postings(storage)) == 1
    assert unmatched_reasons(storage) == []


def test_a_reused_msg_id_with_other_bytes_is_refused(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """Another file under a MsgId already taken in is refused whole, and nothing moves."""
    send_file(storage, [("O-1", "P-1")])
    apply(storage, agribank, report("R-1", TxStatus("O-1", "ACTC")), b"<first/>")
    with pytest.raises(InvalidMessage, match="reused MsgId R-1"):
        apply(storage, agribank, report("R-1", TxStatus("O-1", "RJCT")), b"<second/>")
    assert order(storage, "O-1").state == "acknowledged"


# --- camt.054 notifications --------------------------------------------------------------------


def test_a_booked_debit_settles_with_bank_ref_and_value_date(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A camt.054 debit of the order's amount settles it, keeping the bank's reference and
    value date on the order and in its posting."""
    send_file(storage, [("O-1", "P-1")])
    message = notification("N-1", debit("BR-1", "O-1"))
    assert apply(storage, agribank, message, raw_of(message)) == "applied"
    stored = order(storage, "O-1")
    assert (stored.state, stored.bank_ref, stored.value_date) == ("settled", "BR-1", SETTLED_ON)
    [posting] = postings(storage)
    assert posting["kind"] == "payment_settled"
    assert (posting["bank_ref"], posting["value_date"]) == ("BR-1", "2026-11-10")


def test_a_debit_of_another_amount_is_unmatched(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A debit whose amount is not the order's leaves it sent and is kept with the reason."""
    send_file(storage, [("O-1", "P-1")])
    message = notification("N-1", debit("BR-1", "O-1", amount=Decimal("504000")))
    apply(storage, agribank, message, raw_of(message))
    assert order(storage, "O-1").state == "sent"
    assert postings(storage) == []
    [reason] = unmatched_reasons(storage)
    assert "amount 504000 VND differs from order O-1's 540000 VND" in reason


def test_a_bank_ref_sent_again_is_applied_once(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """The same entry in a second notification is a repeat: one settlement, one posting."""
    send_file(storage, [("O-1", "P-1")])
    for msg_id in ("N-1", "N-2"):
        message = notification(msg_id, debit("BR-1", "O-1"))
        assert apply(storage, agribank, message, raw_of(message)) == "applied"
    assert order(storage, "O-1").state == "settled"
    assert len(postings(storage)) == 1
    assert storage.snapshot().camt_entries["agribank", "BR-1"][:2] == ("N-1", "settled")
    assert unmatched_reasons(storage) == []


def test_a_credit_is_revenue_with_its_posting(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A booked credit for no payment of ours is revenue, kept once and posted to the ledger."""
    credit = Entry(
        amount=Decimal("1250000"),
        currency="VND",
        credit_debit="CRDT",
        status="BOOK",
        booking_date=SETTLED_ON,
        value_date=SETTLED_ON,
        account_servicer_ref="BR-REV-1",
        details=(
            EntryDetail(
                amount=Decimal("1250000"),
                currency="VND",
                counterparty_name="Công ty TNHH Minh Phát",
                remittance="Nộp thuế môn bài 2026",
            ),
        ),
    )
    message = notification("N-1", credit)
    apply(storage, agribank, message, raw_of(message))
    [posting] = postings(storage)
    assert posting["kind"] == "revenue_collected"
    assert (posting["bank_ref"], posting["amount"]) == ("BR-REV-1", "1250000")
    assert posting["debtor_name"] == "Công ty TNHH Minh Phát"
    assert posting["order_id"] is None
    [(revenue, _)] = storage.snapshot().revenue.values()
    assert (revenue.amount, revenue.value_date) == (Decimal("1250000"), SETTLED_ON)


def test_a_notification_for_another_account_is_refused(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A camt.054 on an account not in the partner's profile is refused whole."""
    send_file(storage, [("O-1", "P-1")])
    message = notification("N-1", debit("BR-1", "O-1"), account="108000271446")
    with pytest.raises(InvalidMessage, match="not one of agribank's accounts"):
        apply(storage, agribank, message, raw_of(message))
    assert order(storage, "O-1").state == "sent"


# --- pacs.004 returns --------------------------------------------------------------------------


def test_a_settled_payment_returned_posts_payment_returned(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A pacs.004 on a settled order returns it, keeps the settlement's bank details on the
    order, and posts the return's own reference, date and reason."""
    send_file(storage, [("O-1", "P-1")])
    settled = notification("N-1", debit("BR-1", "O-1"))
    apply(storage, agribank, settled, raw_of(settled))
    message = payment_return("RT-1", returned("RTR-1", "O-1"))
    assert apply(storage, agribank, message, raw_of(message)) == "applied"
    stored = order(storage, "O-1")
    assert (stored.state, stored.bank_ref, stored.value_date) == ("returned", "BR-1", SETTLED_ON)
    settled_posting, returned_posting = postings(storage)
    assert settled_posting["kind"] == "payment_settled"
    assert returned_posting["kind"] == "payment_returned"
    assert (returned_posting["bank_ref"], returned_posting["value_date"]) == (
        "RTR-1",
        "2026-11-13",
    )
    assert returned_posting["reason"]["code"] == "AC04"
    [(record, _)] = storage.snapshot().returns.values()
    assert (record.order_id, record.amount, record.value_date) == ("O-1", AMOUNT, RETURNED_ON)


def test_a_return_of_an_unsettled_order_is_unmatched(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A return for an order the bank never settled leaves it sent, unposted, kept aside."""
    send_file(storage, [("O-1", "P-1")])
    message = payment_return("RT-1", returned("RTR-1", "O-1"))
    apply(storage, agribank, message, raw_of(message))
    assert order(storage, "O-1").state == "sent"
    assert postings(storage) == []
    assert unmatched_reasons(storage) == ["return of order O-1, which is sent, not settled"]
    assert storage.snapshot().returns == {}


def test_a_return_sent_again_is_applied_once(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """The same return id in a second pacs.004 is a repeat: one return, one posting."""
    send_file(storage, [("O-1", "P-1")])
    settle_by_report(storage, agribank, "O-1")
    for msg_id in ("RT-1", "RT-2"):
        message = payment_return(msg_id, returned("RTR-1", "O-1"))
        apply(storage, agribank, message, raw_of(message))
    assert order(storage, "O-1").state == "returned"
    assert [p["kind"] for p in postings(storage)] == ["payment_settled", "payment_returned"]
    assert unmatched_reasons(storage) == []


def return_entry(bank_ref: str | None, order_id: str, amount: Decimal = AMOUNT) -> Entry:
    """A booked camt.054 credit with return information for one of our payments."""
    return Entry(
        amount=amount,
        currency="VND",
        credit_debit="CRDT",
        status="BOOK",
        booking_date=RETURNED_ON,
        value_date=RETURNED_ON,
        account_servicer_ref=bank_ref,
        details=(
            EntryDetail(
                amount=amount,
                currency="VND",
                end_to_end_id=order_id,
                return_reason="AC04",
                return_reason_text="Tài khoản đã đóng",
            ),
        ),
    )


def _returned_posting(storage: MemoryStorage) -> dict[str, Any]:
    [posting] = [p for p in postings(storage) if p["kind"] == "payment_returned"]
    return posting


@pytest.mark.parametrize("kind", ["pacs.004", "camt.054"])
def test_both_return_messages_follow_one_rule(
    storage: MemoryStorage, agribank: PartnerProfile, kind: str
) -> None:
    """A pacs.004 line and a camt.054 return entry give the same posting (status BOOK, the
    return's date and reason) and, when the bank gives no reference, the same fallback one:
    the file's MsgId and the line's place in it."""
    send_file(storage, [("O-1", "P-1"), ("O-2", "P-1")])
    for order_id in ("O-1", "O-2"):
        settle_by_report(storage, agribank, order_id)
    message: Notification | PaymentReturn
    if kind == "pacs.004":
        lines = (returned("", "O-9"), returned("", "O-2"))
        message = payment_return("RT-1", *lines)
    else:
        message = notification("RT-1", return_entry(None, "O-9"), return_entry(None, "O-2"))
    assert apply(storage, agribank, message, raw_of(message)) == "applied"
    assert order(storage, "O-2").state == "returned"
    posting = _returned_posting(storage)
    assert (posting["status"], posting["bank_ref"], posting["value_date"]) == (
        "BOOK",
        "RT-1#2",
        RETURNED_ON.isoformat(),
    )
    assert posting["reason"] == {"code": "AC04", "text": "Tài khoản đã đóng"}
    [(record, _)] = storage.snapshot().returns.values()
    assert (record.bank_ref, record.order_id) == ("RT-1#2", "O-2")
    assert unmatched_reasons(storage) == ["return (AC04) of an unknown payment O-9"]


@pytest.mark.parametrize("kind", ["pacs.004", "camt.054"])
def test_a_return_of_another_amount_is_unmatched_the_same_way(
    storage: MemoryStorage, agribank: PartnerProfile, kind: str
) -> None:
    """Either message returning another amount leaves the order settled, with one reason."""
    send_file(storage, [("O-1", "P-1")])
    settle_by_report(storage, agribank, "O-1")
    message: Notification | PaymentReturn
    if kind == "pacs.004":
        message = payment_return("RT-1", returned("RTR-1", "O-1", Decimal("1")))
    else:
        message = notification("RT-1", return_entry("RTR-1", "O-1", Decimal("1")))
    apply(storage, agribank, message, raw_of(message))
    assert order(storage, "O-1").state == "settled"
    assert unmatched_reasons(storage) == ["return of 1 VND differs from order O-1's 540000 VND"]


# --- a large camt.054, applied in several transactions ----------------------------------------


class _RunDroppedError(Exception):
    """Ends a unit of work whose run of a step is not kept."""


def _steps_applied(
    storage: MemoryStorage,
    steps: Sequence[Any],
    *,
    stop_before: int | None = None,
    twice: bool = False,
) -> list[str]:
    """Run the steps as the inbound service does (one unit of work each, while they return
    MORE); `stop_before` stands for a gateway stopped before that step. With `twice` each step
    first runs in a unit that is rolled back, as SQLite's `run_unit` may run it."""
    results = []
    for index, step in enumerate(steps):
        if index == stop_before:
            break
        if twice:
            with contextlib.suppress(_RunDroppedError), storage.unit_of_work() as uow:
                step(uow)
                raise _RunDroppedError
        with storage.unit_of_work() as uow:
            results.append(step(uow))
        if results[-1] != MORE:
            break
    return results


def test_a_large_notification_is_applied_in_runs_with_the_same_result(
    agribank: PartnerProfile,
) -> None:
    """Seven debits applied three details per transaction settle exactly what one transaction
    settles; the file is kept by the last step, and a second delivery is a duplicate at once."""
    orders = [(f"O-{n}", "P-1") for n in range(7)]
    message = notification("N-1", *(debit(f"BR-{n}", f"O-{n}") for n in range(7)))
    whole, runs = MemoryStorage(), MemoryStorage()
    for storage in (whole, runs):
        send_file(storage, orders)
    assert apply(whole, agribank, message, raw_of(message)) == "applied"
    steps = notification_steps(agribank, message, raw_of(message), NOW, chunk=3)
    assert len(steps) == 3
    assert _steps_applied(runs, steps) == [MORE, MORE, "applied"]
    for order_id, _ in orders:
        assert order(runs, order_id).state == order(whole, order_id).state == "settled"
    assert sorted(p["end_to_end_id"] for p in postings(runs)) == [o for o, _ in orders]
    assert len(postings(runs)) == len(postings(whole)) == 7
    again = notification_steps(agribank, message, raw_of(message), NOW, chunk=3)
    assert _steps_applied(runs, again) == ["duplicate"]
    assert len(postings(runs)) == 7


def test_a_notification_stopped_part_way_is_completed_once_when_delivered_again(
    agribank: PartnerProfile,
) -> None:
    """A gateway that stops after the first run of details has settled those, but not kept the
    file: the redelivered file settles the rest, and nothing twice (entries by bank reference,
    one without a reference by the order's state)."""
    storage = MemoryStorage()
    send_file(storage, [(f"O-{n}", "P-1") for n in range(5)])
    no_reference = replace(debit("x", "O-4"), account_servicer_ref=None)
    message = notification("N-1", *(debit(f"BR-{n}", f"O-{n}") for n in range(4)), no_reference)
    steps = notification_steps(agribank, message, raw_of(message), NOW, chunk=2)
    assert _steps_applied(storage, steps, stop_before=1) == [MORE]
    assert [order(storage, f"O-{n}").state for n in range(5)] == ["settled"] * 2 + ["sent"] * 3
    assert storage.snapshot().inbound_files == {}
    redelivered = notification_steps(agribank, message, raw_of(message), NOW, chunk=2)
    assert _steps_applied(storage, redelivered) == [MORE, MORE, "applied"]
    assert [order(storage, f"O-{n}").state for n in range(5)] == ["settled"] * 5
    assert sorted(p["end_to_end_id"] for p in postings(storage)) == [f"O-{n}" for n in range(5)]
    assert unmatched_reasons(storage) == []


def test_a_reused_msg_id_is_refused_before_any_run_is_applied(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """Another file under a MsgId already kept is refused at the first step: nothing moves."""
    send_file(storage, [(f"O-{n}", "P-1") for n in range(4)])
    first = notification("N-1", debit("BR-0", "O-0"))
    assert apply(storage, agribank, first, raw_of(first)) == "applied"
    other = notification("N-1", *(debit(f"BR-{n}", f"O-{n}") for n in range(1, 4)))
    steps = notification_steps(agribank, other, b"<other bytes/>", NOW, chunk=1)
    with pytest.raises(InvalidMessage, match="reused MsgId N-1"):
        _steps_applied(storage, steps)
    assert [order(storage, f"O-{n}").state for n in range(1, 4)] == ["sent"] * 3


def test_a_file_applied_in_runs_each_run_twice_is_applied_once(agribank: PartnerProfile) -> None:
    """Each step of a large camt.054 and of a large pain.002 run twice, the first run rolled
    back (a prepared run that could not be kept): the orders, postings and the counts the file
    is logged with are those of a single run."""
    orders = [(f"O-{n}", "P-1") for n in range(7)]
    notice = notification("N-1", *(debit(f"BR-{n}", f"O-{n}") for n in range(7)))
    settled = MemoryStorage()
    send_file(settled, orders)
    with structlog.testing.capture_logs() as logs:
        steps = notification_steps(agribank, notice, raw_of(notice), NOW, chunk=3)
        assert _steps_applied(settled, steps, twice=True) == [MORE, MORE, "applied"]
    applied = [e for e in logs if e["event"] == "notification.applied"][-1]  # the kept run's
    assert applied["settled"] == 7 and applied["repeated"] == 0
    assert sorted(p["end_to_end_id"] for p in postings(settled)) == [o for o, _ in orders]

    lines = [TxStatus(f"O-{n}", "RJCT" if n == 0 else "ACSC") for n in range(5)]
    status = report("R-1", *lines, group_status="ACSC")
    reported = MemoryStorage()
    send_file(reported, orders)
    with structlog.testing.capture_logs() as logs:
        steps = report_steps(agribank, status, raw_of(status), NOW, chunk=3)
        assert _steps_applied(reported, steps, twice=True) == [MORE, MORE, "applied"]
    applied = [e for e in logs if e["event"] == "report.applied"][-1]
    assert applied["lines"] == 7 and applied["moved"] == 7 and applied["transactions"] == 3
    assert [order(reported, f"O-{n}").state for n in range(7)] == ["rejected"] + ["settled"] * 6
    assert _file(reported).state == FileState.ACKNOWLEDGED
    assert len(postings(reported)) == 7


def _file(storage: MemoryStorage) -> FileRecord:
    record = storage.queries.file(FILE)
    assert record is not None
    return record


def test_a_large_status_report_is_applied_in_runs(agribank: PartnerProfile) -> None:
    """Five status lines and a group status covering two more orders, three lines per
    transaction: every order moves as in one transaction, the file's status is recorded by the
    last step only, and a gateway stopped after the first step completes the rest once."""
    orders = [(f"O-{n}", "P-1") for n in range(7)]
    lines = [TxStatus(f"O-{n}", "RJCT" if n == 0 else "ACSC") for n in range(5)]
    message = report("R-1", *lines, group_status="ACSC")
    whole, runs = MemoryStorage(), MemoryStorage()
    for storage in (whole, runs):
        send_file(storage, orders)
    assert apply(whole, agribank, message, raw_of(message)) == "applied"
    assert _steps_applied(
        runs, report_steps(agribank, message, raw_of(message), NOW, chunk=3), stop_before=1
    ) == [MORE]
    assert _file(runs).status_at is None and _file(whole).status_at is not None
    again = report_steps(agribank, message, raw_of(message), NOW, chunk=3)
    assert _steps_applied(runs, again) == [MORE, MORE, "applied"]
    for order_id, _ in orders:
        assert order(runs, order_id).state == order(whole, order_id).state
    assert [order(runs, f"O-{n}").state for n in range(7)] == ["rejected"] + ["settled"] * 6
    assert _file(runs).state == _file(whole).state == FileState.ACKNOWLEDGED
    assert sorted(p["order_id"] for p in postings(runs)) == [o for o, _ in orders]
    assert _steps_applied(runs, report_steps(agribank, message, raw_of(message), NOW, chunk=3)) == [
        "duplicate"
    ]
    assert len(postings(runs)) == 7


def test_a_return_without_reference_gets_the_same_fallback_in_parts(
    agribank: PartnerProfile,
) -> None:
    """The reference a return without one is given (`<MsgId>#<n>`, n its detail's place among
    those applied) is the same whether the file is applied in one go or in parts, an
    inconsistent entry before it notwithstanding."""
    orders = [(f"O-{n}", "P-1") for n in range(4)]
    inconsistent = replace(debit("BR-X", "O-3"), amount=Decimal("1"))
    entries = (
        debit("BR-0", "O-0"),
        inconsistent,
        debit("BR-1", "O-1"),
        return_entry(None, "O-0"),
    )
    message = notification("N-1", *entries)
    whole, runs = MemoryStorage(), MemoryStorage()
    for storage in (whole, runs):
        send_file(storage, orders)
    assert apply(whole, agribank, message, raw_of(message)) == "applied"
    steps = notification_steps(agribank, message, raw_of(message), NOW, chunk=2)
    assert _steps_applied(runs, steps)[-1] == "applied"
    returned_ref = [p["bank_ref"] for p in postings(whole) if p["kind"] == "payment_returned"]
    assert returned_ref == [
        p["bank_ref"] for p in postings(runs) if p["kind"] == "payment_returned"
    ]
    assert returned_ref == ["N-1#3"]


def test_accepted_lines_move_together_as_each_line_would(
    storage: MemoryStorage, agribank: PartnerProfile
) -> None:
    """A report mostly of acceptances, with what must still be applied line by line: a second
    line for one order, an order of another file, an unknown order, a rejection, a late
    acceptance of a settled order. Each ends as its own line says; the log counts the moves."""
    send_file(storage, [(f"O-{n}", "P-1") for n in range(1, 7)])
    send_file(storage, [("X-1", "P-1")], msg_id="KBNN-AGR-OTHER")
    settle_by_report(storage, agribank, "O-5")
    message = report(
        "R-1",
        TxStatus("O-1", "ACCP"),
        TxStatus("O-2", "ACTC", reason_text="checked"),
        TxStatus("O-1", "ACSP"),
        TxStatus("X-1", "ACCP"),
        TxStatus("O-404", "ACCP"),
        TxStatus("O-3", "RJCT", reason_code="AC04"),
        TxStatus("O-5", "ACCP"),
        TxStatus("O-6", "RJCT", reason_code="AC01"),
        TxStatus("O-6", "ACCP", reason_text="too late"),
        group_status="ACCP",
    )
    with structlog.testing.capture_logs() as logs:
        assert apply(storage, agribank, message, raw_of(message)) == "applied"
    got = {o: order(storage, o) for o in ("O-1", "O-2", "O-3", "O-4", "O-5", "O-6", "X-1")}
    assert {o: stored.state for o, stored in got.items()} == {
        "O-1": TxState.ACKNOWLEDGED,
        "O-2": TxState.ACKNOWLEDGED,
        "O-3": TxState.REJECTED,
        "O-4": TxState.ACKNOWLEDGED,
        "O-5": TxState.SETTLED,
        "O-6": TxState.REJECTED,
        "X-1": TxState.SENT,
    }
    assert (got["O-6"].reason_code, got["O-6"].reason_text) == ("AC01", None)
    assert (got["O-1"].status_code, got["O-2"].status_code) == ("ACCP", "ACTC")
    assert (got["O-2"].reason_text, got["O-4"].status_code) == ("checked", "ACCP")
    assert got["O-5"].status_code == "ACSC"
    assert unmatched_reasons(storage) == [
        f"order X-1 was not sent in {FILE}",
        "no order O-404",
    ]
    assert [p["order_id"] for p in postings(storage)] == ["O-5", "O-3", "O-6"]
    [applied] = [e for e in logs if e["event"] == "report.applied"]
    assert (applied["lines"], applied["moved"]) == (10, 5)
