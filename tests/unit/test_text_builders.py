"""The camt.054 and pain.002 builders write text and parse it once: the document must be the
one their element-by-element twins build, byte for byte, whatever the names hold (Vietnamese in
NFD or NFC, `& < > " '`, line ends), XSD-valid, and read back as written."""

from __future__ import annotations

import gc
import unicodedata
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.banksim.bank import _collector_paused, _debit_references, _ref
from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.camt054 import (
    Debit,
    build_camt054,
    build_camt054_debits,
    build_camt054_elements,
    camt054_debits_document,
    debit_entries,
    read_camt054,
)
from gateway.iso20022.model import (
    CreditTransfer,
    Entry,
    EntryDetail,
    Notification,
    StatusReport,
    TxStatus,
)
from gateway.iso20022.pain002 import (
    Status,
    build_pain002,
    build_pain002_elements,
    build_pain002_statuses,
    pain002_statuses_document,
    read_pain002,
)
from gateway.iso20022.xml import to_bytes
from gateway.iso20022.xmltext import OwnDocument, escape, escape_attribute, parse_own
from tests.unit.factories import CREATED_AT

DAY = date(2026, 11, 20)
NAME = "Nguyễn Thị Hồng Nhung & <Con> \"Ánh\" 'Tuyết'"
REMITTANCE = "Trợ cấp xã hội tháng 11/2026 > 3 & < 5\r\nhồ sơ\t42"


def _detail(
    name: str = NAME, remittance: str | None = REMITTANCE, **changes: object
) -> EntryDetail:
    detail = EntryDetail(
        amount=Decimal("606000"),
        currency="VND",
        end_to_end_id="B0000001&<>",
        msg_id="LOT-0001",
        pmt_inf_id="PMT-0001",
        account_servicer_ref="VBA0123456789ABCDEF",
        counterparty_name=name,
        counterparty_account="BBAN:8613000000001",
        remittance=remittance,
    )
    return replace(detail, **changes)  # type: ignore[arg-type]


def _entry(*details: EntryDetail, **changes: object) -> Entry:
    entry = Entry(
        amount=details[0].amount if details else Decimal("606000"),
        currency="VND",
        credit_debit="DBIT",
        status="BOOK",
        booking_date=DAY,
        value_date=DAY,
        account_servicer_ref="VBA0123456789ABCDEF",
        details=details,
    )
    return replace(entry, **changes)  # type: ignore[arg-type]


def _notification(*entries: Entry) -> Notification:
    return Notification(
        msg_id="VBA-DBT-0001", created_at=CREATED_AT, account="7411058271001", entries=entries
    )


def _same_camt054(notification: Notification) -> bytes:
    """Both builders' bytes, asserted equal."""
    written = to_bytes(build_camt054(notification))
    assert written == to_bytes(build_camt054_elements(notification))
    return written


def test_escaping_reads_back_exactly_and_is_canonical() -> None:
    """Text and attribute values read back as they were, written as exclusive C14N writes
    them (so a document written this way is signed as it is)."""
    value = "a & b < c > d \" e ' f \r g \n h \t i ]]> 😀"
    written = f'<a b="{escape_attribute(value)}">{escape(value)}</a>'
    assert parse_own(written).get("b") == value
    assert parse_own(f"<a>{escape(value)}</a>").text == value
    assert etree.tostring(parse_own(written), method="c14n", exclusive=True) == written.encode()
    assert escape("Nguyễn Văn An") == "Nguyễn Văn An"


def test_camt054_with_vietnamese_and_xml_specials_is_the_same_document_and_valid() -> None:
    decomposed = unicodedata.normalize("NFD", NAME)
    notification = _notification(
        _entry(_detail()),
        _entry(_detail(name=decomposed, remittance=unicodedata.normalize("NFD", REMITTANCE))),
        _entry(_detail(remittance=None, structured_ref="MST&0101<234>")),
        _entry(
            _detail(
                counterparty_account="DE89370400440532013000",
                amount=Decimal("606.50"),
                currency="EUR",
                return_reason="AC04X",
                return_reason_text="Tài khoản đã đóng & không nhận <tiền> " * 5,
            ),
            amount=Decimal("606.50"),
            currency="EUR",
            credit_debit="CRDT",
            entry_ref="NTRY&1",
            status="BOOKED-LONG",
        ),
        _entry(booking_date=None, value_date=None, account_servicer_ref=None),
    )
    written = _same_camt054(notification)
    root = etree.fromstring(written)
    xsd.validate(root)
    read = read_camt054(root)
    first, second = read.entries[0].details[0], read.entries[1].details[0]
    assert first.counterparty_name == NAME
    assert second.counterparty_name == NAME  # written in NFC
    assert first.remittance == REMITTANCE.strip()
    assert first.end_to_end_id == "B0000001&<>"
    assert read.entries[2].details[0].structured_ref == "MST&0101<234>"
    assert read.entries[3].details[0].return_reason == "AC04X"
    assert read.entries[3].details[0].counterparty_account == "DE89370400440532013000"


