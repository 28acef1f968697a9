"""pacs.004 payment returns: a settled payment coming back moves its order to `returned` once.

A return that cannot be applied (unknown payment, another partner's order, an order not settled,
another amount) is kept as unmatched with the reason; the order does not move.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import structlog

from gateway.config import PartnerProfile
from gateway.domain.states import TxState
from gateway.iso20022.model import PaymentReturn, ReturnedTransaction
from gateway.service.ports import BankAnswer, ReturnRecord, UnitOfWork
from gateway.service.ports import Unmatched as UnmatchedLine
from gateway.service.transitions import advance

log = structlog.get_logger("gateway.inbound")


class Unmatched(Exception):  # noqa: N818 - a verdict on one return, not an error of the gateway
    """A return that cannot be applied; the message says why."""


def apply_return(
    uow: UnitOfWork, partner: PartnerProfile, returned: PaymentReturn, raw: bytes, now: datetime
) -> str:
    """Apply a verified pacs.004 in the caller's transaction: applied or duplicate."""
    log_ = log.bind(msg_id=returned.msg_id)
    if not uow.inbound.first_sight(partner.name, returned.msg_id, "pacs.004", raw, now):
        log_.info("return.duplicate")
        return "duplicate"
    counts = {"returned": 0, "repeated": 0, "unmatched": 0}
    for index, line in enumerate(returned.transactions, start=1):
        # The return's own id is the bank reference the ledger sees; one per line of the file.
        bank_ref = line.return_id or f"{returned.msg_id}#{index}"
        if uow.inbound.entry_applied(partner.name, bank_ref):
            counts["repeated"] += 1
            continue
        try:
            outcome = _apply_line(uow, partner, line, bank_ref, returned.msg_id, now)
            if outcome == "returned":
                uow.inbound.add_entry(partner.name, bank_ref, returned.msg_id, outcome, now)
        except Unmatched as exc:
            outcome = "unmatched"
            uow.inbound.unmatched(
                UnmatchedLine(
                    partner=partner.name,
                    msg_id=returned.msg_id,
                    reference=line.original_end_to_end_id or bank_ref,
                    reason=str(exc),
                    detail={"return": asdict(line)},
                ),
                now,
            )
            log_.warning("return.unmatched", reference=bank_ref, reason=str(exc))
        counts[outcome] += 1
    log_.info("return.applied", **counts)
    return "applied"


def _apply_line(
    uow: UnitOfWork,
    partner: PartnerProfile,
    line: ReturnedTransaction,
    bank_ref: str,
    msg_id: str,
    now: datetime,
) -> str:
    reason = line.reason_code or "no reason code"
    end_to_end_id = line.original_end_to_end_id
    order = uow.orders.get(end_to_end_id) if end_to_end_id else None
    if order is None:
        raise Unmatched(f"return ({reason}) of an unknown payment {end_to_end_id}")
    if order.partner != partner.name:
        raise Unmatched(
            f"return of order {order.order_id}, sent to {order.partner}, not {partner.name}"
        )
    if order.state is TxState.RETURNED:
        # Returned already, by another file or a camt.054: a repeated return changes nothing.
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
            status_code="RTRN",
            reason_code=line.reason_code,
            reason_text=line.reason_text,
            bank_ref=bank_ref,
            value_date=line.settlement_date,
        ),
    )
    uow.evidence.add_return(
        ReturnRecord(
            partner=partner.name,
            bank_ref=bank_ref,
            order_id=order.order_id,
            msg_id=msg_id,
            amount=order.amount,
            currency=order.currency,
            value_date=line.settlement_date,
            reason_code=line.reason_code,
            reason_text=line.reason_text,
        ),
        now,
    )
    return "returned"
