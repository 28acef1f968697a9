"""The simulated bank's pacs.004 returns, camt.053 statements and camt.052 intraday reports (the
gateway only reads these).

pacs.004 is built as .001.09 and validated against its XSD before signing, as every reply is.
camt.053 is built as .001.08 and validated against its XSD before signing: its
entries are camt.054.001.08 entries (the same ReportEntry10 type) moved into the camt.053
namespace, with the statement's opening and closing balances; camt.052 the same way, in the
camt.052.001.08 namespace, without balances.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from lxml import etree

from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Notification
from gateway.iso20022.namespaces import MessageType
from gateway.iso20022.xml import format_datetime, wire_amount

_PACS = MessageType.PACS_004_001_09.namespace
_CAMT053 = MessageType.CAMT_053_001_08.namespace
_CAMT052 = MessageType.CAMT_052_001_08.namespace


@dataclass(frozen=True, slots=True)
class ReturnLine:
    """One settled payment the bank sends back."""

    return_id: str
    original_msg_id: str
    original_end_to_end_id: str
    amount: Decimal
    currency: str
    settlement_date: date
    reason_code: str
    reason_text: str


def build_pacs004(msg_id: str, created_at: datetime, lines: list[ReturnLine]) -> etree._Element:
    """A pacs.004.001.09 payment return (validated by the caller, before it is signed)."""

    def sub(parent: etree._Element, tag: str, value: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{_PACS}}}{tag}")
        if value is not None:
            element.text = value
        return element

    root = etree.Element(f"{{{_PACS}}}Document", nsmap={None: _PACS})
    body = sub(root, "PmtRtr")
    header = sub(body, "GrpHdr")
    sub(header, "MsgId", msg_id)
    sub(header, "CreDtTm", format_datetime(created_at, "GrpHdr/CreDtTm"))
    sub(header, "NbOfTxs", str(len(lines)))
    sub(sub(header, "SttlmInf"), "SttlmMtd", "CLRG")
    for line in lines:
        tx = sub(body, "TxInf")
        sub(tx, "RtrId", line.return_id)
        original = sub(tx, "OrgnlGrpInf")
        sub(original, "OrgnlMsgId", line.original_msg_id)
        sub(original, "OrgnlMsgNmId", "pain.001.001.09")
        sub(tx, "OrgnlEndToEndId", line.original_end_to_end_id)
        amount = sub(tx, "RtrdIntrBkSttlmAmt", wire_amount(line.amount, line.currency))
        amount.set("Ccy", line.currency)
        sub(tx, "IntrBkSttlmDt", line.settlement_date.isoformat())
        reason = sub(tx, "RtrRsnInf")
        sub(sub(reason, "Rsn"), "Cd", line.reason_code)
        sub(reason, "AddtlInf", line.reason_text[:105])
    return root


@dataclass(frozen=True, slots=True)
class StatementBalances:
    """Opening and closing booked balances of the day (signed: negative is a debit balance)."""

    day: date
    opening: Decimal
    closing: Decimal


def build_camt053(
    notification: Notification, statement_id: str, balances: StatementBalances
) -> etree._Element:
    """A camt.053.001.08 statement: the day's entries (as in `notification`) and balances."""
    source = build_camt054(notification)
    root = etree.Element(f"{{{_CAMT053}}}Document", nsmap={None: _CAMT053})
    body = etree.SubElement(root, f"{{{_CAMT053}}}BkToCstmrStmt")
    old_body = source[0]
    for child in old_body:
        moved = _moved(child)
        if etree.QName(child).localname == "Ntfctn":
            moved.tag = f"{{{_CAMT053}}}Stmt"
            moved[0].text = statement_id
            _insert_balances(moved, balances, notification)
        body.append(moved)
    return root


def build_camt052(notification: Notification, report_id: str) -> etree._Element:
    """A camt.052.001.08 intraday account report of the entries in `notification` (booked or
    pending), without balances."""
    source = build_camt054(notification)
    root = etree.Element(f"{{{_CAMT052}}}Document", nsmap={None: _CAMT052})
    body = etree.SubElement(root, f"{{{_CAMT052}}}BkToCstmrAcctRpt")
    for child in source[0]:
        moved = _moved(child, _CAMT052)
        if etree.QName(child).localname == "Ntfctn":
            moved.tag = f"{{{_CAMT052}}}Rpt"
            moved[0].text = report_id
        body.append(moved)
    return root


def _moved(element: etree._Element, namespace: str = _CAMT053) -> etree._Element:
    """A deep copy of a camt.054.001.08 element in another camt .08 namespace (same entries)."""
    copy = etree.Element(f"{{{namespace}}}{etree.QName(element).localname}", element.attrib)
    copy.text = element.text
    for child in element:
        copy.append(_moved(child, namespace))
    return copy


def _insert_balances(
    stmt: etree._Element, balances: StatementBalances, notification: Notification
) -> None:
    currency = notification.entries[0].currency if notification.entries else "VND"
    acct = stmt.find(f"{{{_CAMT053}}}Acct")
    assert acct is not None  # build_camt054 always writes Acct
    at = list(stmt).index(acct) + 1
    for offset, (code, amount) in enumerate(
        (("OPBD", balances.opening), ("CLBD", balances.closing))
    ):
        bal = etree.Element(f"{{{_CAMT053}}}Bal")
        tp = etree.SubElement(
            etree.SubElement(bal, f"{{{_CAMT053}}}Tp"), f"{{{_CAMT053}}}CdOrPrtry"
        )
        etree.SubElement(tp, f"{{{_CAMT053}}}Cd").text = code
        amt = etree.SubElement(bal, f"{{{_CAMT053}}}Amt")
        # An empty account's balance is 0 (wire_amount is for payment amounts, always positive).
        amt.text = wire_amount(abs(amount), currency) if amount else "0"
        amt.set("Ccy", currency)
        etree.SubElement(bal, f"{{{_CAMT053}}}CdtDbtInd").text = "DBIT" if amount < 0 else "CRDT"
        day = etree.SubElement(bal, f"{{{_CAMT053}}}Dt")
        etree.SubElement(day, f"{{{_CAMT053}}}Dt").text = balances.day.isoformat()
        stmt.insert(at + offset, bal)