def test_amounts_written_through_the_slow_path_stay_the_same() -> None:
    for amount, currency in (
        (Decimal("606000.0"), "VND"),
        (Decimal("6E+5"), "VND"),
        (Decimal("606.5"), "EUR"),
        (Decimal("606.500"), "EUR"),
        (Decimal("12.5"), "XAU"),
    ):
        detail = _detail(amount=amount, currency=currency)
        _same_camt054(_notification(_entry(detail, amount=amount, currency=currency)))


def test_what_text_cannot_carry_is_refused_as_before() -> None:
    for notification in (
        _notification(_entry(_detail(name="Nguyễn\x01An"))),
        _notification(_entry(_detail(remittance="lone \ud800 surrogate"))),
    ):
        with pytest.raises(ValueError) as expected:
            build_camt054_elements(notification)
        with pytest.raises(ValueError) as got:
            build_camt054(notification)
        assert str(got.value) == str(expected.value)
    for bad in (
        _notification(_entry(_detail(), credit_debit="DEBIT")),
        _notification(_entry(_detail(amount=Decimal("606000.5")))),
        _notification(_entry(_detail(amount=Decimal("-5")), amount=Decimal("-5"))),
    ):
        with pytest.raises(InvalidMessage) as expected_refusal:
            build_camt054_elements(bad)
        with pytest.raises(InvalidMessage) as refusal:
            build_camt054(bad)
        assert str(refusal.value) == str(expected_refusal.value)


NAMES = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters="&<>\"'\r\n\t"
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(name=NAMES, remittance=NAMES, reason=NAMES, end_to_end_id=NAMES)
def test_any_text_gives_the_same_camt054(
    name: str, remittance: str, reason: str, end_to_end_id: str
) -> None:
    detail = _detail(
        name=name, remittance=remittance, end_to_end_id=end_to_end_id, return_reason_text=reason
    )
    _same_camt054(_notification(_entry(detail)))


def _debit(n: int = 1, **changes: object) -> Debit:
    """A settled transfer as the bank books it (`changes` by field name)."""
    values: dict[str, object] = {
        "amount": Decimal("606000"),
        "currency": "VND",
        "reference": f"VBA{n:017d}",
        "msg_id": "LOT-0001&<>",
        "pmt_inf_id": "PMT-0001",
        "end_to_end_id": f"B{n:07d}",
        "name": NAME,
        "account": f"8613{n:09d}",
        "remittance": REMITTANCE,
    }
    values.update(changes)
    return tuple(values.values())  # type: ignore[return-value]


def _canonical(document: OwnDocument, as_text: bool = True) -> OwnDocument:
    """The document, its text (when written as text) asserted its tree's exclusive C14N: what
    the bank simulator signs and sends as it is."""
    if not as_text:  # built element by element, as it says it must be
        assert document.canonical is None
        return document
    assert document.canonical is not None  # any text but a control character is written
    canonical = etree.tostring(document.root, method="c14n", exclusive=True)
    assert canonical == document.canonical
    return document


def _debits_bytes(debits: list[Debit]) -> bytes:
    """The debits' camt.054, asserted the one `build_camt054` (text and elements) makes of
    their `debit_entries`, and its text its canonical form."""
    document = _canonical(
        camt054_debits_document("VBA-DBT-0001", CREATED_AT, "7411058271001", DAY, debits)
    )
    written = to_bytes(document.root)
    assert written == _same_camt054(
        Notification("VBA-DBT-0001", CREATED_AT, "7411058271001", debit_entries(DAY, debits))
    )
    return written


