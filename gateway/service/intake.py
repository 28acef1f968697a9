"""Intake: payment orders from the treasury core, checked, stored, or refused with a reason."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from gateway import crashpoints
from gateway.config import Settings
from gateway.contracts import parse_order_json
from gateway.domain.orders import (
    PaymentOrder,
    canonical_json,
    content_hash,
    order_from_payload,
)
from gateway.domain.postings import LedgerPosting, PostingKind
from gateway.errors import InvalidMessage
from gateway.metrics import NO_METRICS, Metrics, intake_result
from gateway.service.clock import Clock, utcnow
from gateway.service.decoded import DecodedOrders
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


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A message as decoded and checked outside the transaction."""

    body: bytes
    payload: dict[str, Any] | None = None
    order: PaymentOrder | None = None
    partner: str | None = None
    error: str | None = None
    content_hash: str = ""
    # The payload's canonical JSON: what is stored, unless scheduling moved the order's date.
    canonical: str = ""


# New orders stored by a unit: (order id, the payload text stored, the order it decodes to).
_Kept = list[tuple[str, str, PaymentOrder]]

# The last part of an urgent order's group key: its group is its own, cut at once.
URGENT_GROUP = "urgent:"


def group_key(partner: str, order: PaymentOrder) -> str:
    """Orders with the same key travel in one file: partner, debtor, date, batch or category.
    An urgent order has a key of its own: it leaves alone, whatever its batch."""
    if order.urgent:
        batch = f"{URGENT_GROUP}{order.order_id}"
    elif order.batch_ref:
        batch = f"batch:{order.batch_ref}"
    else:
        batch = f"category:{order.category.value}"
    return "|".join(
        (partner, order.debtor.account.key, order.requested_execution_date.isoformat(), batch)
    )


def is_urgent_group(key: str) -> bool:
    """Whether a group key is an urgent order's own."""
    return key.rsplit("|", 1)[-1].startswith(URGENT_GROUP)


