"""Reconciliation logic on plain values: what matches, what is unknown, missing or different."""

from __future__ import annotations

from decimal import Decimal

from gateway.service.reconcile import Known, StatementLine, StatementView, reconcile


def view(
    *lines: StatementLine, opening: str | None = "1000", closing: str | None = "700"
) -> StatementView:
    """A statement of one day with the given lines and balances."""
    return StatementView(
        partner="agribank",
        statement_id="S1",
        account="7411058271001",
        day="2026-11-20",
        opening=Decimal(opening) if opening is not None else None,
        closing=Decimal(closing) if closing is not None else None,
        lines=lines,
    )


def debit(ref: str, amount: str, e2e: str | None, status: str = "BOOK") -> StatementLine:
    """A debit line."""
    return StatementLine(ref, "DBIT", status, Decimal(amount), "VND", e2e)


def credit(ref: str, amount: str) -> StatementLine:
    """A credit line."""
    return StatementLine(ref, "CRDT", "BOOK", Decimal(amount), "VND")


def test_everything_matched_is_reconciled() -> None:
    """Debits by end-to-end id, credits by bank reference, and the balance adds up."""
    result = reconcile(
        view(debit("B1", "400", "O1"), credit("C1", "100")),
        [Known("O1", Decimal(400), "VND", "B1")],
        [Known("C1", Decimal(100), "VND", "C1")],
    )
    assert result.ok
    assert (result.debits.matched, result.debits.matched_sum) == (1, Decimal(400))
    assert (result.credits.matched, result.balance_ok) == (1, True)


def test_a_debit_without_end_to_end_id_matches_by_bank_reference() -> None:
    """A line the bank wrote without our id is found by the settlement's bank reference."""
    result = reconcile(
        view(debit("B1", "300", None), closing="700"),
        [Known("O1", Decimal(300), "VND", "B1")],
        [],
    )
    assert result.ok and result.debits.matched == 1


def test_differences_are_each_listed() -> None:
    """Unknown line, payment missing from the statement, other amount: not reconciled."""
    result = reconcile(
        view(debit("B1", "400", "O1"), debit("B9", "5", "X"), closing="595"),
        [Known("O1", Decimal(401), "VND", "B1"), Known("O2", Decimal(10), "VND", "B2")],
        [Known("C1", Decimal(100), "VND", "C1")],
    )
    assert not result.ok
    assert [u["bank_ref"] for u in result.debits.unknown] == ["B9"]
    assert [m["order_id"] for m in result.debits.mismatched] == ["O1"]
    assert [m["order_id"] for m in result.debits.missing] == ["O2"]
    assert [m["reference"] for m in result.credits.missing] == ["C1"]
    assert result.balance_ok is True  # 1000 - 405 = 595: the bank's own sums add up


def test_an_unbalanced_statement_is_not_reconciled() -> None:
    """Opening + entries ≠ closing fails even when every line matches."""
    result = reconcile(
        view(debit("B1", "400", "O1"), closing="601"), [Known("O1", Decimal(400), "VND")], []
    )
    assert result.balance_expected == Decimal(600)
    assert result.balance_ok is False and not result.ok


def test_pending_entries_are_shown_not_matched() -> None:
    """A pending line is listed apart and counts in neither side nor the balance."""
    result = reconcile(view(debit("B1", "50", "O1", status="PDNG"), closing="1000"), [], [])
    assert result.ok
    assert result.skipped[0]["status"] == "PDNG"


def test_without_balances_the_check_is_unknown() -> None:
    """No opening or closing balance: the balance check is None, the lines still decide."""
    result = reconcile(view(opening=None), [], [])
    assert result.balance_ok is None and result.ok