def test_debits_are_the_notification_of_their_entries() -> None:
    """Written from the debits directly, the document is the one their Entry objects give:
    Vietnamese in NFD, XML specials, missing parts, other account forms and currencies."""
    written = _debits_bytes(
        [
            _debit(1),
            _debit(2, name=unicodedata.normalize("NFD", NAME), remittance=None),
            _debit(3, name="", account="", pmt_inf_id=None, msg_id=None),
            _debit(4, name=None, account="DE89370400440532013000", reference=""),
            _debit(5, account="BBAN:8613000000005", end_to_end_id=None),
            _debit(6, amount=Decimal("606.5"), currency="EUR", remittance=""),
            _debit(7, amount=Decimal("606000.0")),
            _debit(8, amount=Decimal("12.5"), currency="XAU"),
        ]
    )
    root = etree.fromstring(written)
    xsd.validate(root)
    read = read_camt054(root)
    assert [entry.details[0].end_to_end_id for entry in read.entries][:2] == [
        "B0000001",
        "B0000002",
    ]
    assert read.entries[1].details[0].counterparty_name == NAME
    assert _debits_bytes([]) == _same_camt054(
        Notification("VBA-DBT-0001", CREATED_AT, "7411058271001", ())
    )


def test_debits_the_text_cannot_carry_are_refused_as_before() -> None:
    for debits in ([_debit(1), _debit(2, name="Nguyễn\x01An")], [_debit(remittance="\ud800")]):
        entries = debit_entries(DAY, debits)
        with pytest.raises(ValueError) as expected:
            build_camt054(Notification("N", CREATED_AT, "7411058271001", entries))
        with pytest.raises(ValueError) as got:
            build_camt054_debits("N", CREATED_AT, "7411058271001", DAY, debits)
        assert str(got.value) == str(expected.value)
    for bad in (
        [_debit(amount=Decimal("606000.5"))],
        [_debit(amount=Decimal("-5"))],
    ):
        entries = debit_entries(DAY, bad)
        with pytest.raises(InvalidMessage) as expected_refusal:
            build_camt054(Notification("N", CREATED_AT, "7411058271001", entries))
        with pytest.raises(InvalidMessage) as refusal:
            build_camt054_debits("N", CREATED_AT, "7411058271001", DAY, bad)
        assert str(refusal.value) == str(expected_refusal.value)


@settings(max_examples=60, deadline=None)
@given(name=NAMES, remittance=NAMES, end_to_end_id=NAMES, reference=NAMES)
def test_any_text_gives_the_same_debits(
    name: str, remittance: str, end_to_end_id: str, reference: str
) -> None:
    debit = _debit(name=name, remittance=remittance, end_to_end_id=end_to_end_id)
    _debits_bytes([debit, _debit(2, reference=reference)])


def _report(*lines: TxStatus, **changes: object) -> StatusReport:
    report = StatusReport(
        msg_id="VBA-STS-0001",
        created_at=CREATED_AT,
        original_msg_id="LOT\r0001&<>",
        original_msg_name_id="pain.001.001.09",
        group_status="PART",
        transactions=lines,
    )
    return replace(report, **changes)  # type: ignore[arg-type]


def _same_pain002(report: StatusReport) -> bytes:
    written = to_bytes(build_pain002(report))
    assert written == to_bytes(build_pain002_elements(report))
    return written


def test_pain002_is_the_same_document_valid_and_read_back() -> None:
    reason = 'Tài khoản đã đóng & <closed> "account" ' * 4
    report = _report(
        TxStatus("B0000001&", "ACCP", "B0000001&", "PMT-0001"),
        TxStatus("B0000002", "RJCT", None, "PMT-0001", "AC04", reason),
        TxStatus(None, "PART", None, "PMT-0002", "NARR-LONG", "Một phần & <lỗi>"),
        TxStatus("B0000003", "RJCT", "B0000003", "PMT-0002", None, "only a reason"),
        group_reason_code="FF01",
        group_reason_text="Tệp & <tệp>",
    )
    written = _same_pain002(report)
    root = etree.fromstring(written)
    xsd.validate(root)
    read = read_pain002(root)
    assert read.original_msg_id == "LOT\r0001&<>"
    assert [line.original_end_to_end_id for line in read.transactions] == [
        "B0000001&",
        "B0000002",
        None,
        "B0000003",
    ]
    assert read.transactions[1].reason_text == reason.strip()
    assert read.transactions[2].reason_code == "NARR-LONG"
    _same_pain002(_report(group_status=None, transactions=()))


