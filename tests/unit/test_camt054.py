"""camt.054 notifications: .08 builder, and the reader of .02, .04 and .08."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.camt054 import build_camt054, read_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.iso20022.xml import parse_xml, to_bytes
from tests.unit.factories import CREATED_AT

V08 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
SETTLED = date(2025, 3, 17)


def sample(samples: Path, name: str) -> Notification:
    """Read one sample file through the hardened parser."""
    return read_camt054(parse_xml((samples / name).read_bytes()))


def settlement() -> Entry:
    """Our benefits file settled: one debit entry, two transactions, VND."""
    details = (
        EntryDetail(
            amount=Decimal("606000"),
            currency="VND",
            end_to_end_id="ORD-2025-0000001",
            msg_id="KBNN-20250314-0001",
            pmt_inf_id="PMT-SSBE",
            account_servicer_ref="VBA-TX-0001",
            counterparty_name="Nguyễn Thị Hồng Nhung",
            counterparty_account="BBAN:1000000000001",
            remittance="Trợ cấp xã hội tháng 3/2025",
        ),
        EntryDetail(
            amount=Decimal("1250000"),
            currency="VND",
            end_to_end_id="ORD-2025-0000010",
            msg_id="KBNN-20250314-0001",
            pmt_inf_id="PMT-SSBE",
            account_servicer_ref="VBA-TX-0002",
            counterparty_name="Trần Văn Đức",
            counterparty_account="BBAN:1000000000010",
        ),
    )
    return Entry(
        amount=Decimal("1856000"),
        currency="VND",
        credit_debit="DBIT",
        status="BOOK",
        booking_date=SETTLED,
        value_date=SETTLED,
        account_servicer_ref="VBA-NTRY-0001",
        details=details,
        entry_ref="NTRY-1",
    )


def revenue() -> Entry:
    """A tax collected at the bank: one credit entry with a structured reference."""
    detail = EntryDetail(
        amount=Decimal("2500000"),
        currency="VND",
        end_to_end_id="THUE-2025-000777",
        account_servicer_ref="VBA-TX-0777",
        counterparty_name="Công ty TNHH Hoàng Long",
        counterparty_account="BBAN:2100123456789",
        remittance="Nộp thuế GTGT quý 1/2025",
        structured_ref="MST0101234567",
    )
    return Entry(
        Decimal("2500000"), "VND", "CRDT", "BOOK", SETTLED, SETTLED, "VBA-NTRY-0777", (detail,)
    )


def returned() -> Entry:
    """A settled payment coming back: a credit entry with a return reason."""
    detail = EntryDetail(
        amount=Decimal("606000"),
        currency="VND",
        end_to_end_id="ORD-2025-0000002",
        msg_id="KBNN-20250314-0001",
        pmt_inf_id="PMT-SSBE",
        account_servicer_ref="VBA-RTN-0002",
        counterparty_name="Lê Thị Ánh Tuyết",
        return_reason="AC04",
    )
    return Entry(
        Decimal("606000"), "VND", "CRDT", "BOOK", SETTLED, SETTLED, "VBA-NTRY-0002", (detail,)
    )


def notification(*entries: Entry) -> Notification:
    """A notification on the treasury's account at Agribank."""
    return Notification(
        msg_id="VBA-NTF-20250317-0001",
        created_at=CREATED_AT,
        account="BBAN:1500201091234",
        entries=entries or (settlement(), revenue(), returned()),
    )


def xpath(root: etree._Element, path: str) -> list[str]:
    """Texts at an XPath written with the `c:` prefix."""
    return [str(value) for value in root.xpath(f"{path}/text()", namespaces={"c": V08})]


def test_built_notification_is_valid_against_camt054_001_08() -> None:
    """Debit, credit and return entries validate against the official .08 schema."""
    root = build_camt054(notification())
    assert etree.QName(root).namespace == V08
    xsd.validate(root)


