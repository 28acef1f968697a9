"""camt.054 notifications: debits settle our payments, returns undo them (by the one rule of
gateway.service.returns), other credits are revenue; an entry that fits none of these is kept as
unmatched with the reason."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

import structlog

from gateway.config import PartnerProfile
from gateway.domain.money import Money
from gateway.domain.orders import parse_budget_line
from gateway.domain.postings import LedgerPosting, PostingKind
from gateway.domain.states import TxState
from gateway.errors import InvalidMessage
from gateway.iso20022.consistency import entry_problem
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.reasons import bounded
from gateway.service.ports import BankAnswer, Revenue, StoredOrder, UnitOfWork
from gateway.service.postings import posting_message
from gateway.service.returns import ReturnLine, fallback_ref, return_payment
from gateway.service.transitions import advance
from gateway.service.unmatched import Unmatched, keep_unmatched

log = structlog.get_logger("gateway.inbound")

# States in which a payment may be reported settled: it has left (or is leaving) the gateway.
_SETTLEABLE = {TxState.BATCHED, TxState.SENT, TxState.ACKNOWLEDGED}


def _number(account: str) -> str:
    return account.rsplit(":", maxsplit=1)[-1]


# Transaction details applied per transaction at most (a whole entry stays in one): a
# 100,000-transaction camt.054 does not hold SQLite's write lock, or PostgreSQL's row locks, for
# the seconds the whole file takes, so the urgent lane and intake get in between.
APPLY_CHUNK = 500

# What a step of a file applied in several transactions returns when the next step is to run.
MORE = "more"

# A step runs in a unit of work of its own, perhaps twice (`Storage.run_unit`): it keeps
# nothing across runs but what it returns.
Step = Callable[[UnitOfWork], str]


def apply_notification(
    uow: UnitOfWork, partner: PartnerProfile, notification: Notification, raw: bytes, now: datetime
) -> str:
    """Apply a verified camt.054 in the caller's transaction: applied or duplicate."""
    _check_account(partner, notification)
    log_ = log.bind(msg_id=notification.msg_id)
    if not uow.inbound.first_sight(partner.name, notification.msg_id, "camt.054", raw, now):
        log_.info("notification.duplicate")
        return "duplicate"
    counts = apply_entries(uow, partner, notification, now)
    log_.info("notification.applied", **counts)
    return "applied"


def notification_steps(
    partner: PartnerProfile,
    notification: Notification,
    raw: bytes,
    now: datetime,
    chunk: int = APPLY_CHUNK,
) -> list[Step]:
    """A verified camt.054 applied in several transactions of at most `chunk` details each;
    the caller runs each step in a unit of work of its own while it returns MORE (the last
    returns applied, any of them duplicate).

    The file is kept (`first_sight`) by the last step only, so a gateway that stops part-way
    applies the file again when the bank's message is redelivered: the entries applied already
    are passed over by their bank reference (or, without one, by the order's state), as when a
    bank resends an entry in another file. A file kept already is a duplicate at the first step.
    """
    _check_account(partner, notification)
    parts = _parts(notification.entries, chunk)
    if len(parts) <= 1:
        return [lambda uow: apply_notification(uow, partner, notification, raw, now)]
    log_ = log.bind(msg_id=notification.msg_id)
    digest = hashlib.sha256(raw).hexdigest()
    # What each step applied, by its first detail's position (a step run again replaces it).
    applied: dict[int, dict[str, int]] = {}

    def step(start: int, entries: tuple[Entry, ...], last: bool) -> Step:
        def apply(uow: UnitOfWork) -> str:
            if last:
                new = uow.inbound.first_sight(
                    partner.name, notification.msg_id, "camt.054", raw, now
                )
            else:
                new = not uow.inbound.known_file(partner.name, notification.msg_id, digest)
            if not new:
                log_.info("notification.duplicate")
                return "duplicate"
            part = replace(notification, entries=entries)
            applied[start] = apply_entries(uow, partner, part, now, start=start)
            if not last:
                return MORE
            counts: dict[str, int] = {}
            for part_counts in applied.values():
                for key, value in part_counts.items():
                    counts[key] = counts.get(key, 0) + value
            log_.info("notification.applied", transactions=len(parts), **counts)
            return "applied"

        return apply

    return [
        step(start, entries, index == len(parts) - 1)
        for index, (start, entries) in enumerate(parts)
    ]


