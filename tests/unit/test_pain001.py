"""pain.001 builder (.09, .03) and reader: XSD validity, counts, sums, amounts, text, round trip."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.domain.money import Money
from gateway.domain.orders import Account, Budget, Category
from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.model import OutboundBatch
from gateway.iso20022.pain001 import build_pain001, read_pain001, write_pain001
from gateway.iso20022.xml import file_of, parse_xml, to_bytes
from tests.unit.factories import CREATED_AT, batch, benefits_batch, group, order

V09 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
V03 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"


def texts(root: etree._Element, path: str, ns: str = V09) -> list[str]:
    """Texts at an XPath written with the `p:` prefix."""
    return [str(value) for value in root.xpath(f"{path}/text()", namespaces={"p": ns})]


def two_groups() -> OutboundBatch:
    """Benefits and electricity from the treasury, in two PmtInf."""
    benefits = group([order(n, amount="606000") for n in range(1, 4)], "PMT-SSBE")
    bills = group(
        [
            order(10, amount="1250000", category=Category.ELECTRICITY),
            order(11, amount="98000", category=Category.ELECTRICITY),
        ],
        "PMT-ELEC",
    )
    return batch(benefits, bills)


@pytest.mark.parametrize("version", ["pain.001.001.09", "pain.001.001.03"])
def test_built_file_is_valid_against_its_xsd(version: str) -> None:
    """Both versions validate against the official schemas."""
    root = build_pain001(two_groups(), version)
    assert etree.QName(root).namespace == f"urn:iso:std:iso:20022:tech:xsd:{version}"
    xsd.validate(root)


def test_counts_and_control_sums_are_exact() -> None:
    """NbOfTxs and CtrlSum in GrpHdr and in each PmtInf are the exact counts and sums."""
    root = build_pain001(two_groups())
    assert texts(root, "//p:GrpHdr/p:NbOfTxs") == ["5"]
    assert texts(root, "//p:GrpHdr/p:CtrlSum") == [str(3 * 606000 + 1250000 + 98000)]
    assert texts(root, "//p:PmtInf/p:NbOfTxs") == ["3", "2"]
    assert texts(root, "//p:PmtInf/p:CtrlSum") == ["1818000", "1348000"]


def test_group_header_and_payment_information_fields() -> None:
    """MsgId, CreDtTm with offset, purpose codes, dates, debtor, agent and charges."""
    root = build_pain001(two_groups())
    assert texts(root, "//p:GrpHdr/p:MsgId") == ["KBNN-20250314-0001"]
    assert texts(root, "//p:GrpHdr/p:CreDtTm") == ["2025-03-14T09:30:00+07:00"]
    assert texts(root, "//p:InitgPty/p:Nm") == ["Kho bạc Nhà nước"]
    assert texts(root, "//p:PmtInf/p:PmtMtd") == ["TRF", "TRF"]
    assert texts(root, "//p:PmtInf/p:BtchBookg") == ["false", "false"]
    assert texts(root, "//p:PmtTpInf/p:CtgyPurp/p:Cd") == ["SSBE", "ELEC"]
    assert texts(root, "//p:ReqdExctnDt/p:Dt") == ["2025-03-17", "2025-03-17"]
    assert texts(root, "//p:DbtrAgt/p:FinInstnId/p:BICFI") == ["VBAAVNVX", "VBAAVNVX"]
    assert texts(root, "//p:PmtInf/p:ChrgBr") == ["SLEV", "SLEV"]
    assert texts(root, "//p:DbtrAcct/p:Id/p:Othr/p:Id") == ["1500201091234"] * 2
    assert texts(root, "//p:DbtrAcct//p:SchmeNm/p:Cd") == ["BBAN", "BBAN"]


def test_transactions_carry_ids_amounts_parties_and_purpose() -> None:
    """InstrId = EndToEndId = order id; creditor agent, name, account and purpose per order."""
    root = build_pain001(two_groups())
    ids = [f"ORD-2025-{n:07d}" for n in (1, 2, 3, 10, 11)]
    assert texts(root, "//p:PmtId/p:InstrId") == ids
    assert texts(root, "//p:PmtId/p:EndToEndId") == ids
    assert texts(root, "//p:CdtTrfTxInf/p:Purp/p:Cd") == ["SSBE"] * 3 + ["ELEC"] * 2
    assert texts(root, "//p:CdtrAgt//p:BICFI")[:2] == ["BFTVVNVX", "BIDVVNVX"]
    assert root.xpath("//p:InstdAmt/@Ccy", namespaces={"p": V09}) == ["VND"] * 5


def test_vnd_amounts_are_written_as_integers() -> None:
    """VND has no minor unit: 606000, never 606000.00."""
    root = build_pain001(batch(group([order(1, amount="606000.00"), order(2, amount="1")])))
    assert texts(root, "//p:InstdAmt") == ["606000", "1"]
    assert texts(root, "//p:GrpHdr/p:CtrlSum") == ["606001"]


def test_usd_amounts_keep_two_decimals() -> None:
    """USD is written with exactly two decimals, and CtrlSum is the exact Decimal sum."""
    orders = [
        order(1, amount="0.10", currency="USD"),
        order(2, amount="0.2", currency="USD"),
        order(3, amount="1234.5", currency="USD"),
    ]
    root = build_pain001(batch(group(orders)))
    assert texts(root, "//p:InstdAmt") == ["0.10", "0.20", "1234.50"]
    assert texts(root, "//p:GrpHdr/p:CtrlSum") == ["1234.80"]
    xsd.validate(root)


def test_an_amount_with_too_many_decimals_is_refused() -> None:
    """A Money built around the parser with VND decimals is refused, never rounded."""
    bad = replace(order(1), money=Money(Decimal("606000.5"), "VND"))
    with pytest.raises(InvalidMessage, match=r"VND allows 0"):
        build_pain001(batch(group([bad])))


def test_vietnamese_text_is_written_in_nfc() -> None:
    """A decomposed (NFD) name and remittance come out composed (NFC)."""
    name = "Nguyễn Thị Hồng Nhung"
    decomposed = unicodedata.normalize("NFD", name)
    assert decomposed != name
    remittance = unicodedata.normalize("NFD", "Trợ cấp tháng 3")
    root = build_pain001(batch(group([order(1, name=decomposed, remittance=remittance)])))
    assert texts(root, "//p:Cdtr/p:Nm") == [name]
    assert texts(root, "//p:Ustrd") == ["Trợ cấp tháng 3"]
    assert name.encode() in to_bytes(root)
    xsd.validate(root)


def test_xml_special_characters_are_escaped() -> None:
    """Ampersands, angle brackets and quotes in text survive as text."""
    name = 'Công ty "Điện lực" <Hà Nội> & Co'
    root = build_pain001(batch(group([order(1, name=name, remittance="a < b & c > d\r\n")])))
    assert texts(root, "//p:Cdtr/p:Nm") == [name]
    assert texts(root, "//p:Ustrd") == ["a < b & c > d\r\n"]
    assert parse_xml(to_bytes(root)).xpath("//p:Ustrd/text()", namespaces={"p": V09}) == [
        "a < b & c > d\r\n"
    ]


def test_a_control_character_names_the_order() -> None:
    """Text XML cannot carry is refused, naming the order it came from, also after line breaks
    in the orders before it."""
    with pytest.raises(InvalidMessage, match=r"cannot write order ORD-2025-0000002"):
        build_pain001(batch(group([order(1), order(2, name="Lê\x01Văn")])))
    broken = order(1, name="Nguyễn\nVăn\nAn", remittance="a\nb\nc\nd")
    with pytest.raises(InvalidMessage, match=r"cannot write order ORD-2025-0000002"):
        write_pain001(batch(group([broken, order(2, name="Lê\x01Văn"), order(3)]))).parse()


def test_budget_codes_go_to_structured_remittance_beside_the_free_text() -> None:
    """Ustrd keeps the text; Strd/AddtlRmtInf carries chapter, economic and treasury codes."""
    budget = Budget(chapter="622", economic_code="7001", treasury_code="1234")
    root = build_pain001(batch(group([order(1, budget=budget), order(2)])))
    assert texts(root, "//p:RmtInf/p:Ustrd") == ["Trợ cấp xã hội tháng 3/2025"] * 2
    assert texts(root, "//p:RmtInf/p:Strd/p:AddtlRmtInf") == ["C622/E7001/T1234"]
    xsd.validate(root)


def test_a_partial_budget_and_no_remittance() -> None:
    """Only the budget codes present are written; RmtInf without Ustrd stays valid."""
    root = build_pain001(batch(group([order(1, remittance="", budget=Budget(chapter="622"))])))
    assert texts(root, "//p:RmtInf/p:Ustrd") == []
    assert texts(root, "//p:AddtlRmtInf") == ["C622"]
    xsd.validate(root)


def test_account_forms() -> None:
    """IBAN as IBAN; an ISO scheme as SchmeNm/Cd; another scheme as Prtry; none as bare Othr."""
    orders = [
        order(1, account=Account(iban="DE89370400440532013000")),
        order(2, account=Account(number="0011004012345", scheme="BBAN")),
        order(3, account=Account(number="0011004012346", scheme="VNACCT")),
        order(4, account=Account(number="0011004012347")),
    ]
    root = build_pain001(batch(group(orders)))
    assert texts(root, "//p:CdtrAcct/p:Id/p:IBAN") == ["DE89370400440532013000"]
    assert texts(root, "//p:CdtrAcct//p:SchmeNm/p:Cd") == ["BBAN"]
    assert texts(root, "//p:CdtrAcct//p:SchmeNm/p:Prtry") == ["VNACCT"]
    assert len(root.xpath("//p:CdtrAcct//p:SchmeNm", namespaces={"p": V09})) == 2
    xsd.validate(root)


def test_version_03_uses_bic_and_a_plain_date() -> None:
    """pain.001.001.03 writes BIC (not BICFI) and ReqdExctnDt as a date."""
    root = build_pain001(two_groups(), "pain.001.001.03")
    assert texts(root, "//p:DbtrAgt/p:FinInstnId/p:BIC", V03) == ["VBAAVNVX", "VBAAVNVX"]
    assert texts(root, "//p:PmtInf/p:ReqdExctnDt", V03) == ["2025-03-17", "2025-03-17"]
    assert root.xpath("//p:BICFI", namespaces={"p": V03}) == []


def test_refusals_say_what_is_wrong() -> None:
    """Unknown version, empty batch or group, naive timestamp, account without number."""
    with pytest.raises(InvalidMessage, match=r"pain.001.001.05"):
        build_pain001(two_groups(), "pain.001.001.05")
    with pytest.raises(InvalidMessage, match=r"no payment groups"):
        build_pain001(batch())
    empty = replace(group([order(2)], "PMT-EMPTY"), orders=())
    with pytest.raises(InvalidMessage, match=r"PMT-EMPTY: no orders"):
        build_pain001(batch(group([order(1)]), empty))
    naive = replace(two_groups(), created_at=datetime(2025, 3, 14, 9, 30))  # noqa: DTZ001
    with pytest.raises(InvalidMessage, match=r"has no time zone"):
        build_pain001(naive)
    with pytest.raises(InvalidMessage, match=r"neither an IBAN nor a number"):
        build_pain001(batch(group([order(1, account=Account())])))


def test_an_xsd_failure_names_the_transaction_and_element() -> None:
    """The file is one line (its canonical form): an XSD error names the element's path and the
    transaction's EndToEndId."""
    bad = order(2)
    bad = replace(bad, creditor=replace(bad.creditor, agent_bic="NOTABIC"))
    root = build_pain001(batch(group([order(1), bad, order(3)])))
    with pytest.raises(InvalidMessage) as refused:
        xsd.validate(root)
    assert str(refused.value).startswith(
        "pain.001.001.09 fails its XSD: line 1: CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[2]/CdtrAgt/"
        "FinInstnId/BICFI (EndToEndId 'ORD-2025-0000002'): [facet 'pattern']"
    )


