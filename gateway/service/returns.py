"""Returns: a settled payment coming back moves its order to `returned` once.

A bank says a payment came back in two ways: a pacs.004 (one line per returned transaction) or
a camt.054 credit entry with return information (`RtrInf`). Both come here, as a `ReturnLine`,
and follow one rule (`return_payment`): the same checks, the same posting status, the same bank
reference when the bank gave none.

A return that cannot be applied (unknown payment, another partner's order, an order not settled,
another amount) raises `Unmatched` with the reason: the caller keeps the line as unmatched and
the order does not move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal

import structlog

from gateway.config import PartnerProfile
from gateway.domain.states import TxState
from gateway.iso20022.model import PaymentReturn
from gateway.service.ports import BankAnswer, ReturnRecord, UnitOfWork
from gateway.service.transitions import advance
from gateway.service.unmatched import Unmatched, keep_unmatched

log = structlog.get_logger("gateway.inbound")

# The status a return's posting carries: the ledger-posting contract's `status` is the bank's
# ISO 20022 transaction status or entry status, and a return is a credit booked on the
# treasury's account, whichever message reported it (the posting's kind says it is a return).
RETURN_STATUS = "BOOK"


@dataclass(frozen=True, slots=True)
class ReturnLine:
    """One payment coming back, as a pacs.004 line or a camt.054 return entry states it."""

    # The file that reported it.
    msg_id: str
    # The return's bank reference: the bank's own, else `fallback_ref`.
    bank_ref: str
    # The returned payment (our order id), when the bank names it.
    end_to_end_id: str | None
    amount: Decimal
    currency: str
    value_date: date | None
    reason_code: str | None
    reason_text: str | None


def fallback_ref(msg_id: str, index: int) -> str:
    """The bank reference of a return the bank gave none: its file and its place in the file
    (1-based), the same each time the file is read."""
    return f"{msg_id}#{index}"


def return_payment(
    uow: UnitOfWork, partner: PartnerProfile, line: ReturnLine, now: datetime
) -> str:
    """Return the order `line` names, in the caller's transaction: `returned`, or `repeated`
    when it was returned already (by another file or the other message kind). Unmatched when it
    cannot be."""
    reason = line.reason_code or "no reason code"
    order = uow.orders.get(line.end_to_end_id) if line.end_to_end_id else None
    if order is None:
        named = f" {line.end_to_end_id}" if line.end_to_end_id else " (no EndToEndId)"
        raise Unmatched(f"return ({reason}) of an unknown payment{named}")
    if order.partner != partner.name:
        raise Unmatched(
            f"return of order {order.order_id}, sent to {order.partner}, not {partner.name}"
        )
    if order.state is TxState.RETURNED:
        return "repeated"
    if order.state is not TxState.SETTLED:
        raise Unmatched(f"return of order {order.order_id}, which is {order.state}, not settled")
    if line.currency != order.currency or line.amount != order.amount:
        raise Unmatched(
            f"return of {line.amount} {line.currency} differs from order {order.order_id}'s"
            f" {order.amount} {order.currency}"
        )
    advance(
        uow,
        order,
        TxState.RETURNED,
        now,
        BankAnswer(
            status_code=RETURN_STATUS,
            reason_code=line.reason_code,
            reason_text=line.reason_text,
            bank_ref=line.bank_ref,
            value_date=line.value_date,
        ),
    )
    uow.evidence.add_return(
        ReturnRecord(
            partner=partner.name,
            bank_ref=line.bank_ref,
            order_id=order.order_id,
            msg_id=line.msg_id,
            amount=order.amount,
            currency=order.currency,
            value_date=line.value_date,
            reason_code=line.reason_code,
            reason_text=line.reason_text,
        ),
        now,
    )
    return "returned"


def apply_return(
    uow: UnitOfWork, partner: PartnerProfile, returned: PaymentReturn, raw: bytes, now: datetime
) -> str:
    """Apply a verified pacs.004 in the caller's transaction: applied or duplicate."""
    log_ = log.bind(msg_id=returned.msg_id)
    if not uow.inbound.first_sight(partner.name, returned.msg_id, "pacs.004", raw, now):
        log_.info("return.duplicate")
        return "duplicate"
    counts = {"returned": 0, "repeated": 0, "unmatched": 0}
    for index, tx in enumerate(returned.transactions, start=1):
        # The return's own id is the bank reference the ledger sees; one per line of the file.
        line = ReturnLine(
            msg_id=returned.msg_id,
            bank_ref=tx.return_id or fallback_ref(returned.msg_id, index),
            end_to_end_id=tx.original_end_to_end_id,
            amount=tx.amount,
            currency=tx.currency,
            value_date=tx.settlement_date,
            reason_code=tx.reason_code,
            reason_text=tx.reason_text,
        )
        if uow.inbound.entry_applied(partner.name, line.bank_ref):
            counts["repeated"] += 1
            continue
        try:
            outcome = return_payment(uow, partner, line, now)
            if outcome == "returned":
                uow.inbound.add_entry(partner.name, line.bank_ref, returned.msg_id, outcome, now)
        except Unmatched as exc:
            outcome = "unmatched"
            reference = line.end_to_end_id or line.bank_ref
            detail = {"return": asdict(tx)}
            keep_unmatched(uow, partner.name, returned.msg_id, reference, exc.reason, detail, now)
            log_.warning("return.unmatched", reference=line.bank_ref, reason=exc.reason)
        counts[outcome] += 1
    log_.info("return.applied", **counts)
    return "applied"
