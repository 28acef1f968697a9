"""What the operations console shows, read through the query port: the overview per partner, an
order's timeline, a file with its transactions and reports, and the admin work waiting.

The console's actions (replay, drop, reprocess) go through the `AdminActions` port, so that the
web adapter knows nothing of brokers or folders; every action is appended to the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from gateway.config import Settings
from gateway.domain.postings import PostingKind, posting_id
from gateway.domain.states import FileState, TxState
from gateway.service.ports import FileRecord, InboundFileRecord, Queries, StoredOrder

OUTBOX = "outbox"


# --- the actions port ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParkedItem:
    """A message parked for an admin: in the outbox, or in a broker queue's parking queue."""

    queue: str
    message_id: str
    reason: str
    parked_at: str
    destination: str
    preview: str


class AdminActions(Protocol):
    """What an operator may do from the console; each action is appended to the audit trail."""

    def parked(self) -> tuple[list[ParkedItem], list[str]]:
        """The parked messages, and the queues that could not be read (with why)."""

    def replay(self, queue: str, message_id: str, *, actor: str) -> None:
        """Put one parked message back in line; GatewayError when it is not parked."""

    def drop(self, queue: str, message_id: str, reason: str, *, actor: str) -> None:
        """Take one parked message out for good, kept with the reason; GatewayError when it is
        not parked."""

    def quarantined_bytes(self, quarantine_id: int) -> bytes | None:
        """The exact bytes of a quarantined bank file (from the quarantine folder, or from its
        row for a file refused before schema 7); None when there is no such file or its bytes
        are gone."""

    def reprocess(self, quarantine_id: int, *, actor: str) -> None:
        """Take a quarantined bank file in again (after its cause is mended: a certificate
        pinned, a profile fixed); GatewayError when there is no such file."""


# --- the overview ----------------------------------------------------------------------------


@dataclass(slots=True)
class PartnerRow:
    """One partner's line of the overview."""

    partner: str
    orders: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    overdue: list[str] = field(default_factory=list)
    parked: int = 0
    quarantined: int = 0
    unmatched: int = 0


@dataclass(frozen=True, slots=True)
class Overview:
    """The console's first page."""

    orders: dict[str, int]
    files: dict[str, int]
    invalid: int
    outbox_pending: int
    outbox_lag_seconds: float
    outbox_parked: int
    quarantined: int
    partners: list[PartnerRow]
    amounts: dict[str, Decimal]


def overview(queries: Queries, settings: Settings, now: datetime) -> Overview:
    """Orders and files by state, per partner, and what waits for an admin."""
    names = sorted(set(settings.partners) | set(queries.orders_by_partner()))
    rows = {name: PartnerRow(name) for name in names}
    for (partner, state), n in queries.orders_by_partner_state().items():
        rows.setdefault(partner, PartnerRow(partner)).orders[state] = n
    for (partner, state), n in queries.files_by_partner_state().items():
        rows.setdefault(partner, PartnerRow(partner)).files[state] = n
    for profile in settings.partners.values():
        limit = now - timedelta(minutes=profile.status_deadline_minutes)
        rows[profile.name].overdue = queries.overdue_files(profile.name, limit)
    parked = queries.outbox_parked()
    for item in parked:
        if item.routing_key in rows:
            rows[item.routing_key].parked += 1
    for partner, _, n in queries.quarantine_reasons():
        rows.setdefault(partner, PartnerRow(partner)).quarantined += n
    for partner, n in queries.unmatched_by_partner().items():
        rows.setdefault(partner, PartnerRow(partner)).unmatched += n
    pending, oldest = queries.outbox_pending()
    amounts: dict[str, Decimal] = {}
    for state in (TxState.SETTLED, TxState.REJECTED, TxState.RETURNED):
        total = sum((o.amount for o in queries.orders_in_state(state)), Decimal(0))
        amounts[state.value] = total
    return Overview(
        orders=dict(sorted(queries.orders_by_state().items())),
        files=dict(sorted(queries.files_by_state().items())),
        invalid=queries.invalid_count(),
        outbox_pending=pending,
        outbox_lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        outbox_parked=len(parked),
        quarantined=queries.quarantined_count(),
        partners=[rows[name] for name in sorted(rows)],
        amounts=amounts,
    )


# --- orders ----------------------------------------------------------------------------------


