"""Every third-party sample in ../shared/iso20022/samples read through `read_file`, values checked.

The table below names each file; a sample added to the folder without a row fails the coverage
test, so no file is ever silently left unread.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import InvalidMessage
from gateway.iso20022.reading import read_file, to_json

# file -> (message, kind, xsd verdict or the start of the XSD refusal)
EXPECTED = {
    "01_pain002_ch02_postfinance_rjct_ac01.xml": ("pain.002.001.03", "status_report", "valid"),
    "02_pain002_ch02_postfinance_b.xml": ("pain.002.001.03", "status_report", "valid"),
    "03_pain002_ch02_postfinance_c.xml": ("pain.002.001.03", "status_report", "valid"),
    "04_pain002_ch02_postfinance_dd.xml": ("pain.002.001.03", "status_report", "valid"),
    "06_pain002_00110_de_vop_01.xml": ("pain.002", "status_report", "not checked: no namespace"),
    "07_pain002_00110_de_vop_02.xml": (
        "pain.002.001.10",
        "status_report",
        "pain.002.001.10 fails its XSD: line 11: CstmrPmtStsRpt/GrpHdr/DbtrAgt/FinInstnId/BICFI:"
        " [facet 'pattern'] The value 'ABCDEFGHIJ' is not accepted",
    ),
    "08_pain002_00110_de_vop_03.xml": ("pain.002.001.10", "status_report", "valid"),
    "10_camt054_00104_postfinance_credit.xml": ("camt.054.001.04", "notification", "valid"),
    "11_camt054_00104_postfinance_debit.xml": ("camt.054.001.04", "notification", "valid"),
    "12_camt054_00104_postfinance_returns.xml": ("camt.054.001.04", "notification", "valid"),
    "13_camt054_00102_fi_fffs.xml": ("camt.054.001.02", "notification", "valid"),
    "14_camt054_00108_genkgo.xml": ("camt.054.001.08", "notification", "valid"),
    "15_camt054_00108_genkgo_uetr.xml": ("camt.054.001.08", "notification", "valid"),
    "18_camt053_00104_postfinance.xml": ("camt.053.001.04", "statement", "valid"),
    "19_camt053_00102_fi_fffs.xml": ("camt.053.001.02", "statement", "valid"),
    "20_camt053_00108_genkgo.xml": ("camt.053.001.08", "statement", "valid"),
    "21_camt053_00108_camt_parser.xml": (
        "camt.053.001.08",
        "statement",
        "camt.053.001.08 fails its XSD: line 119: "
        "BkToCstmrStmt/Stmt/Ntry[1]/NtryDtls/TxDtls/Refs/UETR: [facet 'pattern'] "
        "The value 'd0826d0f-a005-5e3b-b3dc-54da4ac7f0d0' is not accepted",
    ),
    "22_camt053_00102_camt_parser.xml": (
        "camt.053.001.02",
        "statement",
        "camt.053.001.02 fails its XSD: line 62: BkToCstmrStmt/Stmt/Ntry[1]/NtryRef: "
        "This element is not expected. Expected is ( CdtDbtInd ).",
    ),
    "24_pain001_ch02_postfinance_muster.xml": ("pain.001.001.03", "payment_initiation", "valid"),
    "25_pain001_00103_lt_intl_usd.xml": ("pain.001.001.03", "payment_initiation", "valid"),
    "26_pain001_00109_cbprplus_with_apphdr.xml": (
        "pain.001.001.09",
        "payment_initiation",
        "valid",
    ),
    "30_camt052_00102_genkgo.xml": ("camt.052.001.02", "intraday_report", "valid"),
    "31_camt052_00104_genkgo_pdng.xml": ("camt.052.001.04", "intraday_report", "valid"),
}


def parsed(samples: Path, name: str, *, validate: bool = False) -> dict[str, Any]:
    """The normalised JSON of one sample."""
    return to_json(read_file((samples / name).read_bytes(), validate=validate))


def test_every_sample_has_a_row(samples: Path) -> None:
    """Each file in the samples folder is in the table, and each row has its file."""
    assert sorted(path.name for path in samples.glob("*.xml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_message_kind_and_xsd_verdict(samples: Path, name: str) -> None:
    """Each sample is recognised; a valid one says so, a faulty one is refused by element, line."""
    message, kind, verdict = EXPECTED[name]
    data = (samples / name).read_bytes()
    if verdict.startswith(message + " fails its XSD"):
        with pytest.raises(InvalidMessage) as refused:
            read_file(data)
        assert str(refused.value).startswith(verdict)
        result = to_json(read_file(data, validate=False))
        assert result["xsd"] == "not checked (--no-validate)"
    else:
        result = to_json(read_file(data))
        assert result["xsd"] == verdict
    assert (result["format"], result["message"], result["kind"]) == (
        "gateway-parse/1",
        message,
        kind,
    )


def lines(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(pmt_inf_id, end_to_end_id, status, reason code) of every status line."""
    return [
        (t["original_pmt_inf_id"], t["original_end_to_end_id"], t["status"], t["reason_code"])
        for t in report["transactions"]
    ]