def _parts(entries: Sequence[Entry], chunk: int) -> list[tuple[int, tuple[Entry, ...]]]:
    """The entries in runs of at most `chunk` details (an entry is never split), each with the
    position its first detail has when the file is applied in one go (`apply_entries` counts
    the details it applies, not those of an entry kept as unmatched for its inconsistency)."""
    parts: list[tuple[int, tuple[Entry, ...]]] = []
    run: list[Entry] = []
    start = size = position = 0
    for entry in entries:
        weight = len(entry.details) or 1
        if run and size + weight > chunk:
            parts.append((start, tuple(run)))
            run, start, size = [], position, 0
        run.append(entry)
        size += weight
        position += 0 if entry_problem(entry) else weight
    if run:
        parts.append((start, tuple(run)))
    return parts


def _check_account(partner: PartnerProfile, notification: Notification) -> None:
    """Refuse a notification for an account the partner's profile does not hold."""
    ours = {_number(a) for a in partner.accounts}
    if _number(notification.account) not in ours:
        raise InvalidMessage(
            f"camt.054 {notification.msg_id} is for account {notification.account},"
            f" not one of {partner.name}'s accounts in its profile"
        )


def apply_entries(
    uow: UnitOfWork,
    partner: PartnerProfile,
    notification: Notification,
    now: datetime,
    *,
    booked_only: bool = False,
    start: int = 0,
) -> dict[str, int]:
    """Apply each entry's details once (by bank reference), in the caller's transaction; what
    happened to them, counted.

    With `booked_only` (an intraday report, whose pending entries are booked later) an entry not
    yet booked is passed over (`not_booked`); otherwise it is kept as unmatched.
    """
    log_ = log.bind(msg_id=notification.msg_id)
    counts = {"settled": 0, "returned": 0, "revenue": 0, "repeated": 0, "unmatched": 0}
    if booked_only:
        counts["not_booked"] = 0
    # The orders the entries name, and the entries applied before, read in one query each
    # rather than one per entry.
    uow.orders.prefetch([d.end_to_end_id or "" for e in notification.entries for d in e.details])
    applied = uow.inbound.applied_entries(partner.name, _bank_refs(notification.entries))
    # Of each detail in the file (from `start`), for a return the bank gave no reference.
    position = start
    for entry in notification.entries:
        if booked_only and entry.status != "BOOK":
            counts["not_booked"] += len(entry.details) or 1
            log_.info(
                "report.entry_not_booked", reference=entry.account_servicer_ref, status=entry.status
            )
            continue
        problem = entry_problem(entry)
        if problem:
            # The details are not what the bank booked: nothing of this entry is applied.
            reference = entry.account_servicer_ref or entry.entry_ref
            kept = {"entry": _plain(entry)}
            keep_unmatched(uow, partner.name, notification.msg_id, reference, problem, kept, now)
            log_.warning("notification.entry_unmatched", reason=bounded(problem))
            counts["unmatched"] += 1
            continue
        details = entry.details or (EntryDetail(amount=entry.amount, currency=entry.currency),)
        for index, given in enumerate(details, start=1):
            position += 1
            detail = given
            if not given.account_servicer_ref and entry.account_servicer_ref:
                # A detail without its own reference is told apart from its siblings.
                suffix = f"#{index}" if len(details) > 1 else ""
                detail = replace(given, account_servicer_ref=entry.account_servicer_ref + suffix)
            bank_ref = detail.account_servicer_ref or entry.account_servicer_ref
            if bank_ref and bank_ref in applied:
                # Resent by the bank, in this file or another: applied once already.
                counts["repeated"] += 1
                continue
            try:
                outcome = _apply_entry(uow, partner, notification, entry, detail, position, now)
                if bank_ref and outcome != "repeated":
                    uow.inbound.add_entry(partner.name, bank_ref, notification.msg_id, outcome, now)
                    applied.add(bank_ref)  # the same reference again in this file repeats it
            except Unmatched as exc:
                outcome = "unmatched"
                kept = {"entry": _plain(entry), "detail": _plain(detail)}
                reference = detail.end_to_end_id or bank_ref
                msg_id = notification.msg_id
                keep_unmatched(uow, partner.name, msg_id, reference, exc.reason, kept, now)
                log_.warning("notification.entry_unmatched", reference=bank_ref, reason=exc.reason)
            counts[outcome] += 1
    return counts


def _bank_refs(entries: Sequence[Entry]) -> list[str]:
    """Every bank reference the entries' details may be applied under (see `apply_entries`)."""
    refs: list[str] = []
    for entry in entries:
        refs.extend(d.account_servicer_ref for d in entry.details if d.account_servicer_ref)
        if entry.account_servicer_ref:
            count = len(entry.details)
            refs.append(entry.account_servicer_ref)
            refs.extend(f"{entry.account_servicer_ref}#{n}" for n in range(1, count + 1))
    return refs


def _plain(value: Any) -> dict[str, Any]:
    data = asdict(value)
    data.pop("details", None)
    return data