def party(payload: dict[str, Any], side: str) -> tuple[str, str]:
    """(name, account) of the order's debtor or creditor."""
    who = payload.get(side) or {}
    account = who.get("account") or {}
    number = account.get("iban") or account.get("number") or ""
    return str(who.get("name", "")), str(number)


def search(queries: Queries, text: str, limit: int = 50) -> list[StoredOrder]:
    """Orders by order id (= EndToEndId), MsgId, or creditor account; a name finds them too."""
    text = text.strip()
    if not text:
        return []
    found = queries.search_orders(text, limit * 4)
    exact = [
        o
        for o in found
        if text in (o.order_id, o.msg_id) or party(json.loads(o.payload), "creditor")[1] == text
    ]
    named = [o for o in found if o not in exact and text.lower() in o.payload.lower()]
    return (exact + named)[:limit]


@dataclass(frozen=True, slots=True)
class Event:
    """One step of an order's timeline."""

    at: datetime | None
    what: str
    detail: str
    link: str | None = None


def timeline(queries: Queries, order: StoredOrder) -> list[Event]:
    """What happened to one order, in order: received, batched into a file (MsgId), sent, the
    bank's statuses with reason code and text, settlement, return, and each ledger posting."""
    events = [Event(order.received_at, "received", f"order {order.order_id} taken in")]
    file = queries.file(order.msg_id) if order.msg_id else None
    if file is not None:
        events.append(
            Event(
                file.created_at,
                "batched",
                f"in file {file.msg_id} (PmtInf {order.pmt_inf_id or '-'})",
                f"/files/{file.msg_id}",
            )
        )
        if file.sent_at is not None:
            events.append(
                Event(file.sent_at, "sent", f"file {file.msg_id} delivered to {file.partner}")
            )
        if file.status_at is not None:
            events.append(Event(file.status_at, "file status", f"file {file.state.value}"))
    if order.status_code or order.reason_code:
        reason = " ".join(p for p in (order.reason_code, order.reason_text) if p)
        events.append(
            Event(
                order.updated_at if order.state is not TxState.SETTLED else None,
                "bank status",
                f"{order.status_code or '-'}" + (f": {reason}" if reason else ""),
            )
        )
    if order.state in (TxState.SETTLED, TxState.RETURNED) and order.value_date:
        events.append(
            Event(
                None,
                "settled",
                f"value date {order.value_date.isoformat()}, bank ref {order.bank_ref or '-'}",
            )
        )
    for returned in queries.returns_of(order.order_id):
        reason = " ".join(p for p in (returned.reason_code, returned.reason_text) if p)
        events.append(
            Event(
                None,
                "returned",
                f"{returned.amount} {returned.currency} back, ref {returned.bank_ref},"
                f" value date {returned.value_date or '-'}" + (f": {reason}" if reason else ""),
            )
        )
    ids = [posting_id(kind, order.order_id) for kind in PostingKind]
    for posted in queries.outbox_messages(ids):
        body = json.loads(posted.body)
        sent = "sent" if posted.sent_at else "not yet sent"
        events.append(
            Event(
                posted.created_at,
                "posting",
                f"{body.get('kind')} {body.get('status', '')} → treasury.ledger ({sent})",
            )
        )
    return events


# --- files -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileDetail:
    """One outbound file, its transactions, and the bank files that speak of it."""

    file: FileRecord
    orders: list[StoredOrder]
    reports: list[InboundFileRecord]
    has_bytes: bool


def file_detail(queries: Queries, msg_id: str) -> FileDetail | None:
    """An outbound file with its orders and the reports naming its MsgId, or None."""
    file = queries.file(msg_id)
    if file is None:
        return None
    orders = [o for o in queries.search_orders(msg_id, 100_000) if o.msg_id == msg_id]
    needle = msg_id.encode()
    reports = [r for r in queries.inbound_files(file.partner, file.created_at) if needle in r.raw]
    return FileDetail(file, orders, reports, bool(queries.outbox_messages([msg_id])))


def sent_bytes(queries: Queries, msg_id: str) -> bytes | None:
    """The exact bytes of an outbound file as handed to its partner's channel."""
    found = queries.outbox_messages([msg_id])
    return found[0].body if found else None


def file_states() -> Sequence[str]:
    """The states a file may be listed by."""
    return [s.value for s in FileState]


def day_or_none(text: str | None) -> date | None:
    """A date from a query string, or None when absent or not a date."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None
