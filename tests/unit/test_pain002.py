"""pain.002 status reports: .12 builder, and the tolerant reader of .03, .10 and .12."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.model import StatusReport, TxStatus
from gateway.iso20022.pain002 import build_pain002, read_pain002
from gateway.iso20022.xml import parse_xml, to_bytes
from tests.unit.factories import CREATED_AT

V12 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.12"
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def sample(samples: Path, name: str) -> StatusReport:
    """Read one sample file through the hardened parser."""
    return read_pain002(parse_xml((samples / name).read_bytes()))


def report(**changes: object) -> StatusReport:
    """A partially rejected status report for the March benefits file."""
    fields: dict[str, object] = {
        "msg_id": "VBA-STS-20250317-0001",
        "created_at": CREATED_AT,
        "original_msg_id": "KBNN-20250314-0001",
        "original_msg_name_id": "pain.001.001.09",
        "group_status": "PART",
        "transactions": (
            TxStatus("ORD-2025-0000001", "ACSC", "ORD-2025-0000001", "PMT-SSBE"),
            TxStatus(
                "ORD-2025-0000002",
                "RJCT",
                "ORD-2025-0000002",
                "PMT-SSBE",
                reason_code="AC04",
                reason_text="Tài khoản của Nguyễn Thị Hồng Nhung đã đóng",
            ),
            TxStatus("ORD-2025-0000010", "ACCP", "ORD-2025-0000010", "PMT-ELEC"),
        ),
    }
    fields.update(changes)
    return StatusReport(**fields)  # type: ignore[arg-type]


def xpath(root: etree._Element, path: str) -> list[str]:
    """Texts at an XPath written with the `p:` prefix."""
    return [str(value) for value in root.xpath(f"{path}/text()", namespaces={"p": V12})]


def test_built_report_is_valid_against_pain002_001_12() -> None:
    """The simulator's report validates against the official .12 schema."""
    root = build_pain002(report())
    assert etree.QName(root).namespace == V12
    xsd.validate(root)


def test_transactions_are_grouped_by_payment_information() -> None:
    """One OrgnlPmtInfAndSts per original PmtInfId, in first-seen order."""
    root = build_pain002(report())
    assert xpath(root, "//p:OrgnlPmtInfAndSts/p:OrgnlPmtInfId") == ["PMT-SSBE", "PMT-ELEC"]
    assert xpath(root, "//p:OrgnlPmtInfAndSts[1]//p:OrgnlEndToEndId") == [
        "ORD-2025-0000001",
        "ORD-2025-0000002",
    ]
    assert xpath(root, "//p:TxInfAndSts/p:TxSts") == ["ACSC", "RJCT", "ACCP"]
    assert xpath(root, "//p:TxInfAndSts/p:OrgnlInstrId")[0] == "ORD-2025-0000001"


def test_header_and_group_status() -> None:
    """MsgId, CreDtTm, original ids and GrpSts."""
    root = build_pain002(report())
    assert xpath(root, "//p:GrpHdr/p:MsgId") == ["VBA-STS-20250317-0001"]
    assert xpath(root, "//p:GrpHdr/p:CreDtTm") == ["2025-03-14T09:30:00+07:00"]
    assert xpath(root, "//p:OrgnlMsgId") == ["KBNN-20250314-0001"]
    assert xpath(root, "//p:OrgnlMsgNmId") == ["pain.001.001.09"]
    assert xpath(root, "//p:GrpSts") == ["PART"]


def test_group_status_is_omitted_when_not_set() -> None:
    """No GrpSts element when the report has no group status."""
    root = build_pain002(report(group_status=None))
    assert xpath(root, "//p:GrpSts") == []
    xsd.validate(root)