def test_header_account_and_entry_fields() -> None:
    """MsgId, notification id and account, amounts as VND integers, status and dates."""
    root = build_camt054(notification())
    assert xpath(root, "//c:GrpHdr/c:MsgId") == ["VBA-NTF-20250317-0001"]
    assert xpath(root, "//c:Ntfctn/c:Id") == ["VBA-NTF-20250317-0001"]
    assert xpath(root, "//c:Ntfctn/c:CreDtTm") == ["2025-03-14T09:30:00+07:00"]
    assert xpath(root, "//c:Ntfctn/c:Acct/c:Id/c:Othr/c:Id") == ["1500201091234"]
    assert xpath(root, "//c:Ntry/c:Amt") == ["1856000", "2500000", "606000"]
    assert root.xpath("//c:Ntry/c:Amt/@Ccy", namespaces={"c": V08}) == ["VND"] * 3
    assert xpath(root, "//c:Ntry/c:CdtDbtInd") == ["DBIT", "CRDT", "CRDT"]
    assert xpath(root, "//c:Ntry/c:Sts/c:Cd") == ["BOOK"] * 3
    assert xpath(root, "//c:Ntry/c:BookgDt/c:Dt") == ["2025-03-17"] * 3
    assert xpath(root, "//c:Ntry/c:AcctSvcrRef")[0] == "VBA-NTRY-0001"
    assert xpath(root, "//c:Ntry/c:NtryRef") == ["NTRY-1"]


def test_bank_transaction_codes_fit_the_direction() -> None:
    """Our debit is ICDT/DMCT, a revenue credit RCDT/DMCT, a return ICDT/RRTN."""
    root = build_camt054(notification())
    assert xpath(root, "//c:Ntry/c:BkTxCd/c:Domn/c:Cd") == ["PMNT"] * 3
    assert xpath(root, "//c:BkTxCd/c:Domn/c:Fmly/c:Cd") == ["ICDT", "RCDT", "ICDT"]
    assert xpath(root, "//c:BkTxCd/c:Domn/c:Fmly/c:SubFmlyCd") == ["DMCT", "DMCT", "RRTN"]


def test_transaction_details_carry_references_parties_and_reasons() -> None:
    """Refs, creditor of a debit, debtor of a credit, structured reference, return reason."""
    root = build_camt054(notification())
    assert xpath(root, "//c:TxDtls/c:Refs/c:EndToEndId") == [
        "ORD-2025-0000001",
        "ORD-2025-0000010",
        "THUE-2025-000777",
        "ORD-2025-0000002",
    ]
    assert xpath(root, "//c:Refs/c:MsgId")[0] == "KBNN-20250314-0001"
    assert xpath(root, "//c:Refs/c:PmtInfId")[0] == "PMT-SSBE"
    assert xpath(root, "//c:RltdPties/c:Cdtr/c:Pty/c:Nm") == [
        "Nguyễn Thị Hồng Nhung",
        "Trần Văn Đức",
    ]
    assert xpath(root, "//c:RltdPties/c:Dbtr/c:Pty/c:Nm") == [
        "Công ty TNHH Hoàng Long",
        "Lê Thị Ánh Tuyết",
    ]
    assert xpath(root, "//c:CdtrRefInf/c:Ref") == ["MST0101234567"]
    assert xpath(root, "//c:RtrInf/c:Rsn/c:Cd") == ["AC04"]
    assert xpath(root, "//c:TxDtls/c:Amt") == ["606000", "1250000", "2500000", "606000"]


def test_round_trip_build_then_read() -> None:
    """The gateway reads back exactly what the simulator wrote."""
    original = notification()
    assert read_camt054(parse_xml(to_bytes(build_camt054(original)))) == original