@pytest.mark.parametrize(
    "text",
    ["a\rb", "a\r\nb", "tab\there", 'say "yes" & <no>', "  spaced  ", " ", "]]>", "x\n"],
    ids=["cr", "crlf", "tab", "quotes-and-markup", "outer-spaces", "blank", "cdata-end", "lf"],
)
def test_awkward_text_is_written_in_its_canonical_form(text: str) -> None:
    """Carriage returns, tabs, quotes, markup characters and blank text: the written bytes are
    libxml2's exclusive C14N of the document, and the text reads back as it was given."""
    written = write_pain001(batch(group([order(1, name=text, remittance=text)])))
    canonical = etree.tostring(written.parse(), method="c14n", exclusive=True)
    assert canonical == written.canonical
    parsed = etree.fromstring(file_of(written.canonical))
    names = parsed.xpath("//*[local-name()='Cdtr']/*[local-name()='Nm']/text()")
    assert names == [text]


def test_an_xsd_failure_outside_a_transaction_names_no_transaction() -> None:
    """A group header error is named by its path alone."""
    root = build_pain001(batch(group([order(1)])))
    header_count = root.find(f"{{{V09}}}CstmrCdtTrfInitn/{{{V09}}}GrpHdr/{{{V09}}}NbOfTxs")
    assert header_count is not None
    header_count.text = "one"
    with pytest.raises(InvalidMessage, match=r"CstmrCdtTrfInitn/GrpHdr/NbOfTxs: ") as refused:
        xsd.validate(root)
    assert "EndToEndId" not in str(refused.value)