def test_pain002_swiss_rejection(samples: Path) -> None:
    """PmtInf rejected with NARR and its text, the transaction with AC01; Swiss namespace kept."""
    result = parsed(samples, "01_pain002_ch02_postfinance_rjct_ac01.xml")
    report = result["content"]
    assert result["namespace"].endswith("pain.002.001.03.ch.02.xsd")
    assert (report["msg_id"], report["original_msg_id"]) == ("20180326375204011678275", "MsgId-006")
    assert report["original_msg_name_id"] == "pain.001.001.03.ch.02"
    assert report["created_at"] == "2018-03-26T12:09:48"
    assert lines(report) == [
        ("PmtInfId-006-01", None, "RJCT", "NARR"),
        ("PmtInfId-006-01", "EndToEndId-006-01-01", "RJCT", "AC01"),
    ]
    assert report["transactions"][0]["reason_text"] == (
        "1297193;Sammelauftrag ohne ausführbaren Einzelauftrag"
    )
    assert report["transactions"][1]["original_instr_id"] == "InstrId-006-01-01"
    assert report["transactions"][1]["reason_text"] == "1301813;Konto ungültig"


def test_pain002_partial_group_and_payment_information_levels(samples: Path) -> None:
    """02: PART at PmtInf level with one AC01 line; 03: ACTC for the group; 04: ACCP."""
    partial = parsed(samples, "02_pain002_ch02_postfinance_b.xml")["content"]
    assert lines(partial)[0][2] == "PART"
    assert lines(partial)[1][1:] == ("EndToEndId-001-03-04", "RJCT", "AC01")
    group = parsed(samples, "03_pain002_ch02_postfinance_c.xml")["content"]
    assert (group["original_msg_id"], group["group_status"], group["transactions"]) == (
        "MsgId-001",
        "ACTC",
        [],
    )
    direct_debit = parsed(samples, "04_pain002_ch02_postfinance_dd.xml")["content"]
    assert direct_debit["original_msg_id"] == "MsgId-CHDD-Musterfile"
    assert [line[2] for line in lines(direct_debit)] == ["ACCP"]


@pytest.mark.parametrize(
    ("name", "group", "codes"),
    [
        ("06_pain002_00110_de_vop_01.xml", "RVMC", ["RVMC", "RVNM"]),
        ("07_pain002_00110_de_vop_02.xml", "RVMC", ["RVMC", "RVNM"]),
        ("08_pain002_00110_de_vop_03.xml", "RCVC", ["RCVC"]),
    ],
)
def test_pain002_001_10_verification_of_payee_codes_kept_as_text(
    samples: Path, name: str, group: str, codes: list[str]
) -> None:
    """Codes outside ISO's status list (VOP) are kept as text at group and line level."""
    report = parsed(samples, name)["content"]
    assert report["group_status"] == group
    assert [line[2] for line in lines(report)] == codes


