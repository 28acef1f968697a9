"""camt.052 bank-to-customer account report (intraday), read as .02, .04 and .08.

Each `Rpt` is one account's report for part of a day: its balances (often interim, `ITBD`) and
entries booked or pending so far. Its structure is a camt.053 `Stmt`'s, and its entries are read
exactly as camt.054 entries are, so one booking seen in a camt.052 and again in a camt.054 or
camt.053 compares equal (same amounts, same bank reference).
"""

from __future__ import annotations

from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.apphdr import document_of
from gateway.iso20022.camt053 import read_account_block
from gateway.iso20022.model import IntradayReport
from gateway.iso20022.namespaces import message_type, namespace_of
from gateway.iso20022.xml import find, findall, parse_datetime, required_text


def read_camt052(root: etree._Element) -> IntradayReport:
    """Read a camt.052 (.02, .04 or .08) with every Rpt it holds."""
    root = document_of(root)
    kind = message_type(root)
    if kind.family != "camt.052":
        raise InvalidMessage(f"expected a camt.052 account report, got {kind.name_id}")
    ns = namespace_of(root)
    body = find(root, ns, "BkToCstmrAcctRpt")
    header = find(body, ns, "GrpHdr") if body is not None else None
    if body is None or header is None:
        raise InvalidMessage(f"{kind.name_id}: <BkToCstmrAcctRpt/GrpHdr> is missing")
    reports = findall(body, ns, "Rpt")
    if not reports:
        raise InvalidMessage(f"line {body.sourceline}: {kind.name_id}: no <Rpt>")
    return IntradayReport(
        msg_id=required_text(header, ns, "MsgId", "GrpHdr"),
        created_at=parse_datetime(required_text(header, ns, "CreDtTm", "GrpHdr"), "CreDtTm"),
        reports=tuple(read_account_block(rpt, ns, "Rpt") for rpt in reports),
    )