def test_reasons_are_written_as_code_and_additional_information() -> None:
    """Rsn/Cd for ISO codes, Prtry for longer ones, AddtlInf split at 105 characters."""
    long_text = "Số tài khoản không tồn tại tại ngân hàng thụ hưởng " * 4
    lines = (
        TxStatus("E1", "RJCT", None, "P1", reason_code="AC01", reason_text="Sai số tài khoản"),
        TxStatus("E2", "RJCT", None, "P1", reason_code="BANK-SPECIFIC-77", reason_text=long_text),
    )
    root = build_pain002(report(transactions=lines))
    xsd.validate(root)
    assert xpath(root, "//p:TxInfAndSts/p:StsRsnInf/p:Rsn/p:Cd") == ["AC01"]
    assert xpath(root, "//p:TxInfAndSts/p:StsRsnInf/p:Rsn/p:Prtry") == ["BANK-SPECIFIC-77"]
    parts = xpath(root, "//p:TxInfAndSts[2]/p:StsRsnInf/p:AddtlInf")
    assert len(parts) > 1 and all(len(part) <= 105 for part in parts)
    assert read_pain002(root).transactions[1].reason_text == long_text.strip()


def test_round_trip_build_then_read() -> None:
    """The gateway reads back exactly what the simulator wrote."""
    original = report(group_reason_code="NARR", group_reason_text="Một phần bị từ chối")
    assert read_pain002(parse_xml(to_bytes(build_pain002(original)))) == original


def test_a_payment_information_status_round_trips() -> None:
    """A line with no ids is the PmtInf's own status (PmtInfSts), written before its txs."""
    lines = (
        TxStatus(None, "RJCT", None, "PMT-ELEC", reason_code="AM04", reason_text="Thiếu số dư"),
        TxStatus("ORD-2025-0000010", "RJCT", "ORD-2025-0000010", "PMT-ELEC", reason_code="AM04"),
    )
    root = build_pain002(report(group_status="RJCT", transactions=lines))
    xsd.validate(root)
    assert xpath(root, "//p:PmtInfSts") == ["RJCT"]
    assert xpath(root, "//p:OrgnlPmtInfAndSts/p:StsRsnInf/p:Rsn/p:Cd") == ["AM04"]
    assert read_pain002(root).transactions == lines


def test_a_transaction_without_payment_information_is_refused() -> None:
    """pain.002.001.12 nests transactions under their PmtInf, so the id is required."""
    with pytest.raises(InvalidMessage, match=r"original_pmt_inf_id is required"):
        build_pain002(report(transactions=(TxStatus("E1", "ACSC"),)))


def test_a_naive_timestamp_is_refused() -> None:
    """CreDtTm carries its offset; a naive datetime is refused."""
    with pytest.raises(InvalidMessage, match=r"has no time zone"):
        build_pain002(report(created_at=datetime(2025, 3, 17, 8, 0)))  # noqa: DTZ001


def synthetic(body: str, namespace: str = V12) -> etree._Element:
    """A pain.002 around the given OrgnlGrpInfAndSts / OrgnlPmtInfAndSts XML."""
    return parse_xml(
        (
            f'<Document xmlns="{namespace}"><CstmrPmtStsRpt><GrpHdr><MsgId>S1</MsgId>'
            "<CreDtTm>2025-03-17T08:00:00Z</CreDtTm></GrpHdr>"
            + body
            + "</CstmrPmtStsRpt></Document>"
        ).encode()
    )


def test_transactions_inherit_the_payment_information_then_group_status() -> None:
    """No TxSts: the PmtInf status, else the group status; unknown codes are kept as text."""
    root = synthetic(
        "<OrgnlGrpInfAndSts><OrgnlMsgId>M</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>"
        "<GrpSts>ACTC</GrpSts></OrgnlGrpInfAndSts>"
        "<OrgnlPmtInfAndSts><OrgnlPmtInfId>P1</OrgnlPmtInfId><PmtInfSts>ACCP</PmtInfSts>"
        "<TxInfAndSts><OrgnlEndToEndId>E1</OrgnlEndToEndId></TxInfAndSts>"
        "<TxInfAndSts><OrgnlEndToEndId>E2</OrgnlEndToEndId><TxSts>ZZZZ</TxSts>"
        "<StsRsnInf><Rsn><Prtry>BANK42</Prtry></Rsn></StsRsnInf></TxInfAndSts>"
        "</OrgnlPmtInfAndSts>"
        "<OrgnlPmtInfAndSts><OrgnlPmtInfId>P2</OrgnlPmtInfId>"
        "<TxInfAndSts><OrgnlEndToEndId>E3</OrgnlEndToEndId></TxInfAndSts></OrgnlPmtInfAndSts>"
    )
    parsed = read_pain002(root)
    assert parsed.created_at == datetime(2025, 3, 17, 8, 0, tzinfo=UTC)
    statuses = [
        (t.original_end_to_end_id, t.original_pmt_inf_id, t.status) for t in parsed.transactions
    ]
    assert statuses == [
        (None, "P1", "ACCP"),
        ("E1", "P1", "ACCP"),
        ("E2", "P1", "ZZZZ"),
        ("E3", "P2", "ACTC"),
    ]
    assert parsed.transactions[2].reason_code == "BANK42"


