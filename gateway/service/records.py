"""Rows the services read back from storage, as plain typed values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the gateway keeps it, with where it stands."""

    order_id: str
    payload: str
    partner: str
    group_key: str
    category: str
    amount: str
    currency: str
    state: str
    msg_id: str | None
    pmt_inf_id: str | None
    status_code: str | None
    reason_code: str | None
    reason_text: str | None
    bank_ref: str | None
    value_date: str | None
    received_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to publish, written in the same transaction as the change that caused it."""

    message_id: str
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An outbox message not yet confirmed by the broker."""

    row_id: int
    message: OutboxMessage


@dataclass(frozen=True, slots=True)
class ReadyGroup:
    """Orders waiting to be batched under one group key."""

    group_key: str
    count: int