def test_an_iban_account_and_a_long_status() -> None:
    """An IBAN account is written as IBAN; a status longer than a code goes to Prtry."""
    entry = Entry(Decimal("10.50"), "EUR", "CRDT", "PENDING", None, None, None)
    original = Notification("N-1", CREATED_AT, "DE89370400440532013000", (entry,))
    root = build_camt054(original)
    xsd.validate(root)
    assert xpath(root, "//c:Acct/c:Id/c:IBAN") == ["DE89370400440532013000"]
    assert xpath(root, "//c:Ntry/c:Sts/c:Prtry") == ["PENDING"]
    assert read_camt054(root) == original


def test_refusals() -> None:
    """A direction other than CRDT/DBIT and excess decimals are refused."""
    with pytest.raises(InvalidMessage, match=r"'CRED' is not CRDT or DBIT"):
        build_camt054(notification(Entry(Decimal(1), "VND", "CRED", "BOOK", None, None, None)))
    with pytest.raises(InvalidMessage, match=r"VND allows 0"):
        build_camt054(notification(Entry(Decimal("1.5"), "VND", "CRDT", "BOOK", None, None, None)))


def test_a_notification_for_two_accounts_is_refused() -> None:
    """One account per notification: two different accounts are refused, not merged."""
    root = build_camt054(notification(revenue()))
    body = root[0]
    second = etree.fromstring(etree.tostring(body[1]))
    iban = second.find(f"{{{V08}}}Acct/{{{V08}}}Id")
    assert iban is not None
    iban[0].tag = f"{{{V08}}}IBAN"
    iban[0].text = "DE89370400440532013000"
    body.append(second)
    with pytest.raises(InvalidMessage, match=r"found 2 Ntfctn for 2 account"):
        read_camt054(root)


def test_reading_a_statement_is_refused() -> None:
    """A camt.053 is not a notification."""
    with pytest.raises(InvalidMessage, match=r"expected a camt.054 notification, got camt.053"):
        read_camt054(etree.Element("{urn:iso:std:iso:20022:tech:xsd:camt.053.001.08}Document"))


# --- Third-party files -------------------------------------------------------------------------


def test_postfinance_credit(samples: Path) -> None:
    """10 (.04): one booked credit of CHF 1,500.00."""
    parsed = sample(samples, "10_camt054_00104_postfinance_credit.xml")
    assert parsed.msg_id == "201904245375204223076552"
    assert parsed.created_at == datetime(2019, 4, 24, 21, 28, 58)  # noqa: DTZ001
    assert parsed.account == "CH2909000000250094239"
    (entry,) = parsed.entries
    assert (entry.amount, entry.currency, entry.credit_debit, entry.status) == (
        Decimal("1500.00"),
        "CHF",
        "CRDT",
        "BOOK",
    )
    assert (entry.booking_date, entry.value_date) == (date(2019, 4, 24), date(2019, 4, 25))
    assert entry.account_servicer_ref == "074820002ZZ9J42U"
    (detail,) = entry.details
    assert (detail.amount, detail.account_servicer_ref) == (Decimal("1500.00"), "074820002ZZ9J42U")


def test_postfinance_debit(samples: Path) -> None:
    """11 (.04): a debit with the original message, PmtInf and EndToEnd ids."""
    (entry,) = sample(samples, "11_camt054_00104_postfinance_debit.xml").entries
    assert (entry.amount, entry.credit_debit) == (Decimal("913.00"), "DBIT")
    assert entry.account_servicer_ref == "074820002ZU1EQ0K"
    (detail,) = entry.details
    assert detail.end_to_end_id == "20190424001255000100006"
    assert (detail.msg_id, detail.pmt_inf_id) == ("20190424-000369773", "30003101")
    assert detail.account_servicer_ref == "25-1120172999-2"