class IntakeService:
    """Stores valid orders and quarantines invalid ones, with an `order_invalid` posting."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        clock: Clock = utcnow,
        metrics: Metrics = NO_METRICS,
        on_urgent: Callable[[Sequence[tuple[str, str]]], None] | None = None,
        decoded: DecodedOrders | None = None,
    ) -> None:
        self._storage = storage
        # Where the orders it stores are left, decoded, for the batcher of this process.
        self._decoded = decoded if decoded is not None else DecodedOrders(capacity=0)
        # Told the (partner, group key) of new urgent orders once they are committed (the
        # urgent lane cuts them at once); without it, the batcher's ticks cut them.
        self._on_urgent = on_urgent
        self._metrics = metrics
        self._settings = settings
        # Chunks in hand, and when the last one was done (monotonic): the main role applies
        # the banks' files while it has had none for a while (`idle_for`).
        self._in_hand = 0
        self._last_done = time.monotonic()
        self._busy = threading.Lock()
        self._clock = clock
        self._dates = ExecutionDates.from_settings(settings)  # cut-offs and business days

    def handle(self, messages: Sequence[Message]) -> list[IntakeOutcome]:
        """Accept a chunk of messages in one transaction (the caller acks after it returns).

        Each message is decoded and checked before the transaction; inside it, the chunk's ids
        are looked up in one query and its new orders stored in one statement batch."""
        with self._busy:
            self._in_hand += 1
        try:
            return self._handle(messages)
        finally:
            with self._busy:
                self._in_hand -= 1
                self._last_done = time.monotonic()

    def idle_for(self, seconds: float) -> bool:
        """Whether no chunk is in hand and none was done in the last `seconds`."""
        with self._busy:
            return not self._in_hand and time.monotonic() - self._last_done >= seconds

    def _handle(self, messages: Sequence[Message]) -> list[IntakeOutcome]:
        now, started = self._clock(), time.perf_counter()
        parsed = [self._parse(message.body) for message in messages]

        def store(uow: UnitOfWork) -> tuple[list[IntakeOutcome], list[tuple[str, str]], _Kept]:
            urgent: list[tuple[str, str]] = []  # a step run again starts afresh
            kept: _Kept = []
            outcomes = self._store(uow, parsed, now, urgent, kept)
            crashpoints.hit("intake.before_commit")
            return outcomes, urgent, kept

        # Prepared before SQLite's write lock where it can be (`Storage.run_unit`): the lock is
        # held for the chunk's inserts alone.
        outcomes, urgent, kept = self._storage.run_unit(store)
        self._decoded.keep(kept)  # committed: the batcher may build from them
        if urgent and self._on_urgent is not None:
            self._on_urgent(urgent)
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

    def _parse(self, body: bytes) -> _Parsed:
        """A message decoded, checked against the contract and routed, or why it is refused."""
        try:
            payload = parse_order_json(body)
            order = order_from_payload(payload)
            partner = self._route(order)
        except InvalidMessage as exc:
            return _Parsed(body, error=str(exc))
        canonical = canonical_json(payload)
        return _Parsed(
            body,
            payload,
            order,
            partner,
            content_hash=content_hash(payload, canonical),
            canonical=canonical,
        )

    def _store(
        self,
        uow: UnitOfWork,
        chunk: list[_Parsed],
        now: datetime,
        urgent: list[tuple[str, str]],
        kept: _Kept,
    ) -> list[IntakeOutcome]:
        ids = [p.order.order_id for p in chunk if p.order is not None]
        known = uow.orders.content_hashes(ids) if ids else {}
        outcomes: list[IntakeOutcome | None] = [None] * len(chunk)
        fresh: list[tuple[int, NewOrder]] = []
        for index, item in enumerate(chunk):
            if item.order is None or item.payload is None or item.partner is None:
                reason = item.error or "refused"
                outcomes[index] = self._refuse(
                    uow, item.body, _claimed_order_id(item.body), reason, now
                )
                continue
            order_id = item.order.order_id
            seen = known.get(order_id)
            if seen is not None:
                outcomes[index] = (
                    IntakeOutcome(order_id, "duplicate")
                    if seen == item.content_hash
                    else self._conflict(uow, item.body, order_id, now)
                )
                continue
            try:  # a redelivery keeps the day it was given: only a new order is scheduled
                profile = self._settings.partners[item.partner]
                stored, order = self._dates.schedule(profile, item.payload, item.order, now)
            except InvalidMessage as exc:
                outcomes[index] = self._refuse(uow, item.body, order_id, str(exc), now)
                continue
            known[order_id] = item.content_hash  # a second copy in this chunk is a duplicate
            fresh.append(
                (
                    index,
                    NewOrder(
                        order_id=order_id,
                        content_hash=item.content_hash,
                        payload=item.canonical
                        if stored is item.payload
                        else json.dumps(stored, ensure_ascii=False, sort_keys=True),
                        partner=item.partner,
                        group_key=group_key(item.partner, order),
                        category=order.category.value,
                        amount=order.money.amount,
                        currency=order.money.currency,
                    ),
                )
            )
        results = uow.orders.add_many([new for _, new in fresh], now)
        # Bound once for the chunk: the module's logger binds itself again at every call.
        received = log.bind()
        for (index, new), result in zip(fresh, results, strict=True):
            if result == "conflict":
                outcomes[index] = self._conflict(uow, chunk[index].body, new.order_id, now)
                continue
            received.debug(
                "order.received", order_id=new.order_id, result=result, partner=new.partner
            )
            if result == "new":
                if is_urgent_group(new.group_key):
                    urgent.append((new.partner, new.group_key))
                decoded = chunk[index].order
                if decoded is not None and new.payload is chunk[index].canonical:
                    kept.append((new.order_id, new.payload, decoded))  # as stored, not moved
            outcomes[index] = IntakeOutcome(new.order_id, result)
        return [outcome for outcome in outcomes if outcome is not None]

    def _conflict(
        self, uow: UnitOfWork, body: bytes, order_id: str, now: datetime
    ) -> IntakeOutcome:
        return self._refuse(
            uow,
            body,
            order_id,
            f"order_id {order_id} was already received with different content",
            now,
            code="DUPL",
        )

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
