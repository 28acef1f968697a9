"""pacs.004 payment returns: original ids, amount, settlement date and reason, in .02/.09/.11."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from gateway.errors import InvalidMessage
from gateway.iso20022.pacs004 import read_pacs004
from gateway.iso20022.reading import read_file, to_json
from gateway.iso20022.xml import parse_xml

RETURN = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.004.001.{version}">
  <PmtRtr>
    <GrpHdr>
      <MsgId>VBAA-RTR-20251126-01</MsgId>
      <CreDtTm>2025-11-26T10:15:00+07:00</CreDtTm>
      <NbOfTxs>2</NbOfTxs>
    </GrpHdr>
    <OrgnlGrpInf>
      <OrgnlMsgId>KBNN-20251120-AGRIBANK-0000042</OrgnlMsgId>
      <OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>
    </OrgnlGrpInf>
    <TxInf>
      <RtrId>RTR-0001</RtrId>
      <OrgnlInstrId>BTXH2611-000001</OrgnlInstrId>
      <OrgnlEndToEndId>BTXH2611-000001</OrgnlEndToEndId>
      <OrgnlTxId>VBAA-TX-77</OrgnlTxId>
      <RtrdIntrBkSttlmAmt Ccy="VND">606000</RtrdIntrBkSttlmAmt>
      <IntrBkSttlmDt>2025-11-26</IntrBkSttlmDt>
      <RtrRsnInf>
        <Rsn><Cd>AC04</Cd></Rsn>
        <AddtlInf>Tài khoản đã đóng</AddtlInf>
      </RtrRsnInf>
    </TxInf>
    <TxInf>
      <RtrId>RTR-0002</RtrId>
      <OrgnlGrpInf>
        <OrgnlMsgId>KBNN-20251119-AGRIBANK-0000041</OrgnlMsgId>
        <OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>
      </OrgnlGrpInf>
      <OrgnlEndToEndId>SUPP-2025-0099</OrgnlEndToEndId>
      <RtrdIntrBkSttlmAmt Ccy="VND">12500000</RtrdIntrBkSttlmAmt>
      <RtrRsnInf><Rsn><Prtry>VN-BANK-77</Prtry></Rsn></RtrRsnInf>
    </TxInf>
  </PmtRtr>
</Document>
"""


@pytest.mark.parametrize("version", ["02", "09", "11"])
def test_returns_are_read_with_their_original_ids_and_reasons(version: str) -> None:
    """File-level and transaction-level original MsgIds, ISO and proprietary reason codes."""
    returned = read_pacs004(parse_xml(RETURN.format(version=version).encode()))
    assert returned.msg_id == "VBAA-RTR-20251126-01"
    assert returned.original_msg_id == "KBNN-20251120-AGRIBANK-0000042"
    first, second = returned.transactions
    assert (first.original_end_to_end_id, first.amount, first.currency) == (
        "BTXH2611-000001",
        Decimal("606000"),
        "VND",
    )
    assert (first.reason_code, first.reason_text) == ("AC04", "Tài khoản đã đóng")
    assert first.settlement_date == date(2025, 11, 26)
    assert (first.original_tx_id, first.return_id) == ("VBAA-TX-77", "RTR-0001")
    assert second.original_msg_id == "KBNN-20251119-AGRIBANK-0000041"
    assert (second.reason_code, second.settlement_date) == ("VN-BANK-77", None)


def test_parse_checks_a_return_against_the_shipped_pacs004_001_09_xsd() -> None:
    """pacs.004.001.09 ships its XSD: a return with its settlement information is valid, one
    without is refused naming the element; .11 (no XSD shipped) says so."""
    complete = RETURN.format(version="09").replace(
        "<NbOfTxs>2</NbOfTxs>",
        "<NbOfTxs>2</NbOfTxs><SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf>",
    )
    result = to_json(read_file(complete.encode()))
    assert (result["kind"], result["xsd"]) == ("payment_return", "valid")
    assert result["content"]["transactions"][1]["amount"] == "12500000"
    with pytest.raises(InvalidMessage, match=r"^pacs.004.001.09 fails its XSD: line 4: "):
        read_file(RETURN.format(version="09").encode())
    later = to_json(read_file(RETURN.format(version="11").encode()))
    assert later["xsd"] == "not checked: no XSD installed for pacs.004.001.11"


def test_a_return_without_amount_names_the_transaction_and_line() -> None:
    """A TxInf without RtrdIntrBkSttlmAmt is refused naming its line and RtrId."""
    broken = RETURN.format(version="09").replace(
        '<RtrdIntrBkSttlmAmt Ccy="VND">606000</RtrdIntrBkSttlmAmt>', ""
    )
    with pytest.raises(
        InvalidMessage, match=r"line 13: TxInf RTR-0001: <RtrdIntrBkSttlmAmt> is missing"
    ):
        read_pacs004(parse_xml(broken.encode()))


@pytest.mark.parametrize(
    ("before", "after", "problem"),
    [
        (">606000<", ">-606000<", "returned amount -606000 is not more than zero"),
        (">606000<", ">606000.123456<", "has more than 5 decimals or 18 digits"),
        ('Ccy="VND">606000', 'Ccy="vnd">606000', "currency 'vnd' is not a three-letter ISO code"),
        ("<RtrId>RTR-0001</RtrId>", f"<RtrId>{'R' * 36}</RtrId>", "36 characters, at most 35"),
    ],
)
def test_a_version_without_xsd_has_its_values_checked_by_the_reader(
    before: str, after: str, problem: str
) -> None:
    """pacs.004.001.11 (no XSD shipped): the reader refuses the values the XSD would."""
    broken = RETURN.format(version="11").replace(before, after, 1)
    with pytest.raises(InvalidMessage, match=re.escape(problem)):
        read_pacs004(parse_xml(broken.encode()))
