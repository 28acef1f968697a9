"""Ledger postings (contract ledger-posting/1): what the treasury ledger hears of each outcome."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

POSTING_SCHEMA = "ledger-posting/1"


class PostingKind(StrEnum):
    """Why a posting is made; the routing key is `posting.<kind>`."""

    PAYMENT_SETTLED = "payment_settled"
    PAYMENT_REJECTED = "payment_rejected"
    PAYMENT_RETURNED = "payment_returned"
    REVENUE_COLLECTED = "revenue_collected"
    ORDER_INVALID = "order_invalid"


def posting_id(kind: PostingKind, subject: str) -> str:
    """Deterministic id from the kind and the order id or bank entry reference."""
    digest = hashlib.sha256(f"{kind.value}|{subject}".encode()).hexdigest()
    return f"P-{digest[:32]}"


@dataclass(frozen=True, slots=True)
class LedgerPosting:
    """One posting, immutable once made."""

    kind: PostingKind
    subject: str
    order_id: str | None
    end_to_end_id: str | None
    msg_id: str | None
    status: str
    reason_code: str | None
    reason_text: str | None
    amount: Decimal | None
    currency: str | None
    value_date: date | None
    bank_ref: str | None
    occurred_at: datetime
    budget: dict[str, Any] | None = None
    debtor_name: str | None = None
    refused_order_id: str | None = None
    remittance: str | None = None

    @property
    def posting_id(self) -> str:
        """The id the ledger deduplicates on."""
        return posting_id(self.kind, self.subject)

    @property
    def routing_key(self) -> str:
        """Where on `treasury.ledger` this posting is published."""
        return f"posting.{self.kind.value}"

    def to_json(self) -> dict[str, Any]:
        """The wire form: amounts as decimal strings, dates ISO 8601 with time zone."""
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        body: dict[str, Any] = {
            "schema": POSTING_SCHEMA,
            "posting_id": self.posting_id,
            "kind": self.kind.value,
            "order_id": self.order_id,
            "end_to_end_id": self.end_to_end_id,
            "msg_id": self.msg_id,
            "status": self.status,
            "reason": (
                {"code": self.reason_code, "text": self.reason_text}
                if self.reason_code or self.reason_text
                else None
            ),
            "amount": format(self.amount, "f") if self.amount is not None else None,
            "currency": self.currency,
            "value_date": self.value_date.isoformat() if self.value_date else None,
            "bank_ref": self.bank_ref,
            "occurred_at": self.occurred_at.isoformat(),
        }
        if self.budget:
            body["budget"] = self.budget
        if self.debtor_name:
            body["debtor_name"] = self.debtor_name
        if self.refused_order_id:
            body["refused_order_id"] = self.refused_order_id
        if self.remittance:
            body["remittance"] = self.remittance
        return body
