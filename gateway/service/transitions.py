"""Moving an order forward, and the posting every final state owes the treasury ledger."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from gateway.domain.postings import LedgerPosting, PostingKind
from gateway.domain.states import TxState, can_move
from gateway.service.ports import BankAnswer, StoredOrder, UnitOfWork
from gateway.service.postings import posting_message

# The posting each final state sends to the treasury ledger.
POSTING_FOR = {
    TxState.SETTLED: PostingKind.PAYMENT_SETTLED,
    TxState.REJECTED: PostingKind.PAYMENT_REJECTED,
    TxState.RETURNED: PostingKind.PAYMENT_RETURNED,
}


def advance(
    uow: UnitOfWork,
    order: StoredOrder,
    target: TxState,
    now: datetime,
    answer: BankAnswer | None = None,
) -> bool:
    """Move an order forward; a final state writes its posting in the same unit of work.

    Returns False, changing nothing, when the move would not go forward (a late or repeated
    report).
    """
    if not can_move(order.state, target):
        return False
    answer = answer or BankAnswer()
    # A return keeps the settlement's bank reference and value date on the order (end-of-day
    # reconciliation finds the statement's debit by them); the return's own go in its posting.
    kept = replace(answer, bank_ref=None, value_date=None) if target is TxState.RETURNED else answer
    uow.orders.move(order, target, kept, now)
    kind = POSTING_FOR.get(target)
    if kind is None:
        return True
    # What the move just wrote (it keeps earlier bank details where none are given).
    bank_ref = answer.bank_ref or order.bank_ref
    value_date = answer.value_date or order.value_date
    posting = LedgerPosting(
        kind=kind,
        subject=order.order_id,
        order_id=order.order_id,
        end_to_end_id=order.order_id,
        msg_id=order.msg_id,
        status=answer.status_code or target.value,
        reason_code=answer.reason_code,
        reason_text=answer.reason_text,
        amount=order.amount,
        currency=order.currency,
        value_date=value_date,
        bank_ref=bank_ref,
        occurred_at=now,
        # Only an order naming a budget has its payload decoded again (most do not).
        budget=json.loads(order.payload).get("budget") if '"budget"' in order.payload else None,
    )
    uow.outbox.add(posting_message(posting), now)
    return True