def test_a_transaction_with_no_status_anywhere_is_refused() -> None:
    """Nothing to inherit: the report cannot be acted on and says why."""
    root = synthetic(
        "<OrgnlGrpInfAndSts><OrgnlMsgId>M</OrgnlMsgId><OrgnlMsgNmId>pain.001</OrgnlMsgNmId>"
        "</OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>P1</OrgnlPmtInfId>"
        "<TxInfAndSts><OrgnlEndToEndId>E1</OrgnlEndToEndId></TxInfAndSts></OrgnlPmtInfAndSts>"
    )
    with pytest.raises(InvalidMessage, match=r"TxInfAndSts E1 in PmtInf P1 has no status"):
        read_pain002(root)


def test_reading_another_message_is_refused() -> None:
    """A camt.054 is not a status report."""
    root = etree.Element("{urn:iso:std:iso:20022:tech:xsd:camt.054.001.08}Document")
    with pytest.raises(InvalidMessage, match=r"expected a pain.002 status report, got camt.054"):
        read_pain002(root)


# --- Third-party files -------------------------------------------------------------------------


def test_postfinance_rejection_with_reason_codes(samples: Path) -> None:
    """01: PmtInf RJCT (NARR) and its transaction RJCT AC01, from the Swiss .ch.02 variant."""
    parsed = sample(samples, "01_pain002_ch02_postfinance_rjct_ac01.xml")
    assert parsed.msg_id == "20180326375204011678275"
    assert parsed.created_at == datetime(2018, 3, 26, 12, 9, 48)  # noqa: DTZ001
    assert (parsed.original_msg_id, parsed.original_msg_name_id) == (
        "MsgId-006",
        "pain.001.001.03.ch.02",
    )
    assert parsed.group_status is None
    pmt, tx = parsed.transactions
    assert (pmt.original_end_to_end_id, pmt.original_pmt_inf_id, pmt.status) == (
        None,
        "PmtInfId-006-01",
        "RJCT",
    )
    assert pmt.reason_code == "NARR"
    assert pmt.reason_text == "1297193;Sammelauftrag ohne ausführbaren Einzelauftrag"
    assert tx.original_end_to_end_id == "EndToEndId-006-01-01"
    assert tx.original_instr_id == "InstrId-006-01-01"
    assert (tx.status, tx.reason_code, tx.reason_text) == ("RJCT", "AC01", "1301813;Konto ungültig")


def test_postfinance_partial_acceptance(samples: Path) -> None:
    """02: PmtInf PART, one transaction rejected AC01."""
    parsed = sample(samples, "02_pain002_ch02_postfinance_b.xml")
    assert parsed.original_msg_id == "MsgId-001"
    pmt, tx = parsed.transactions
    assert (pmt.original_pmt_inf_id, pmt.status) == ("PmtInfId-001-03", "PART")
    assert (tx.original_end_to_end_id, tx.status, tx.reason_code) == (
        "EndToEndId-001-03-04",
        "RJCT",
        "AC01",
    )


def test_postfinance_group_acceptance(samples: Path) -> None:
    """03: a group status ACTC and no transaction lines."""
    parsed = sample(samples, "03_pain002_ch02_postfinance_c.xml")
    assert (parsed.msg_id, parsed.group_status, parsed.transactions) == (
        "20180315375204222821684",
        "ACTC",
        (),
    )


def test_postfinance_payment_information_status_only(samples: Path) -> None:
    """04: a direct-debit report with only a PmtInf status ACCP."""
    parsed = sample(samples, "04_pain002_ch02_postfinance_dd.xml")
    assert parsed.original_msg_name_id == "pain.008.001.02.ch.03"
    (pmt,) = parsed.transactions
    assert (pmt.original_end_to_end_id, pmt.original_pmt_inf_id, pmt.status) == (
        None,
        "PmtInfId-CHDD-1",
        "ACCP",
    )