def test_a_name_too_long_after_nfc_is_refused_before_the_xsd() -> None:
    """Lengths are checked by the builder after normalisation, naming the order and field."""
    with pytest.raises(InvalidMessage, match="order ORD-2025-0000002 creditor name is 141"):
        build_pain001(batch(group([order(1), order(2, name="N" * 141), order(3)])))


@pytest.mark.parametrize("version", ["pain.001.001.09", "pain.001.001.03"])
def test_round_trip_build_then_read(version: str) -> None:
    """What the bank reads is what we built."""
    source = two_groups()
    content = read_pain001(parse_xml(to_bytes(build_pain001(source, version))))
    assert content.msg_id == source.msg_id
    assert content.created_at == CREATED_AT
    assert content.nb_of_txs == 5
    assert content.ctrl_sum == Decimal("3166000")
    assert content.initiating_party == "Kho bạc Nhà nước"
    orders = [o for g in source.groups for o in g.orders]
    assert len(content.transfers) == len(orders)
    for transfer, sent, pmt in zip(
        content.transfers, orders, ["PMT-SSBE"] * 3 + ["PMT-ELEC"] * 2, strict=True
    ):
        assert transfer.pmt_inf_id == pmt
        assert transfer.instr_id == transfer.end_to_end_id == sent.order_id
        assert (transfer.amount, transfer.currency) == (sent.money.amount, "VND")
        assert transfer.creditor_name == sent.creditor.name
        assert transfer.creditor_account == f"BBAN:{sent.creditor.account.number}"
        assert transfer.creditor_agent_bic == sent.creditor.agent_bic
        assert transfer.debtor_account == "BBAN:1500201091234"
        assert transfer.purpose == sent.category.purpose
        assert transfer.remittance == sent.remittance


