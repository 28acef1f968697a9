"""The demo's returns and end of day: two paid benefits come back (the beneficiary's account
was closed after the payment, AC04), then each bank sends its end-of-day camt.053 statements and
the gateway reconciles them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Final

import structlog

from gateway.adapters.rabbitmq import Publisher
from gateway.banksim.bank import BankSimulator, Reply
from gateway.banksim.wiring import file_bank, publish_reply
from gateway.config import Settings
from gateway.domain.states import TxState
from gateway.service.ports import Queries
from gateway.service.reconcile import Reconciliation
from gateway.service.statements import load_reconciliation

log = structlog.get_logger("gateway.demo")

RETURNS: Final = 2
RETURN_REASON: Final = "AC04"
# The treasury accounts' balances before the month's first booking (VND).
OPENING_BALANCE: Final = Decimal(80_000_000_000)


def deliver(settings: Settings, partner: str, bank: BankSimulator, reply: Reply) -> None:
    """Send one bank file to the gateway as the partner does: by message or into its folder."""
    profile = settings.partners[partner]
    if profile.transport == "files":
        side = file_bank(settings, profile, bank)
        try:
            side.deliver(reply)
        finally:
            side.close()
        return
    publisher = Publisher(settings.amqp_url)
    try:
        publish_reply(publisher, partner, bank, reply)
    finally:
        publisher.close()


def return_payments(
    settings: Settings, queries: Queries, partner: str, bank: BankSimulator, count: int = RETURNS
) -> list[str]:
    """The bank returns `count` settled social benefits (the first by order id); their ids."""
    settled = queries.orders_in_state(
        TxState.SETTLED, partner=partner, category="social_benefit", limit=count
    )
    returned = [order.order_id for order in settled]
    for order_id in returned:
        deliver(settings, partner, bank, bank.return_payment(order_id, RETURN_REASON))
    log.info("demo.returns_sent", orders=returned)
    return returned


def send_statements(settings: Settings, banks: dict[str, BankSimulator]) -> int:
    """Each bank's camt.053 for every day it booked something; how many were sent."""
    sent = 0
    for partner, bank in banks.items():
        for day in bank.record.booked_days():
            reply = bank.statement(date.fromisoformat(day), OPENING_BALANCE)
            deliver(settings, partner, bank, reply)
            sent += 1
    log.info("demo.statements_sent", statements=sent)
    return sent


def reconcile_all(queries: Queries) -> list[Reconciliation]:
    """Reconcile every statement the gateway kept, day by day."""
    return [r for day in queries.statement_days() for r in load_reconciliation(queries, day)]


def reconciliation_summary(queries: Queries) -> dict[str, Any]:
    """Statements kept, how many reconciled, and what differs in the others."""
    results = reconcile_all(queries)
    return {
        "statements": len(results),
        "statements_reconciled": sum(1 for r in results if r.ok),
        "reconciliation_problems": [
            f"{r.statement.partner} {r.statement.day}" for r in results if not r.ok
        ],
    }
