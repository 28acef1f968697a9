"""The bank simulator's answer to a file, in memory (no broker): its pain.002 and camt.054 are the
documents the object builders make of its decisions (a `TxStatus` per transaction, an `Entry`
and an `EntryDetail` per settled one), and its record holds every payment and booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.banksim.bank import REASONS, AccountBook, BankSimulator, _debit_references, _ref
from gateway.banksim.record import BankRecord
from gateway.domain.orders import Account, Budget
from gateway.iso20022 import xsd
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification, StatusReport, TxStatus
from gateway.iso20022.pain001 import build_pain001, read_pain001
from gateway.iso20022.pain002 import build_pain002
from gateway.iso20022.xml import parse_xml, to_bytes
from gateway.profile.signature import SignaturePolicy
from gateway.signing import (
    KeyPair,
    SignatureError,
    generate_keypair,
    sign,
    trusted,
    verify_for_partner,
)
from tests.unit.factories import CREATED_AT, batch, group, order

NOW = CREATED_AT + timedelta(minutes=5)
CLOSED = "8600000000002"
UNKNOWN = "8600000000005"


def _bank(path: Path) -> BankSimulator:
    return BankSimulator(
        bic="VBAAVNVX",
        account="7411058271001",
        keypair=None,
        trusted=(),
        record=BankRecord(path),
        book=AccountBook(closed=frozenset({CLOSED}), unknown=frozenset({UNKNOWN})),
        policy=SignaturePolicy(mode="none"),
        clock=lambda: NOW,
    )


def _file() -> bytes:
    """Two PmtInf; a closed and an unknown account among them; names and amounts of all kinds."""
    orders = [
        order(1, name="Nguyễn Thị Hồng & <Nhung>"),
        order(2, account=Account(number=CLOSED, scheme="BBAN")),
        order(3, amount="12.5", currency="EUR"),
        order(4, remittance="", account=Account(iban="DE89370400440532013000")),
        order(5, account=Account(number=UNKNOWN, scheme="BBAN")),
        order(6, name="Đỗ Minh Đức", budget=Budget("624", "7151", "2714")),
    ]
    return to_bytes(build_pain001(batch(group(orders[:4], "PMT-1"), group(orders[4:], "PMT-2"))))


def _expected(raw: bytes) -> tuple[bytes, bytes]:
    """The pain.002 and camt.054 as the bank built them with objects."""
    content = read_pain001(parse_xml(raw))
    decisions = [
        (t, AccountBook(frozenset({CLOSED}), frozenset({UNKNOWN})).decide(t))
        for t in content.transfers
    ]
    report = StatusReport(
        msg_id=_ref("VBA-STS-", content.msg_id)[:35],
        created_at=NOW,
        original_msg_id=content.msg_id,
        original_msg_name_id="pain.001.001.09",
        group_status="PART",
        transactions=tuple(
            TxStatus(
                original_end_to_end_id=t.end_to_end_id,
                original_instr_id=t.instr_id,
                original_pmt_inf_id=t.pmt_inf_id,
                status="RJCT" if reason else "ACCP",
                reason_code=reason,
                reason_text=REASONS.get(reason) if reason else None,
            )
            for t, reason in decisions
        ),
    )
    settled = [t for t, reason in decisions if reason is None]
    references = _debit_references(content.msg_id, settled)
    notification = Notification(
        msg_id=_ref("VBA-DBT-", content.msg_id)[:35],
        created_at=NOW,
        account="7411058271001",
        entries=tuple(
            Entry(
                amount=t.amount,
                currency=t.currency,
                credit_debit="DBIT",
                status="BOOK",
                booking_date=NOW.date(),
                value_date=NOW.date(),
                account_servicer_ref=reference,
                details=(
                    EntryDetail(
                        amount=t.amount,
                        currency=t.currency,
                        end_to_end_id=t.end_to_end_id,
                        msg_id=content.msg_id,
                        pmt_inf_id=t.pmt_inf_id,
                        account_servicer_ref=reference,
                        counterparty_name=t.creditor_name,
                        counterparty_account=t.creditor_account.split(":")[-1],
                        remittance=t.remittance,
                    ),
                ),
            )
            for t, reference in zip(settled, references, strict=True)
        ),
    )
    return to_bytes(build_pain002(report)), to_bytes(build_camt054(notification))


def test_the_replies_are_the_documents_of_the_decisions(tmp_path: Path) -> None:
    raw = _file()
    bank = _bank(tmp_path / "bank.db")
    replies = bank.receive(raw)
    status, debits = _expected(raw)
    assert [(kind, body) for _, kind, body in replies] == [
        ("pain.002", status),
        ("camt.054", debits),
    ]
    for _, _, body in replies:
        xsd.validate(parse_xml(body))
    assert bank.record.totals() == {
        "settled": (4, "1818012.50"),
        "rejected": (2, "1212000"),
    }
    assert [entry[5] for entry in bank.record.booked(day=NOW.date().isoformat())] == [
        "ORD-2025-0000001",
        "ORD-2025-0000003",
        "ORD-2025-0000004",
        "ORD-2025-0000006",
    ]
    assert bank.record.replies_to("KBNN-20250314-0001") == replies
    assert bank.receive(raw) == replies  # the same file again: the same replies
    bank.record.close()


def test_signed_replies_made_from_their_text_verify_at_the_gateway(tmp_path: Path) -> None:
    """A bank that signs enveloped signs its pain.002 and camt.054 from the text it wrote: the
    gateway's own check (the streamed digest, SignedInfo by libxmlsec1) takes them, and refuses
    one with a changed byte."""
    since = datetime(2024, 1, 1, tzinfo=UTC)
    treasury = KeyPair(*generate_keypair("KBNN", valid_from=since))
    bank_key = KeyPair(*generate_keypair("VBA", valid_from=since))
    policy = SignaturePolicy(mode="enveloped")
    bank = BankSimulator(
        bic="VBAAVNVX",
        account="7411058271001",
        keypair=bank_key,
        trusted=(trusted(treasury.cert_pem),),
        record=BankRecord(tmp_path / "bank.db"),
        book=AccountBook(closed=frozenset({CLOSED}), unknown=frozenset({UNKNOWN})),
        policy=policy,
        clock=lambda: NOW,
    )
    replies = bank.receive(sign(parse_xml(_file()), treasury))
    assert [kind for _, kind, _ in replies] == ["pain.002", "camt.054"]
    pinned = [trusted(bank_key.cert_pem)]
    for _, _, body in replies:
        assert verify_for_partner(body, policy, pinned, NOW).document is not None
        changed = body.replace(b"ORD-2025-0000001", b"ORD-2025-0000009", 1)
        assert changed != body
        with pytest.raises(SignatureError):
            verify_for_partner(changed, policy, pinned, NOW)
    bank.record.close()