def test_swiss_variant_validates_as_the_iso_base(samples: Path) -> None:
    """The .ch.02 reports pass the ISO pain.002.001.03 schema under their mapped namespace."""
    for name in ("01_pain002_ch02_postfinance_rjct_ac01.xml", "04_pain002_ch02_postfinance_dd.xml"):
        xsd.validate(parse_xml((samples / name).read_bytes()))


@pytest.mark.parametrize(
    "name", ["06_pain002_00110_de_vop_01.xml", "07_pain002_00110_de_vop_02.xml"]
)
def test_verification_of_payee_codes_are_kept(samples: Path, name: str) -> None:
    """06/07 (.10, 06 without namespace): unknown VoP codes RVMC/RVNM are kept as text."""
    parsed = sample(samples, name)
    assert parsed.msg_id == "8fe2133db36b4026ba7d6766583d434e"
    assert parsed.created_at == datetime(2025, 10, 20, 21, 33, 51, 999511)  # noqa: DTZ001
    assert (parsed.original_msg_id, parsed.original_msg_name_id) == (
        "2025-10-20T23:33:49:0045",
        "pain.001",
    )
    assert parsed.group_status == "RVMC"
    assert parsed.group_reason_code is None
    assert parsed.group_reason_text is not None
    assert parsed.group_reason_text.startswith("RVNM Der Name des Empfaengers")
    assert parsed.group_reason_text.endswith("ueberwiesen RVNM wird.")
    pmt, tx = parsed.transactions
    assert (pmt.original_pmt_inf_id, pmt.status) == ("2025-10-20T23:33:49:0045", "RVMC")
    assert (tx.original_end_to_end_id, tx.status, tx.original_instr_id) == (
        "NOTPROVIDED",
        "RVNM",
        None,
    )


def test_verification_of_payee_match(samples: Path) -> None:
    """08: group and PmtInf RCVC, a timestamp with offset and milliseconds."""
    parsed = sample(samples, "08_pain002_00110_de_vop_03.xml")
    assert parsed.msg_id == "dc6f9da5b431-4956-8e23-1bef7d23f948"
    assert parsed.created_at == datetime(
        2025, 11, 2, 18, 33, 13, 303000, tzinfo=timezone(timedelta(hours=1))
    )
    assert parsed.group_status == "RCVC"
    assert parsed.group_reason_text == (
        "RCVC Der angegebene Empfaengername stimmt mit dem Namen des Kontoinhabers ueberein. "
        "RCVC Hier besteht kein Handlungsbedarf."
    )
    (pmt,) = parsed.transactions
    assert (pmt.original_pmt_inf_id, pmt.status) == ("2025-11-02T18:33:03:0287", "RCVC")


def test_a_document_without_namespace_is_read_but_not_validated(samples: Path) -> None:
    """06 reads (the structure is unambiguous) but cannot be validated: it says why."""
    root = parse_xml((samples / "06_pain002_00110_de_vop_01.xml").read_bytes())
    with pytest.raises(InvalidMessage, match=r"has no namespace"):
        xsd.validate(root)


def test_pain002_001_10_is_validated_against_the_shipped_xsd(samples: Path) -> None:
    """schemas/ ships the .10 XSD (identical to ../shared's reference copy): 08 passes and 07
    fails on its anonymised BIC."""
    shipped = xsd.schemas_dir() / "pain.002.001.10.xsd"
    reference = SHARED / "iso20022" / "xsd-reference" / "pain.002.001.10.xsd"
    if reference.is_file():
        assert shipped.read_bytes() == reference.read_bytes()
    xsd.validate(parse_xml((samples / "08_pain002_00110_de_vop_03.xml").read_bytes()))
    with pytest.raises(InvalidMessage) as refused:
        xsd.validate(parse_xml((samples / "07_pain002_00110_de_vop_02.xml").read_bytes()))
    message = str(refused.value)
    assert message.startswith("pain.002.001.10 fails its XSD: line 11: ")
    assert "CstmrPmtStsRpt/GrpHdr/DbtrAgt/FinInstnId/BICFI" in message
    assert "'ABCDEFGHIJ'" in message