def test_reading_a_pain002_as_pain001_is_refused() -> None:
    """The reader checks the message family."""
    root = etree.Element("{urn:iso:std:iso:20022:tech:xsd:pain.002.001.12}Document")
    with pytest.raises(InvalidMessage, match=r"expected a pain.001, got pain.002.001.12"):
        read_pain001(root)


def test_a_large_batch_is_valid_and_exact() -> None:
    """3,631 beneficiaries at 606,000 VND: one file, the district's monthly run."""
    root = build_pain001(benefits_batch(3631))
    xsd.validate(root)
    assert texts(root, "//p:GrpHdr/p:NbOfTxs") == ["3631"]
    assert texts(root, "//p:GrpHdr/p:CtrlSum") == [str(3631 * 606000)]


@settings(max_examples=30, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=20),
    cents=st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=20),
)
def test_control_sums_match_for_any_amounts(amounts: list[int], cents: list[int]) -> None:
    """For any VND and USD amounts, CtrlSum is the exact sum and the file stays valid."""
    vnd = group([order(n, amount=str(a)) for n, a in enumerate(amounts)], "PMT-VND")
    usd_orders = [
        order(100 + n, amount=str(Decimal(c) / 100), currency="USD") for n, c in enumerate(cents)
    ]
    root = build_pain001(batch(vnd, group(usd_orders, "PMT-USD")))
    xsd.validate(root)
    expected = sum(Decimal(a) for a in amounts) + sum(Decimal(c) / 100 for c in cents)
    assert Decimal(texts(root, "//p:GrpHdr/p:CtrlSum")[0]) == expected
    assert texts(root, "//p:PmtInf/p:CtrlSum")[0] == str(sum(amounts))