def test_postfinance_return(samples: Path) -> None:
    """12 (.04): a returned payment credited back, reason AC01, with the original ids."""
    parsed = sample(samples, "12_camt054_00104_postfinance_returns.xml")
    assert parsed.account == "CH5109000000250092291"
    (entry,) = parsed.entries
    assert (entry.amount, entry.credit_debit, entry.booking_date) == (
        Decimal("500.00"),
        "CRDT",
        date(2020, 11, 24),
    )
    (detail,) = entry.details
    assert detail.return_reason == "AC01"
    assert detail.return_reason_text == "Kontonummer falsch"
    assert (detail.end_to_end_id, detail.pmt_inf_id) == ("EndToEndId-001-03-04", "PmtInfId-001-03")
    assert detail.account_servicer_ref == "190520CH02ZZTJR1"
    assert detail.counterparty_name == "Robert Schneider SA"
    assert detail.counterparty_account == "CH8709000000929471495"
    assert detail.remittance == "Kontouebertrag"


def test_finnish_federation_sample(samples: Path) -> None:
    """13 (.02): amounts from AmtDtls, batch message ids, a debit batch and booked returns."""
    parsed = sample(samples, "13_camt054_00102_fi_fffs.xml")
    assert parsed.msg_id == "BANKFILEID219073"
    assert parsed.created_at == datetime(
        2009, 10, 30, 21, 1, 45, tzinfo=timezone(timedelta(hours=2))
    )
    assert parsed.account == "FI7433010001222090"
    assert [e.amount for e in parsed.entries] == [
        Decimal(v) for v in ("2000.00", "500.00", "3000.00", "4230.05", "1000.00", "100.00")
    ]
    assert [e.credit_debit for e in parsed.entries] == ["CRDT"] * 3 + ["DBIT"] * 2 + ["CRDT"]
    first = parsed.entries[0].details
    assert [d.amount for d in first] == [Decimal("1900.00"), Decimal("100.00")]
    assert [d.msg_id for d in first] == ["BANKFILEID998765"] * 2
    assert [(d.counterparty_name, d.structured_ref) for d in first] == [
        ("PAYERS NAME1", "3900"),
        ("PAYERS NAME2", "43216"),
    ]
    debit = parsed.entries[3]
    assert sum(d.amount for d in debit.details) == debit.amount
    assert debit.details[0].counterparty_name == "Creditor Company"
    assert debit.details[0].counterparty_account == "BBAN:29501800020582"
    fx = parsed.entries[4].details[0]
    assert (fx.amount, fx.currency, fx.end_to_end_id) == (
        Decimal("500.00"),
        "EUR",
        "ISSRBKREF12345678",
    )
    errors = parsed.entries[5]
    assert errors.status == "INFO"
    assert [d.return_reason for d in errors.details] == ["AC01", "CUST"]
    assert [d.return_reason_text for d in errors.details] == [
        "1+TILIÄ EI LÖYDY",
        "4+MAKSAJA PERUUTTANUT",
    ]


def test_genkgo_camt054_001_08(samples: Path) -> None:
    """14 (.08): a debit with three CHF transactions, parties under Pty, batch ids."""
    parsed = sample(samples, "14_camt054_00108_genkgo.xml")
    assert parsed.account == "CH2801234000123456789"
    (entry,) = parsed.entries
    assert (entry.amount, entry.currency, entry.credit_debit, entry.status) == (
        Decimal("200000"),
        "SEK",
        "DBIT",
        "BOOK",
    )
    assert entry.account_servicer_ref == "ACSR160617103200001"
    assert [d.amount for d in entry.details] == [Decimal("3.1"), Decimal("3.2"), Decimal("3.2")]
    first = entry.details[0]
    assert first.end_to_end_id == "UXC06170000006PI00001EE00001"
    assert (first.msg_id, first.pmt_inf_id) == ("UXC06170000006", "UXC06170000006PI00001")
    assert first.counterparty_name == "Example Creditor 3 - V1"
    assert first.counterparty_account == "CH4112345003131313131"
    assert first.remittance == "Unstructured Remittance Information V1"
    assert first.structured_ref == "ISR ref number V1"


def test_genkgo_minimal_entry_with_uetr(samples: Path) -> None:
    """15 (.08): no dates or references; the only TxDtls takes the entry's amount."""
    (entry,) = sample(samples, "15_camt054_00108_genkgo_uetr.xml").entries
    assert (entry.booking_date, entry.value_date, entry.account_servicer_ref) == (None, None, None)
    (detail,) = entry.details
    assert (detail.amount, detail.currency, detail.end_to_end_id) == (
        Decimal("200000"),
        "SEK",
        None,
    )


