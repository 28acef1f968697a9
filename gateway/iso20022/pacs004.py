"""pacs.004 payment return, read as .02, .09 and .11: settled payments coming back, with reasons.

The original ids sit on each TxInf (`OrgnlEndToEndId`, `OrgnlInstrId`, `OrgnlTxId`), the original
message id on the TxInf's `OrgnlGrpInf` or, for the whole file, on `OrgnlGrpInf` beside `GrpHdr`.
"""

from __future__ import annotations

from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.apphdr import document_of
from gateway.iso20022.camt054 import read_amount
from gateway.iso20022.model import PaymentReturn, ReturnedTransaction
from gateway.iso20022.namespaces import message_type, namespace_of
from gateway.iso20022.xml import (
    code_or_proprietary,
    find,
    findall,
    parse_date,
    parse_datetime,
    required_text,
    text,
    texts,
)


def read_pacs004(root: etree._Element) -> PaymentReturn:
    """Read a pacs.004 payment return."""
    root = document_of(root)
    kind = message_type(root)
    if kind.family != "pacs.004":
        raise InvalidMessage(f"expected a pacs.004 payment return, got {kind.name_id}")
    ns = namespace_of(root)
    body = find(root, ns, "PmtRtr")
    header = find(body, ns, "GrpHdr") if body is not None else None
    if body is None or header is None:
        raise InvalidMessage(f"{kind.name_id}: <PmtRtr/GrpHdr> is missing")
    original_msg_id = text(body, ns, "OrgnlGrpInf/OrgnlMsgId")
    return PaymentReturn(
        msg_id=required_text(header, ns, "MsgId", "GrpHdr"),
        created_at=parse_datetime(required_text(header, ns, "CreDtTm", "GrpHdr"), "CreDtTm"),
        original_msg_id=original_msg_id,
        transactions=tuple(
            _read_transaction(tx, ns, original_msg_id) for tx in findall(body, ns, "TxInf")
        ),
    )


def _read_transaction(
    tx: etree._Element, ns: str | None, original_msg_id: str | None
) -> ReturnedTransaction:
    """One TxInf: returned amount, original ids, settlement date and reason."""
    where = f"line {tx.sourceline}: TxInf {text(tx, ns, 'RtrId') or '?'}"
    amount, currency = read_amount(find(tx, ns, "RtrdIntrBkSttlmAmt"), where, "RtrdIntrBkSttlmAmt")
    settled = text(tx, ns, "IntrBkSttlmDt")
    reasons = findall(tx, ns, "RtrRsnInf")
    codes = (code_or_proprietary(find(info, ns, "Rsn"), ns) for info in reasons)
    lines = [line for info in reasons for line in texts(info, ns, "AddtlInf")]
    return ReturnedTransaction(
        amount=amount,
        currency=currency,
        return_id=text(tx, ns, "RtrId"),
        original_msg_id=text(tx, ns, "OrgnlGrpInf/OrgnlMsgId") or original_msg_id,
        original_instr_id=text(tx, ns, "OrgnlInstrId"),
        original_end_to_end_id=text(tx, ns, "OrgnlEndToEndId"),
        original_tx_id=text(tx, ns, "OrgnlTxId"),
        settlement_date=parse_date(settled, f"{where} IntrBkSttlmDt") if settled else None,
        reason_code=next((code for code in codes if code), None),
        reason_text=" ".join(lines) or None,
    )
