"""Moving an order forward, and the posting every final state owes the treasury ledger."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from gateway.adapters.db import Tx
from gateway.domain.postings import LedgerPosting, PostingKind
from gateway.domain.states import TxState, can_move
from gateway.service.clock import stamp
from gateway.service.postings import posting_message
from gateway.service.records import StoredOrder

# The posting each final state sends to the treasury ledger.
POSTING_FOR = {
    TxState.SETTLED: PostingKind.PAYMENT_SETTLED,
    TxState.REJECTED: PostingKind.PAYMENT_REJECTED,
    TxState.RETURNED: PostingKind.PAYMENT_RETURNED,
}


def advance(
    tx: Tx,
    order: StoredOrder,
    target: TxState,
    now: datetime,
    *,
    status_code: str | None = None,
    reason_code: str | None = None,
    reason_text: str | None = None,
    bank_ref: str | None = None,
    value_date: str | None = None,
) -> bool:
    """Move an order forward; a final state writes its posting in the same transaction.

    Returns False, changing nothing, when the move would not go forward (a late or repeated
    report).
    """
    if not can_move(TxState(order.state), target):
        return False
    # A return keeps the settlement's bank reference and value date on the order (end-of-day
    # reconciliation finds the statement's debit by them); the return's own go in its posting.
    keeps_settlement = target is TxState.RETURNED
    tx.move_order(
        order.order_id,
        target.value,
        stamp(now),
        status_code=status_code,
        reason_code=reason_code,
        reason_text=reason_text,
        bank_ref=None if keeps_settlement else bank_ref,
        value_date=None if keeps_settlement else value_date,
    )
    kind = POSTING_FOR.get(target)
    if kind is None:
        return True
    # What move_order just wrote (it keeps earlier bank details where none are given).
    moved = replace(
        order,
        state=target.value,
        bank_ref=bank_ref or order.bank_ref,
        value_date=value_date or order.value_date,
    )
    posting = LedgerPosting(
        kind=kind,
        subject=moved.order_id,
        order_id=moved.order_id,
        end_to_end_id=moved.order_id,
        msg_id=moved.msg_id,
        status=status_code or target.value,
        reason_code=reason_code,
        reason_text=reason_text,
        amount=Decimal(moved.amount),
        currency=moved.currency,
        value_date=date.fromisoformat(moved.value_date) if moved.value_date else None,
        bank_ref=moved.bank_ref,
        occurred_at=now,
        budget=json.loads(moved.payload).get("budget"),
    )
    tx.enqueue(posting_message(posting), stamp(now))
    return True
