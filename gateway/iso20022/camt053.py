"""camt.053 bank-to-customer statement, read as .02, .04 and .08: balances and booked entries.

Entries are read exactly as camt.054 entries are (the same `Ntry` structure), so a statement line
and a notification line of the same payment compare equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.apphdr import document_of
from gateway.iso20022.camt054 import read_amount, read_entry
from gateway.iso20022.model import AccountStatement, Balance, Entry, Statement
from gateway.iso20022.namespaces import message_type, namespace_of
from gateway.iso20022.xml import (
    code_or_proprietary,
    date_choice,
    find,
    findall,
    parse_date,
    parse_datetime,
    read_account,
    required_text,
    text,
)


def read_camt053(
    root: etree._Element, entries: Mapping[etree._Element, Sequence[Entry]] | None = None
) -> Statement:
    """Read a camt.053 (.02, .04 or .08) with every Stmt it holds.

    `entries`, when given, were read already as the file streamed in (see
    `gateway.iso20022.streaming`), by the Stmt holding them: `root` then holds no Ntry.
    """
    root = document_of(root)
    kind = message_type(root)
    if kind.family != "camt.053":
        raise InvalidMessage(f"expected a camt.053 statement, got {kind.name_id}")
    ns = namespace_of(root)
    body = find(root, ns, "BkToCstmrStmt")
    header = find(body, ns, "GrpHdr") if body is not None else None
    if body is None or header is None:
        raise InvalidMessage(f"{kind.name_id}: <BkToCstmrStmt/GrpHdr> is missing")
    statements = findall(body, ns, "Stmt")
    if not statements:
        raise InvalidMessage(f"line {body.sourceline}: {kind.name_id}: no <Stmt>")
    return Statement(
        msg_id=required_text(header, ns, "MsgId", "GrpHdr"),
        created_at=parse_datetime(required_text(header, ns, "CreDtTm", "GrpHdr"), "CreDtTm"),
        statements=tuple(
            read_account_block(stmt, ns, read=None if entries is None else entries.get(stmt, ()))
            for stmt in statements
        ),
    )


def read_account_block(
    stmt: etree._Element,
    ns: str | None,
    label: str = "Stmt",
    read: Sequence[Entry] | None = None,
) -> AccountStatement:
    """One account's block: a camt.053 `Stmt`, or a camt.052 `Rpt` (same structure); `read`:
    its entries when they were read already."""
    statement_id = required_text(stmt, ns, "Id", label)
    where = f"{label} {statement_id}"
    account = read_account(find(stmt, ns, "Acct"), ns)
    if account is None:
        raise InvalidMessage(f"line {stmt.sourceline}: {where}: <Acct/Id> is missing")
    created = text(stmt, ns, "CreDtTm")
    period = find(stmt, ns, "FrToDt")
    start = text(period, ns, "FrDtTm")
    end = text(period, ns, "ToDtTm")
    return AccountStatement(
        statement_id=statement_id,
        account=account,
        created_at=parse_datetime(created, f"{where} CreDtTm") if created else None,
        balances=tuple(_read_balance(bal, ns, where) for bal in findall(stmt, ns, "Bal")),
        entries=tuple(read)
        if read is not None
        else tuple(read_entry(ntry, ns) for ntry in findall(stmt, ns, "Ntry")),
        electronic_sequence=text(stmt, ns, "ElctrncSeqNb"),
        from_date=parse_date(start, f"{where} FrDtTm") if start else None,
        to_date=parse_date(end, f"{where} ToDtTm") if end else None,
    )


def _read_balance(bal: etree._Element, ns: str | None, where: str) -> Balance:
    """One Bal: `Tp/CdOrPrtry` code, amount, direction and date."""
    here = f"line {bal.sourceline}: {where} Bal"
    kind = code_or_proprietary(find(bal, ns, "Tp/CdOrPrtry"), ns)
    if kind is None:
        raise InvalidMessage(f"{here}: <Tp/CdOrPrtry> is missing")
    amount, currency = read_amount(find(bal, ns, "Amt"), here)
    return Balance(
        type=kind,
        amount=amount,
        currency=currency,
        credit_debit=required_text(bal, ns, "CdtDbtInd", here),
        date=date_choice(find(bal, ns, "Dt"), ns, f"{here} Dt"),
    )
