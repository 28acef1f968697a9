"""End-of-day reconciliation: a bank statement against what the gateway holds, with no I/O.

Booked debits on the statement are matched to the payments the gateway holds settled on that
value date from that account (by end-to-end id, else by bank reference); booked credits to the
revenue and returns it took in (by bank reference). The balances must add up:
opening + credits − debits = closing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One entry of the statement."""

    bank_ref: str
    credit_debit: str
    status: str
    amount: Decimal
    currency: str
    end_to_end_id: str | None = None
    return_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StatementView:
    """A kept statement of one account for one day."""

    partner: str
    statement_id: str
    account: str
    day: str
    opening: Decimal | None
    closing: Decimal | None
    lines: tuple[StatementLine, ...]


@dataclass(frozen=True, slots=True)
class Known:
    """A debit or credit the gateway holds for that day: a settled payment, revenue, a return."""

    key: str  # the order id of a payment; the bank reference of revenue or a return
    amount: Decimal
    currency: str
    bank_ref: str | None = None


@dataclass
class Side:
    """Matched count and sum of one side (debits or credits)."""

    matched: int = 0
    matched_sum: Decimal = Decimal(0)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Plain JSON: amounts as decimal strings."""
        return {
            "matched": self.matched,
            "matched_sum": format(self.matched_sum, "f"),
            "unknown": self.unknown,
            "missing": self.missing,
            "mismatched": self.mismatched,
        }


@dataclass
class Reconciliation:
    """The verdict on one statement."""

    statement: StatementView
    debits: Side
    credits: Side
    skipped: list[dict[str, Any]]  # entries not booked (pending, information only)
    balance_expected: Decimal | None
    balance_ok: bool | None  # None when the statement has no opening or closing balance

    @property
    def ok(self) -> bool:
        """Reconciled: everything matched and the balances add up."""
        sides = (self.debits, self.credits)
        clean = all(not (s.unknown or s.missing or s.mismatched) for s in sides)
        return clean and self.balance_ok is not False

    def as_json(self) -> dict[str, Any]:
        """Plain JSON for `gateway reconcile --json`."""
        s = self.statement
        return {
            "partner": s.partner,
            "statement_id": s.statement_id,
            "account": s.account,
            "date": s.day,
            "reconciled": self.ok,
            "debits": self.debits.as_json(),
            "credits": self.credits.as_json(),
            "not_booked": self.skipped,
            "balance": {
                "opening": _text(s.opening),
                "closing": _text(s.closing),
                "opening_plus_entries": _text(self.balance_expected),
                "ok": self.balance_ok,
            },
        }


def _text(amount: Decimal | None) -> str | None:
    return format(amount, "f") if amount is not None else None


def _line(line: StatementLine) -> dict[str, Any]:
    return {
        "bank_ref": line.bank_ref,
        "end_to_end_id": line.end_to_end_id,
        "amount": format(line.amount, "f"),
        "currency": line.currency,
    }


def _match(
    lines: list[StatementLine],
    known: list[Known],
    key_of_line: Callable[[StatementLine], str | None],
    what: str,
) -> Side:
    side = Side()
    by_key = {k.key: k for k in known}
    by_ref = {k.bank_ref: k for k in known if k.bank_ref}
    seen: set[str] = set()
    for line in lines:
        found = by_key.get(key_of_line(line) or "") or by_ref.get(line.bank_ref)
        if found is None or found.key in seen:
            side.unknown.append(_line(line))
            continue
        seen.add(found.key)
        if found.amount != line.amount or found.currency != line.currency:
            side.mismatched.append(
                {
                    **_line(line),
                    what: found.key,
                    "gateway_amount": format(found.amount, "f"),
                    "gateway_currency": found.currency,
                }
            )
            continue
        side.matched += 1
        side.matched_sum += line.amount
    for k in known:
        if k.key not in seen:
            side.missing.append(
                {
                    what: k.key,
                    "amount": format(k.amount, "f"),
                    "currency": k.currency,
                    "bank_ref": k.bank_ref,
                }
            )
    return side


def reconcile(
    statement: StatementView, payments: list[Known], credits: list[Known]
) -> Reconciliation:
    """Compare one statement with the gateway's settled payments and credits of its day."""
    booked = [line for line in statement.lines if line.status == "BOOK"]
    skipped = [
        _line(line) | {"status": line.status} for line in statement.lines if line.status != "BOOK"
    ]
    debit_lines = [line for line in booked if line.credit_debit == "DBIT"]
    credit_lines = [line for line in booked if line.credit_debit == "CRDT"]
    debits = _match(debit_lines, payments, lambda line: line.end_to_end_id, "order_id")
    credits_side = _match(credit_lines, credits, lambda line: line.bank_ref, "reference")
    expected: Decimal | None = None
    balance_ok: bool | None = None
    if statement.opening is not None and statement.closing is not None:
        net = sum((line.amount for line in credit_lines), Decimal(0)) - sum(
            (line.amount for line in debit_lines), Decimal(0)
        )
        expected = statement.opening + net
        balance_ok = expected == statement.closing
    return Reconciliation(statement, debits, credits_side, skipped, expected, balance_ok)