def _apply_entry(
    uow: UnitOfWork,
    partner: PartnerProfile,
    notification: Notification,
    entry: Entry,
    detail: EntryDetail,
    position: int,
    now: datetime,
) -> str:
    if entry.status != "BOOK":
        raise Unmatched(f"entry status {entry.status} is not booked")
    bank_ref = detail.account_servicer_ref or entry.account_servicer_ref
    order = uow.orders.get(detail.end_to_end_id) if detail.end_to_end_id else None
    if order is not None and order.partner != partner.name:
        raise Unmatched(f"order {order.order_id} was sent to {order.partner}, not {partner.name}")
    if entry.credit_debit == "DBIT":
        return _settle(uow, order, entry, detail, bank_ref, now)
    if detail.return_reason or detail.return_reason_text:
        line = ReturnLine(
            msg_id=notification.msg_id,
            bank_ref=bank_ref or fallback_ref(notification.msg_id, position),
            end_to_end_id=detail.end_to_end_id,
            amount=detail.amount,
            currency=detail.currency,
            value_date=entry.value_date,
            reason_code=detail.return_reason,
            reason_text=detail.return_reason_text,
        )
        return return_payment(uow, partner, line, now)
    return _revenue(uow, partner, notification, entry, detail, bank_ref, now)


def _same_money(order: StoredOrder, detail: EntryDetail) -> None:
    if detail.currency != order.currency or detail.amount != order.amount:
        raise Unmatched(
            f"amount {detail.amount} {detail.currency} differs from order {order.order_id}'s"
            f" {order.amount} {order.currency}"
        )


def _settle(
    uow: UnitOfWork,
    order: StoredOrder | None,
    entry: Entry,
    detail: EntryDetail,
    bank_ref: str | None,
    now: datetime,
) -> str:
    if order is None:
        if not detail.end_to_end_id:
            raise Unmatched("debit naming no payment (no EndToEndId)")
        raise Unmatched(f"debit for an unknown payment {detail.end_to_end_id}")
    if order.state is TxState.SETTLED and order.bank_ref == bank_ref:
        return "repeated"
    if order.state is TxState.SETTLED:
        raise Unmatched(
            f"second debit {bank_ref} for order {order.order_id}, settled by {order.bank_ref}"
        )
    if order.state not in _SETTLEABLE:
        raise Unmatched(f"debit for order {order.order_id}, which is {order.state}")
    _book(uow, order, entry, detail, bank_ref, now)
    return "settled"


def _book(
    uow: UnitOfWork,
    order: StoredOrder,
    entry: Entry,
    detail: EntryDetail,
    bank_ref: str | None,
    now: datetime,
) -> None:
    """Settle the order as the booked debit says, once its amount is the order's."""
    _same_money(order, detail)
    advance(
        uow,
        order,
        TxState.SETTLED,
        now,
        BankAnswer(status_code=entry.status, bank_ref=bank_ref, value_date=entry.value_date),
    )


def _revenue(
    uow: UnitOfWork,
    partner: PartnerProfile,
    notification: Notification,
    entry: Entry,
    detail: EntryDetail,
    bank_ref: str | None,
    now: datetime,
) -> str:
    if not bank_ref:
        raise Unmatched("credit without an account-servicer reference")
    try:
        money = Money.parse(format(detail.amount, "f"), detail.currency)
    except InvalidMessage as exc:
        raise Unmatched(f"credit {bank_ref}: {exc}") from None
    if not uow.evidence.add_revenue(
        Revenue(
            partner=partner.name,
            bank_ref=bank_ref,
            msg_id=notification.msg_id,
            amount=money.amount,
            currency=money.currency,
            value_date=entry.value_date,
            payer=detail.counterparty_name,
        ),
        now,
    ):
        return "repeated"
    posting = LedgerPosting(
        kind=PostingKind.REVENUE_COLLECTED,
        subject=f"{partner.name}:{bank_ref}",
        order_id=None,
        end_to_end_id=detail.end_to_end_id,
        msg_id=notification.msg_id,
        status=entry.status,
        reason_code=None,
        reason_text=None,
        remittance=detail.remittance,
        amount=money.amount,
        currency=money.currency,
        value_date=entry.value_date,
        bank_ref=bank_ref,
        occurred_at=now,
        debtor_name=detail.counterparty_name,
        budget=_budget(detail.structured_ref),
    )
    uow.outbox.enqueue(posting_message(posting), now)
    return "revenue"


def _budget(reference: str | None) -> dict[str, Any] | None:
    """Budget codes of a revenue credit, from its structured reference (see `budget_line`)."""
    budget = parse_budget_line(reference)
    if budget is None:
        return None
    return {key: value for key, value in asdict(budget).items() if value}
