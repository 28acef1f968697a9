"""Intake: payment orders from the treasury core, checked, stored, or refused with a reason."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from gateway import crashpoints
from gateway.config import Settings
from gateway.contracts import parse_order_json
from gateway.domain.orders import PaymentOrder, content_hash, order_from_payload
from gateway.domain.postings import LedgerPosting, PostingKind
from gateway.errors import InvalidMessage
from gateway.metrics import NO_METRICS, Metrics, intake_result
from gateway.service.clock import Clock, utcnow
from gateway.service.execution import ExecutionDates
from gateway.service.ports import NewOrder, Storage, UnitOfWork
from gateway.service.postings import posting_message

log = structlog.get_logger("gateway.intake")


class Message(Protocol):
    """What intake needs of a broker delivery."""

    @property
    def body(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    """What became of one message."""

    order_id: str | None
    result: str
    reason: str | None = None
    # The posting's reason code when refused: INVD (invalid) or DUPL (conflicting content).
    code: str | None = None


def group_key(partner: str, order: PaymentOrder) -> str:
    """Orders with the same key travel in one file: partner, debtor, date, batch or category."""
    batch = f"batch:{order.batch_ref}" if order.batch_ref else f"category:{order.category.value}"
    return "|".join(
        (partner, order.debtor.account.key, order.requested_execution_date.isoformat(), batch)
    )


class IntakeService:
    """Stores valid orders and quarantines invalid ones, with an `order_invalid` posting."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        clock: Clock = utcnow,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._storage = storage
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._dates = ExecutionDates.from_settings(settings)  # cut-offs and business days

    def handle(self, messages: Sequence[Message]) -> list[IntakeOutcome]:
        """Accept a chunk of messages in one transaction (the caller acks after it returns)."""
        now, started = self._clock(), time.perf_counter()
        with self._storage.unit_of_work() as uow:
            outcomes = [self._accept(uow, message.body, now) for message in messages]
            crashpoints.hit("intake.before_commit")
        results = [intake_result(o.result, o.code) for o in outcomes]
        self._metrics.intake_chunk(results, time.perf_counter() - started)
        return outcomes

    def _route(self, order: PaymentOrder) -> str:
        if order.partner:
            if order.partner not in self._settings.partners:
                raise InvalidMessage(f"partner {order.partner!r} is not configured")
            return order.partner
        partner = self._settings.partner_for_account(order.debtor.account.key)
        if partner is None:
            raise InvalidMessage(
                f"no partner holds debtor account {order.debtor.account.key}; "
                "add it to a partner profile or name the partner in the order"
            )
        return partner.name

    def _accept(self, uow: UnitOfWork, body: bytes, now: datetime) -> IntakeOutcome:
        try:
            payload = parse_order_json(body)
            order = order_from_payload(payload)
            partner = self._route(order)
            stored = payload
            if uow.orders.get(order.order_id) is None:  # a redelivery keeps the day it was given
                profile = self._settings.partners[partner]
                stored, order = self._dates.schedule(profile, payload, order, now)
        except InvalidMessage as exc:
            return self._refuse(uow, body, _claimed_order_id(body), str(exc), now)
        result = uow.orders.add(
            NewOrder(
                order_id=order.order_id,
                content_hash=content_hash(payload),
                payload=json.dumps(stored, ensure_ascii=False, sort_keys=True),
                partner=partner,
                group_key=group_key(partner, order),
                category=order.category.value,
                amount=order.money.amount,
                currency=order.money.currency,
            ),
            now,
        )
        if result == "conflict":
            return self._refuse(
                uow,
                body,
                order.order_id,
                f"order_id {order.order_id} was already received with different content",
                now,
                code="DUPL",
            )
        log.debug("order.received", order_id=order.order_id, result=result, partner=partner)
        return IntakeOutcome(order.order_id, result)

    def _refuse(
        self,
        uow: UnitOfWork,
        body: bytes,
        order_id: str | None,
        reason: str,
        now: datetime,
        code: str = "INVD",
    ) -> IntakeOutcome:
        subject = hashlib.sha256(body).hexdigest()
        if uow.orders.add_invalid(
            subject=subject, order_id=order_id, raw=body, reason=reason, now=now
        ):
            log.warning("order.invalid", order_id=order_id, reason=reason)
            posting = LedgerPosting(
                kind=PostingKind.ORDER_INVALID,
                subject=subject,
                # A refused message is not an order: the id it claims may belong to a valid one.
                order_id=None,
                end_to_end_id=None,
                refused_order_id=order_id,
                msg_id=None,
                status="invalid",
                reason_code=code,
                reason_text=reason,
                amount=None,
                currency=None,
                value_date=None,
                bank_ref=None,
                occurred_at=now,
            )
            uow.outbox.enqueue(posting_message(posting), now)
        return IntakeOutcome(order_id, "invalid", reason, code)


def _claimed_order_id(body: bytes) -> str | None:
    """The order_id a refused message claims, if it can be read at all, to name it in reports."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    order_id = data.get("order_id") if isinstance(data, dict) else None
    # Never shortened: a cut id could name another, real order. Absurd lengths are not repeated.
    return order_id if isinstance(order_id, str) and 0 < len(order_id) <= 140 else None
