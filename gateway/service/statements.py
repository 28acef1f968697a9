"""camt.053 end-of-day statements: kept per partner, account and date as evidence for
`gateway reconcile`. A statement moves no order."""

from __future__ import annotations

from datetime import date, datetime

import structlog

from gateway.adapters.db import Tx
from gateway.config import PartnerProfile
from gateway.errors import InvalidMessage
from gateway.iso20022.model import AccountStatement, Balance, Statement
from gateway.service.clock import stamp

log = structlog.get_logger("gateway.inbound")

OPENING = ("OPBD", "PRCD")  # opening booked; else the previous closing
CLOSING = ("CLBD",)


def _number(account: str) -> str:
    return account.rsplit(":", maxsplit=1)[-1]


def signed(balance: Balance) -> str:
    """A balance as a signed decimal string (a debit balance is negative)."""
    amount = -balance.amount if balance.credit_debit == "DBIT" else balance.amount
    return format(amount, "f")


def _balance(stmt: AccountStatement, codes: tuple[str, ...]) -> Balance | None:
    for code in codes:
        for balance in stmt.balances:
            if balance.type == code:
                return balance
    return None


def statement_date(stmt: AccountStatement, created_at: datetime) -> date:
    """The day a statement closes: its closing balance's date, else its period's end."""
    closing = _balance(stmt, CLOSING)
    if closing is not None and closing.date is not None:
        return closing.date
    return stmt.to_date or (stmt.created_at or created_at).date()


def apply_statement(
    tx: Tx, partner: PartnerProfile, statement: Statement, raw: bytes, now: datetime
) -> str:
    """Keep a verified camt.053 in the caller's transaction: applied or duplicate."""
    ours = {_number(a) for a in partner.accounts}
    for stmt in statement.statements:
        if _number(stmt.account) not in ours:
            raise InvalidMessage(
                f"camt.053 {statement.msg_id} statement {stmt.statement_id} is for account"
                f" {stmt.account}, not one of {partner.name}'s accounts in its profile"
            )
    log_ = log.bind(msg_id=statement.msg_id)
    if not tx.first_sight(partner.name, statement.msg_id, "camt.053", raw, stamp(now)):
        log_.info("statement.duplicate")
        return "duplicate"
    kept = repeated = 0
    for stmt in statement.statements:
        opening = _balance(stmt, OPENING)
        closing = _balance(stmt, CLOSING)
        either = closing or opening
        if not tx.add_statement(
            partner=partner.name,
            statement_id=stmt.statement_id,
            msg_id=statement.msg_id,
            account=_number(stmt.account),
            stmt_date=statement_date(stmt, statement.created_at).isoformat(),
            currency=either.currency if either else None,
            opening=signed(opening) if opening else None,
            closing=signed(closing) if closing else None,
            balances=[
                {
                    "type": b.type,
                    "amount": signed(b),
                    "currency": b.currency,
                    "date": b.date.isoformat() if b.date else None,
                }
                for b in stmt.balances
            ],
            now=stamp(now),
        ):
            repeated += 1
            continue
        kept += 1
        for index, entry in enumerate(stmt.entries, start=1):
            detail = entry.details[0] if len(entry.details) == 1 else None
            bank_ref = entry.account_servicer_ref or f"{stmt.statement_id}#{index}"
            tx.add_statement_entry(
                partner=partner.name,
                bank_ref=bank_ref,
                statement_id=stmt.statement_id,
                credit_debit=entry.credit_debit,
                status=entry.status,
                amount=format(entry.amount, "f"),
                currency=entry.currency,
                value_date=entry.value_date.isoformat() if entry.value_date else None,
                end_to_end_id=detail.end_to_end_id if detail else None,
                return_reason=detail.return_reason if detail else None,
            )
    log_.info("statement.kept", statements=kept, repeated=repeated)
    return "applied"