@pytest.mark.parametrize(
    "name",
    [
        "10_camt054_00104_postfinance_credit.xml",
        "12_camt054_00104_postfinance_returns.xml",
        "13_camt054_00102_fi_fffs.xml",
        "14_camt054_00108_genkgo.xml",
    ],
)
def test_samples_validate_against_their_xsd(samples: Path, name: str) -> None:
    """The .02, .04 and .08 samples pass their schemas, as their sources say."""
    xsd.validate(parse_xml((samples / name).read_bytes()))


def test_a_return_reason_text_and_a_proprietary_code_survive_the_wire() -> None:
    """.08: RtrInf/Rsn/Prtry and AddtlInf split at 105 characters are read back whole."""
    why = "Tài khoản người thụ hưởng đã đóng ngày 15/11/2026 theo đề nghị của chủ tài khoản; " * 2
    detail = EntryDetail(
        amount=Decimal("606000"),
        currency="VND",
        end_to_end_id="ORD-2025-0000001",
        return_reason="VBA-CLOSED",
        return_reason_text=why.strip(),
    )
    entry = Entry(Decimal("606000"), "VND", "CRDT", "BOOK", SETTLED, SETTLED, "R-1", (detail,))
    root = build_camt054(notification(entry))
    xsd.validate(root)
    assert xpath(root, "//c:RtrInf/c:Rsn/c:Prtry") == ["VBA-CLOSED"]
    lines = xpath(root, "//c:RtrInf/c:AddtlInf")
    assert len(lines) == 2 and all(len(line) <= 105 for line in lines)
    assert read_camt054(parse_xml(to_bytes(root))).entries[0].details[0] == detail


def test_repeated_elements_are_read_as_each_element_alone() -> None:
    """An entry's parts are picked in one walk of the entry; where a part occurs twice (a file
    read without its XSD), what is read is still the first element's own content."""
    root = build_camt054(notification(settlement()))

    def one(path: str) -> etree._Element:
        [found] = root.xpath(path, namespaces={"c": V08})
        return found

    def tag(name: str) -> str:
        return f"{{{V08}}}{name}"

    booked = one("//c:Ntry/c:BookgDt")
    earlier = etree.Element(tag("BookgDt"))
    etree.SubElement(earlier, tag("DtTm")).text = "2025-03-16T23:00:00+07:00"
    booked.addprevious(earlier)  # the first BookgDt has only a date-time; the second a date
    status = one("//c:Ntry/c:Sts")
    status.addprevious(etree.fromstring(f'<Sts xmlns="{V08}"><Prtry>PDNG</Prtry></Sts>'))
    first_tx = one("//c:TxDtls[1]")
    party = first_tx.find(f"{tag('RltdPties')}/{tag('Cdtr')}")
    other = etree.fromstring(etree.tostring(party))
    other.find(f".//{tag('Nm')}").text = "Người khác"
    party.addnext(other)
    account = first_tx.find(f"{tag('RltdPties')}/{tag('CdtrAcct')}")
    other_account = etree.fromstring(etree.tostring(account))
    other_account.find(f".//{tag('Othr')}/{tag('Id')}").text = "9999999999999"
    account.addnext(other_account)
    block = one("//c:NtryDtls")
    block.addnext(etree.fromstring(etree.tostring(block)))  # a second details block

    [entry] = read_camt054(parse_xml(to_bytes(root))).entries
    assert entry.booking_date == date(2025, 3, 16)
    assert entry.status == "PDNG"
    assert len(entry.details) == 4
    first = entry.details[0]
    assert first.counterparty_name == "Nguyễn Thị Hồng Nhung"
    assert first.counterparty_account == "BBAN:1000000000001"
    assert entry.details[2:] == settlement().details
