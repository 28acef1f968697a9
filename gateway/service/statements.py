"""camt.053 end-of-day statements: kept per partner, account and date as evidence for
`gateway reconcile`. A statement moves no order."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import structlog

from gateway.adapters.db import Database, Tx
from gateway.config import PartnerProfile
from gateway.errors import InvalidMessage
from gateway.iso20022.consistency import entry_problem
from gateway.iso20022.model import AccountStatement, Balance, Statement
from gateway.reasons import bounded
from gateway.service.clock import stamp
from gateway.service.reconcile import Known, Reconciliation, StatementLine, StatementView, reconcile

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
            # An entry at odds with its details is kept as booked, matched to no order.
            problem = entry_problem(entry)
            detail = entry.details[0] if len(entry.details) == 1 and not problem else None
            bank_ref = entry.account_servicer_ref or f"{stmt.statement_id}#{index}"
            if problem:
                tx.unmatched(
                    partner=partner.name,
                    msg_id=statement.msg_id,
                    reference=bank_ref,
                    reason=bounded(problem),
                    detail={"statement_id": stmt.statement_id, "bank_ref": bank_ref},
                    now=stamp(now),
                )
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


def _account_of(payload: str) -> str | None:
    account = json.loads(payload).get("debtor", {}).get("account", {})
    value = account.get("number") or account.get("iban")
    return str(value) if value else None


def load_reconciliation(db: Database, day: str, partner: str | None = None) -> list[Reconciliation]:
    """Reconcile every statement kept for `day` (of one partner, or all), read-only."""
    where = "stmt_date = ?" + (" AND partner = ?" if partner else "")
    args = (day, partner) if partner else (day,)
    rows = db.query(
        "SELECT partner, statement_id, account, opening, closing FROM statements"  # noqa: S608 - fixed clauses
        f" WHERE {where} ORDER BY partner, account, statement_id",
        args,
    )
    results = []
    for owner, statement_id, account, opening, closing in rows:
        lines = tuple(
            StatementLine(ref, cd, status, Decimal(amount), currency, e2e, reason)
            for ref, cd, status, amount, currency, e2e, reason in db.query(
                "SELECT bank_ref, credit_debit, status, amount, currency, end_to_end_id,"
                " return_reason FROM statement_entries WHERE partner = ? AND statement_id = ?"
                " ORDER BY bank_ref",
                (owner, statement_id),
            )
        )
        view = StatementView(
            partner=owner,
            statement_id=statement_id,
            account=account,
            day=day,
            opening=Decimal(opening) if opening is not None else None,
            closing=Decimal(closing) if closing is not None else None,
            lines=lines,
        )
        payments = [
            Known(order_id, Decimal(amount), currency, bank_ref)
            for order_id, amount, currency, bank_ref, payload in db.query(
                "SELECT order_id, amount, currency, bank_ref, payload FROM orders"
                " WHERE partner = ? AND value_date = ? AND state IN ('settled', 'returned')",
                (owner, day),
            )
            if _account_of(payload) == account
        ]
        credits = [
            Known(ref, Decimal(amount), currency, ref)
            for ref, amount, currency in db.query(
                "SELECT bank_ref, amount, currency FROM revenue"
                " WHERE partner = ? AND value_date = ? UNION ALL"
                " SELECT bank_ref, amount, currency FROM returns"
                " WHERE partner = ? AND value_date = ?",
                (owner, day, owner, day),
            )
        ]
        results.append(reconcile(view, payments, credits))
    return results