def test_third_party_pain001_files_are_read(samples: Path) -> None:
    """A Swiss .ch.02 file (with EqvtAmt) and a Lithuanian .03 USD file read with their values."""
    swiss = read_pain001(
        parse_xml((samples / "24_pain001_ch02_postfinance_muster.xml").read_bytes())
    )
    assert (swiss.msg_id, swiss.nb_of_txs, swiss.ctrl_sum) == ("MsgId-001", 7, Decimal("38.00"))
    assert swiss.initiating_party == "Robert Schneider"
    first = swiss.transfers[0]
    assert (first.end_to_end_id, first.amount, first.currency) == (
        "EndToEndId-01-01",
        Decimal("6.20"),
        "CHF",
    )
    assert first.creditor_name == "Maria Bernasconi"
    assert first.creditor_account == "CH5109000000250092291"
    assert first.debtor_account == "CH0309000000250090342"
    equivalent = next(t for t in swiss.transfers if t.end_to_end_id == "EndToEndId-04-01")
    assert (equivalent.amount, equivalent.currency) == (Decimal("1"), "CHF")
    assert sum(t.amount for t in swiss.transfers) == swiss.ctrl_sum

    usd = read_pain001(parse_xml((samples / "25_pain001_00103_lt_intl_usd.xml").read_bytes()))
    (transfer,) = usd.transfers
    assert (usd.msg_id, transfer.amount, transfer.currency) == (
        "MSGID0002",
        Decimal("111.11"),
        "USD",
    )
    assert transfer.creditor_agent_bic == "BKTRUS33"
    assert transfer.debtor_account == "LT007180000000000000"


def test_a_pain001_inside_a_business_envelope_is_read(samples: Path) -> None:
    """The CBPR+ sample wraps AppHdr and Document; the Document alone is a valid .09."""
    envelope = parse_xml((samples / "26_pain001_00109_cbprplus_with_apphdr.xml").read_bytes())
    document = envelope.find(f"{{{V09}}}Document")
    assert document is not None
    xsd.validate(document)
    content = read_pain001(document)
    assert content.msg_id == "PN01-20260413-2150"
    assert content.nb_of_txs == 1


def test_amounts_with_trailing_zero_decimals_are_written_in_minor_units() -> None:
    """606000.00 VND is 606000 on the wire; 12.5 EUR is 12.50; 1E+3 VND is 1000."""
    vnd = replace(order(1), money=Money(Decimal("606000.00"), "VND"))
    eur = replace(order(2), money=Money(Decimal("12.5"), "EUR"))
    big = replace(order(3), money=Money(Decimal("1E+3"), "VND"))
    root = build_pain001(batch(group([vnd, eur, big])))
    assert texts(root, "//p:InstdAmt") == ["606000", "12.50", "1000"]
    with pytest.raises(InvalidMessage, match=r"order ORD-2025-0000004: amount 1\.5 VND"):
        build_pain001(batch(group([replace(order(4), money=Money(Decimal("1.5"), "VND"))])))