def entries(notification: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(amount, currency, direction, booking date, value date) of every entry."""
    return [
        (e["amount"], e["currency"], e["credit_debit"], e["booking_date"], e["value_date"])
        for e in notification["entries"]
    ]


def test_camt054_postfinance_credit_debit_and_return(samples: Path) -> None:
    """Amounts, directions, dates, references and the AC01 return reason."""
    credit = parsed(samples, "10_camt054_00104_postfinance_credit.xml")["content"]
    assert credit["account"] == "CH2909000000250094239"
    assert entries(credit) == [("1500.00", "CHF", "CRDT", "2019-04-24", "2019-04-25")]
    debit = parsed(samples, "11_camt054_00104_postfinance_debit.xml")["content"]
    assert entries(debit)[0][:3] == ("913.00", "CHF", "DBIT")
    assert debit["entries"][0]["details"][0]["end_to_end_id"] == "20190424001255000100006"
    returned = parsed(samples, "12_camt054_00104_postfinance_returns.xml")["content"]
    (detail,) = returned["entries"][0]["details"]
    assert (detail["end_to_end_id"], detail["amount"], detail["return_reason"]) == (
        "EndToEndId-001-03-04",
        "500.00",
        "AC01",
    )


def test_camt054_finnish_and_genkgo(samples: Path) -> None:
    """Batch entries split into their details; .08 details with their own amounts; UETR file."""
    finnish = parsed(samples, "13_camt054_00102_fi_fffs.xml")["content"]
    assert (finnish["msg_id"], finnish["account"], len(finnish["entries"])) == (
        "BANKFILEID219073",
        "FI7433010001222090",
        6,
    )
    first = finnish["entries"][0]
    assert first["amount"] == "2000.00"
    assert [d["amount"] for d in first["details"]] == ["1900.00", "100.00"]
    genkgo = parsed(samples, "14_camt054_00108_genkgo.xml")["content"]
    assert entries(genkgo)[0][:3] == ("200000", "SEK", "DBIT")
    ids = [d["end_to_end_id"] for d in genkgo["entries"][0]["details"]]
    assert ids[:2] == ["UXC06170000006PI00001EE00001", "UXC06170000006PI00001EE00002"]
    uetr = parsed(samples, "15_camt054_00108_genkgo_uetr.xml")["content"]
    assert entries(uetr) == [("200000", "SEK", "DBIT", None, None)]


def balances(statement: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(type, amount, currency, direction, date) of every balance."""
    return [
        (b["type"], b["amount"], b["currency"], b["credit_debit"], b["date"])
        for b in statement["balances"]
    ]


def test_camt053_postfinance_balances_and_entries(samples: Path) -> None:
    """Opening, closing and available balances, and five booked entries."""
    content = parsed(samples, "18_camt053_00104_postfinance.xml")["content"]
    assert content["msg_id"] == "20201124375204229003967"
    (statement,) = content["statements"]
    assert (statement["statement_id"], statement["account"]) == (
        "20201124375204229003973",
        "CH2909000000250094239",
    )
    assert statement["electronic_sequence"] == "118"
    assert balances(statement) == [
        ("OPBD", "211993.19", "CHF", "CRDT", "2020-11-24"),
        ("CLBD", "215112.21", "CHF", "CRDT", "2020-11-24"),
        ("CLAV", "215112.21", "CHF", "CRDT", "2020-11-24"),
        ("FWAV", "216649.21", "CHF", "CRDT", "2020-11-25"),
    ]
    assert len(statement["entries"]) == 5
    assert entries(statement)[:2] == [
        ("4.50", "CHF", "CRDT", "2020-11-24", "2020-11-24"),
        ("77.70", "CHF", "DBIT", "2020-11-24", "2020-11-24"),
    ]
    assert statement["entries"][0]["account_servicer_ref"] == "0758103031480900"


def test_camt053_entries_reconcile_with_balances(samples: Path) -> None:
    """Finnish sample: opening + credits - debits = closing booked balance."""
    (statement,) = parsed(samples, "19_camt053_00102_fi_fffs.xml")["content"]["statements"]
    by_type = {b[0]: b for b in balances(statement)}
    assert by_type["OPBD"][1] == "10000.00"
    assert by_type["CLBD"][1] == "23644.83"
    moved = sum(
        Decimal(e["amount"]) * (1 if e["credit_debit"] == "CRDT" else -1)
        for e in statement["entries"]
    )
    assert Decimal("10000.00") + moved == Decimal("23644.83")
    third = statement["entries"][2]
    assert third["details"][0]["counterparty_name"] == "Creditor Company"
    assert third["details"][0]["structured_ref"] == "3900"


def test_camt053_genkgo_and_faulty_files_still_read_without_validation(samples: Path) -> None:
    """.08 balances in several currencies; the XSD-faulty 21 and 22 read with --no-validate."""
    (genkgo,) = parsed(samples, "20_camt053_00108_genkgo.xml")["content"]["statements"]
    assert balances(genkgo)[3] == ("CLAV", "2700", "JPY", "DBIT", "2014-12-31")
    assert genkgo["entries"][0]["details"][0]["end_to_end_id"] == "MUELL/FINP/RA12345"
    (uetr,) = parsed(samples, "21_camt053_00108_camt_parser.xml")["content"]["statements"]
    assert balances(uetr)[1] == ("CLBD", "84515.25", "CHF", "CRDT", "2023-06-20")
    assert uetr["entries"][1]["details"][0]["structured_ref"] == "RF38000000000000000000552"
    (order,) = parsed(samples, "22_camt053_00102_camt_parser.xml")["content"]["statements"]
    assert [e["details"][0]["end_to_end_id"] for e in order["entries"]][:2] == [
        "EndToEndReference",
        "NOTPROVIDED",
    ]


def test_pain001_samples_and_the_app_header(samples: Path) -> None:
    """Swiss and Lithuanian pain.001 files; the CBPR+ envelope's AppHdr read beside its Document."""
    swiss = parsed(samples, "24_pain001_ch02_postfinance_muster.xml")["content"]
    # The file itself says 7 transactions and holds 8: the reader reports both as found.
    assert (swiss["msg_id"], swiss["nb_of_txs"], len(swiss["transfers"])) == ("MsgId-001", 7, 8)
    assert swiss["ctrl_sum"] == "38.00"
    usd = parsed(samples, "25_pain001_00103_lt_intl_usd.xml")["content"]
    assert (usd["transfers"][0]["amount"], usd["transfers"][0]["currency"]) == ("111.11", "USD")
    result = parsed(samples, "26_pain001_00109_cbprplus_with_apphdr.xml", validate=True)
    assert result["app_header"] == {
        "sender_name": "PTXNAU2S",
        "receiver_bic": "CVNBSGSX",
        "business_msg_id": "PN01-20260413-2150",
        "message_definition": "pain.001.001.09",
        "created_at": "2026-04-13T06:30:00+00:00",
        "business_service": "swift.cbprplus.02",
    }
    assert result["content"]["msg_id"] == "PN01-20260413-2150"


def test_camt052_booked_batch_debit_and_pending_entry(samples: Path) -> None:
    """30: a booked debit of a batch (MsgId/PmtInfId from Btch); 31: a pending entry with an
    interim balance, its detail in USD against a SEK entry."""
    booked = parsed(samples, "30_camt052_00102_genkgo.xml", validate=True)["content"]
    assert booked["msg_id"] == "AAAASESS-FP-ACCR001"
    [report] = booked["reports"]
    assert (report["statement_id"], report["account"]) == (
        "AAAASESS-FP-ACCR001",
        "CH2801234000123456789",
    )
    [entry] = report["entries"]
    assert (entry["amount"], entry["currency"], entry["credit_debit"], entry["status"]) == (
        "200000",
        "SEK",
        "DBIT",
        "BOOK",
    )
    assert entry["account_servicer_ref"] == "AAAASESS-FP-ACCR-01"
    [detail] = entry["details"]
    assert (detail["msg_id"], detail["pmt_inf_id"]) == ("FINP-0055", "FINP-0055-001")
    pending = parsed(samples, "31_camt052_00104_genkgo_pdng.xml", validate=True)["content"]
    [report] = pending["reports"]
    assert [(b["type"], b["amount"], b["currency"]) for b in report["balances"]] == [
        ("ITBD", "10022.15", "CHF")
    ]
    [entry] = report["entries"]
    assert (entry["status"], entry["account_servicer_ref"]) == ("PDNG", "ACSR160614165200001")
    [detail] = entry["details"]
    assert (detail["end_to_end_id"], detail["amount"], detail["currency"]) == (
        "UXC06140000015PI00001EE00001",
        "4.1",
        "USD",
    )