def test_pain002_refusals_are_as_before() -> None:
    for bad in (
        _report(TxStatus("B1", "ACCP", "B1", None)),
        _report(TxStatus(None, "RJCT", None, "P"), TxStatus(None, "ACCP", None, "P")),
    ):
        with pytest.raises(InvalidMessage) as expected:
            build_pain002_elements(bad)
        with pytest.raises(InvalidMessage) as got:
            build_pain002(bad)
        assert str(got.value) == str(expected.value)
    control = _report(TxStatus("B1", "RJCT", "B1", "P", "AC04", "bad \x02 text"))
    with pytest.raises(ValueError, match="XML compatible"):
        build_pain002(control)


def _statuses_bytes(
    statuses: list[Status], group_status: str | None = "PART", *, as_text: bool = True
) -> bytes:
    """The statuses' pain.002, asserted the one `build_pain002` (text and elements) makes of
    their `TxStatus` lines, and its text its canonical form."""
    document = _canonical(
        pain002_statuses_document(
            "VBA-STS-0001", CREATED_AT, "LOT\r0001&<>", group_status, statuses
        ),
        as_text,
    )
    written = to_bytes(document.root)
    lines = tuple(TxStatus(*status) for status in statuses)
    assert written == _same_pain002(_report(*lines, group_status=group_status))
    return written


def test_status_lines_are_the_report_of_their_tx_statuses() -> None:
    reason = 'Tài khoản đã đóng & <closed> "account" ' * 4
    written = _statuses_bytes(
        [
            ("B0000001&", "ACCP", "B0000001&", "PMT-0001", None, None),
            ("B0000002", "RJCT", None, "PMT-0002", "AC04", reason),
            (None, "RJCT", "I3", "PMT-0001", "NARR-LONG", unicodedata.normalize("NFD", reason)),
            ("B0000004", "RJCT", "B0000004", "PMT-0002", "AC04", reason),
            ("", "ACCP", "I5", "PMT-0001", "", ""),
        ]
    )
    read = read_pain002(etree.fromstring(written))
    assert [line.original_pmt_inf_id for line in read.transactions] == [
        "PMT-0001",
        "PMT-0001",
        "PMT-0001",
        "PMT-0002",
        "PMT-0002",
    ]
    assert read.transactions[3].reason_text == reason.strip()
    _statuses_bytes([], group_status=None)
    # A PmtInf's own line (no ids) goes first in its block: written the general way.
    _statuses_bytes(
        [("B1", "ACCP", "B1", "P", None, None), (None, "PART", None, "P", "X", "part")],
        as_text=False,
    )


def test_status_lines_refused_as_before() -> None:
    for bad in (
        [("B1", "ACCP", "B1", None, None, None)],
        [(None, "RJCT", None, "P", None, None), (None, "ACCP", None, "P", None, None)],
    ):
        lines = tuple(TxStatus(*status) for status in bad)
        with pytest.raises(InvalidMessage) as expected:
            build_pain002(_report(*lines))
        with pytest.raises(InvalidMessage) as got:
            build_pain002_statuses("VBA-STS-0001", CREATED_AT, "LOT\r0001&<>", "PART", bad)
        assert str(got.value) == str(expected.value)
    with pytest.raises(ValueError, match="XML compatible"):
        build_pain002_statuses(
            "S", CREATED_AT, "L", "RJCT", [("B1", "RJCT", "B1", "P", "AC04", "bad \x02 text")]
        )


@settings(max_examples=60, deadline=None)
@given(end_to_end_id=NAMES, reason=NAMES, pmt_inf_id=NAMES)
def test_any_text_gives_the_same_status_lines(
    end_to_end_id: str, reason: str, pmt_inf_id: str
) -> None:
    _statuses_bytes(
        [
            (end_to_end_id, "RJCT", "I1", pmt_inf_id or "P", "AC01", reason),
            ("B2", "ACCP", end_to_end_id or None, "P", None, None),
        ]
    )


def test_debit_references_are_the_bank_references() -> None:
    transfers = [
        CreditTransfer("P", None, f"B{n:07d}", Decimal(1), "VND", "", "", None, "", None, None)
        for n in range(3)
    ]
    assert _debit_references("LOT-0001", transfers) == [
        _ref("VBA", "LOT-0001", t.end_to_end_id)[:35] for t in transfers
    ]


def test_the_collector_resumes_after_a_file_even_a_failed_one() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()  # it was off: left off
    finally:
        gc.enable()
