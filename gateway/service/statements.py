"""camt.053 end-of-day statements: kept per partner, account and date as evidence for
`gateway reconcile`. A statement moves no order."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import structlog

from gateway.config import PartnerProfile
from gateway.errors import InvalidMessage
from gateway.iso20022.consistency import entry_problem
from gateway.iso20022.model import AccountStatement, Balance, Statement
from gateway.reasons import bounded
from gateway.service.ports import (
    Queries,
    StatementEntryRecord,
    StatementRecord,
    UnitOfWork,
    UnmatchedLine,
)
from gateway.service.reconcile import Known, Reconciliation, StatementLine, StatementView, reconcile

log = structlog.get_logger("gateway.inbound")

OPENING = ("OPBD", "PRCD")  # opening booked; else the previous closing
CLOSING = ("CLBD",)


def _number(account: str) -> str:
    return account.rsplit(":", maxsplit=1)[-1]


def signed(balance: Balance) -> Decimal:
    """A balance as a signed amount (a debit balance is negative)."""
    return -balance.amount if balance.credit_debit == "DBIT" else balance.amount


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
    uow: UnitOfWork, partner: PartnerProfile, statement: Statement, raw: bytes, now: datetime
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
    if not uow.inbound.first_sight(partner.name, statement.msg_id, "camt.053", raw, now):
        log_.info("statement.duplicate")
        return "duplicate"
    kept = repeated = 0
    for stmt in statement.statements:
        opening = _balance(stmt, OPENING)
        closing = _balance(stmt, CLOSING)
        either = closing or opening
        if not uow.evidence.add_statement(
            StatementRecord(
                partner=partner.name,
                statement_id=stmt.statement_id,
                msg_id=statement.msg_id,
                account=_number(stmt.account),
                stmt_date=statement_date(stmt, statement.created_at),
                currency=either.currency if either else None,
                opening=signed(opening) if opening else None,
                closing=signed(closing) if closing else None,
                balances=[
                    {
                        "type": b.type,
                        "amount": format(signed(b), "f"),
                        "currency": b.currency,
                        "date": b.date.isoformat() if b.date else None,
                    }
                    for b in stmt.balances
                ],
            ),
            now,
        ):
            repeated += 1
            continue
        kept += 1
        for index, entry in enumerate(stmt.entries, start=1):
            # An entry at odds with its details is kept as booked, matched to no order.
            problem = entry_problem(entry)
            detail = entry.details[0] if len(entry.details) == 1 and not problem else None
            bank_ref = entry.account_servicer_ref or f"{stmt.statement_id}#{index}"
            if problem:
                uow.inbound.unmatched(
                    UnmatchedLine(
                        partner=partner.name,
                        msg_id=statement.msg_id,
                        reference=bank_ref,
                        reason=bounded(problem),
                        detail={"statement_id": stmt.statement_id, "bank_ref": bank_ref},
                    ),
                    now,
                )
            uow.evidence.add_statement_entry(
                StatementEntryRecord(
                    partner=partner.name,
                    bank_ref=bank_ref,
                    statement_id=stmt.statement_id,
                    credit_debit=entry.credit_debit,
                    status=entry.status,
                    amount=entry.amount,
                    currency=entry.currency,
                    value_date=entry.value_date,
                    end_to_end_id=detail.end_to_end_id if detail else None,
                    return_reason=detail.return_reason if detail else None,
                )
            )
    log_.info("statement.kept", statements=kept, repeated=repeated)
    return "applied"


def _account_of(payload: str | None) -> str | None:
    account = json.loads(payload or "{}").get("debtor", {}).get("account", {})
    value = account.get("number") or account.get("iban")
    return str(value) if value else None


def load_reconciliation(
    queries: Queries, day: date, partner: str | None = None
) -> list[Reconciliation]:
    """Reconcile every statement kept for `day` (of one partner, or all), read-only."""
    results = []
    for kept in queries.statements_of_day(day, partner):
        lines = tuple(
            StatementLine(
                e.bank_ref,
                e.credit_debit,
                e.status,
                e.amount,
                e.currency,
                e.end_to_end_id,
                e.return_reason,
            )
            for e in queries.statement_entries(kept.partner, kept.statement_id)
        )
        view = StatementView(
            partner=kept.partner,
            statement_id=kept.statement_id,
            account=kept.account,
            day=day.isoformat(),
            opening=kept.opening,
            closing=kept.closing,
            lines=lines,
        )
        payments = [
            Known(b.reference, b.amount, b.currency, b.bank_ref)
            for b in queries.booked_payments(kept.partner, day)
            if _account_of(b.payload) == kept.account
        ]
        credits = [
            Known(b.reference, b.amount, b.currency, b.bank_ref)
            for b in queries.booked_credits(kept.partner, day)
        ]
        results.append(reconcile(view, payments, credits))
    return results
