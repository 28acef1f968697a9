"""pacs.004 payment return, read as .02, .09 and .11: settled payments coming back, with reasons.

The original ids sit on each TxInf (`OrgnlEndToEndId`, `OrgnlInstrId`, `OrgnlTxId`), the original
message id on the TxInf's `OrgnlGrpInf` or, for the whole file, on `OrgnlGrpInf` beside `GrpHdr`.
"""

from __future__ import annotations

import re
from decimal import Decimal

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

_MAX_ID = 35  # Max35Text: every id the gateway reads from a return
_CURRENCY = re.compile(r"^[A-Z]{3}$")  # ActiveOrHistoricCurrencyCode
_FRACTION_DIGITS, _TOTAL_DIGITS = 5, 18  # ActiveCurrencyAndAmount_SimpleType


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
    _check_id(text(header, ns, "MsgId"), "GrpHdr/MsgId")
    _check_id(original_msg_id, "OrgnlGrpInf/OrgnlMsgId")
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
    _check_amount(amount, currency, where)
    for tag in ("RtrId", "OrgnlInstrId", "OrgnlEndToEndId", "OrgnlTxId", "OrgnlGrpInf/OrgnlMsgId"):
        _check_id(text(tx, ns, tag), f"{where} {tag}")
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


# The XSD's value rules, checked by the reader itself: pacs.004.001.02 and .11 are read without
# an XSD (none is shipped for them, see schemas/SOURCES.md), and these are the values it uses.


def _check_id(value: str | None, where: str) -> None:
    """An id is 1 to 35 characters (Max35Text)."""
    if value is not None and len(value) > _MAX_ID:
        raise InvalidMessage(f"{where}: {len(value)} characters, at most {_MAX_ID} allowed")


def _check_amount(amount: Decimal, currency: str, where: str) -> None:
    """A returned amount: a currency code of three capitals, more than zero, at most 5 decimals
    and 18 digits (ActiveCurrencyAndAmount)."""
    if not _CURRENCY.match(currency):
        raise InvalidMessage(f"{where}: currency {currency!r} is not a three-letter ISO code")
    if amount <= 0:
        raise InvalidMessage(f"{where}: returned amount {amount} is not more than zero")
    digits = amount.as_tuple()
    exponent = digits.exponent if isinstance(digits.exponent, int) else 0
    fraction = max(0, -exponent)
    if fraction > _FRACTION_DIGITS or len(digits.digits) > _TOTAL_DIGITS:
        raise InvalidMessage(
            f"{where}: returned amount {amount} has more than {_FRACTION_DIGITS} decimals or"
            f" {_TOTAL_DIGITS} digits"
        )
