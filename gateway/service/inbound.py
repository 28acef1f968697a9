"""Inbound: bank reports verified, checked, deduplicated and applied; postings for final states."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog

from gateway.adapters.db import Database, Tx
from gateway.config import PartnerProfile, Settings
from gateway.domain.postings import LedgerPosting, PostingKind
from gateway.domain.states import TxState, state_for_status
from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.camt054 import read_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification, StatusReport, TxStatus
from gateway.iso20022.namespaces import message_type
from gateway.iso20022.pain002 import read_pain002
from gateway.service.clock import Clock, stamp, utcnow
from gateway.service.postings import posting_message
from gateway.service.transitions import advance
from gateway.signing import verify

log = structlog.get_logger("gateway.inbound")

_FILE_STATE = {
    "ACTC": "acknowledged",
    "ACCP": "acknowledged",
    "ACSP": "acknowledged",
    "ACSC": "acknowledged",
    "PART": "partially_rejected",
    "RJCT": "rejected",
}


class InboundService:
    """Applies pain.002 and camt.054 files from partners; refused files are quarantined."""

    def __init__(self, db: Database, settings: Settings, clock: Clock = utcnow) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._certs: dict[str, bytes] = {}

    def _cert(self, partner: PartnerProfile) -> bytes:
        if partner.name not in self._certs:
            path = self._settings.path(partner.certificate)
            try:
                self._certs[partner.name] = path.read_bytes()
            except OSError as exc:
                raise InvalidMessage(
                    f"pinned certificate of {partner.name} unreadable: {path}: {exc.strerror}"
                ) from None
        return self._certs[partner.name]

    def handle(self, messages: Sequence[Any]) -> None:
        """Apply each file in its own transaction (the caller acks after it returns)."""
        for message in messages:
            partner_name = str(message.headers.get("partner") or message.routing_key)
            self.apply(partner_name, message.body)

    def apply(self, partner_name: str, raw: bytes) -> str:
        """Verify, check and apply one file; returns what happened (applied, duplicate, ...)."""
        with structlog.contextvars.bound_contextvars(partner=partner_name):
            return self._apply(partner_name, raw)

    def _apply(self, partner_name: str, raw: bytes) -> str:
        now = self._clock()
        try:
            partner = self._settings.partners.get(partner_name)
            if partner is None:
                raise InvalidMessage(f"file from unknown partner {partner_name!r}")
            tree = verify(raw, self._cert(partner))
            kind = message_type(tree)
            if xsd.has_schema(kind):
                xsd.validate(tree)
            else:
                # Read (pain.002.001.10) without its XSD until an operator installs it.
                log.warning("inbound.no_schema", partner=partner_name, message=kind.name_id)
            if kind.name.startswith("PAIN_002"):
                report = read_pain002(tree)
                return self._apply_report(partner, report, now)
            if kind.name.startswith("CAMT_054"):
                notification = read_camt054(tree)
                return self._apply_notification(partner, notification, now)
            raise InvalidMessage(f"{kind.value} is not a report the gateway reads")
        except InvalidMessage as exc:
            with self._db.transaction() as tx:
                qid = tx.quarantine(partner_name, raw, str(exc), stamp(now))
            log.error("inbound.quarantined", partner=partner_name, reason=str(exc), id=qid)
            return "quarantined"

    # --- pain.002 -----------------------------------------------------------------------------

    def _apply_report(self, partner: PartnerProfile, report: StatusReport, now: datetime) -> str:
        log_ = log.bind(msg_id=report.msg_id, original_msg_id=report.original_msg_id)
        with self._db.transaction() as tx:
            if not tx.first_sight(partner.name, report.msg_id, "pain.002", stamp(now)):
                log_.info("report.duplicate")
                return "duplicate"
            statuses = list(report.transactions)
            if not statuses and report.group_status:
                statuses = [
                    TxStatus(
                        original_end_to_end_id=order_id,
                        status=report.group_status,
                        reason_code=report.group_reason_code,
                        reason_text=report.group_reason_text,
                    )
                    for order_id in tx.order_ids_of_file(report.original_msg_id)
                ]
            moved = sum(self._apply_status(tx, report, status, now) for status in statuses)
            if report.group_status in _FILE_STATE:
                tx.file_status(report.original_msg_id, _FILE_STATE[report.group_status], stamp(now))
        log_.info("report.applied", partner=partner.name, lines=len(statuses), moved=moved)
        return "applied"

    def _apply_status(self, tx: Tx, report: StatusReport, status: TxStatus, now: datetime) -> int:
        if status.original_end_to_end_id is None:
            return 0
        order = tx.get_order(status.original_end_to_end_id)
        if order is None or order.msg_id != report.original_msg_id:
            log.warning(
                "report.unknown_transaction",
                end_to_end_id=status.original_end_to_end_id,
                original_msg_id=report.original_msg_id,
            )
            return 0
        target = state_for_status(status.status)
        if target is None:
            return 0
        return int(
            advance(
                tx,
                order,
                target,
                now,
                status_code=status.status,
                reason_code=status.reason_code,
                reason_text=status.reason_text,
            )
        )

    # --- camt.054 -----------------------------------------------------------------------------

    def _apply_notification(
        self, partner: PartnerProfile, notification: Notification, now: datetime
    ) -> str:
        log_ = log.bind(msg_id=notification.msg_id)
        with self._db.transaction() as tx:
            if not tx.first_sight(partner.name, notification.msg_id, "camt.054", stamp(now)):
                log_.info("notification.duplicate")
                return "duplicate"
            counts = {"settled": 0, "returned": 0, "revenue": 0, "ignored": 0}
            for entry in notification.entries:
                details = entry.details or (
                    EntryDetail(amount=entry.amount, currency=entry.currency),
                )
                for detail in details:
                    outcome = self._apply_entry(tx, partner, notification, entry, detail, now)
                    counts[outcome] += 1
        log_.info("notification.applied", partner=partner.name, **counts)
        return "applied"

    def _apply_entry(
        self,
        tx: Tx,
        partner: PartnerProfile,
        notification: Notification,
        entry: Entry,
        detail: EntryDetail,
        now: datetime,
    ) -> str:
        bank_ref = detail.account_servicer_ref or entry.account_servicer_ref
        value_date = entry.value_date.isoformat() if entry.value_date else None
        order = tx.get_order(detail.end_to_end_id) if detail.end_to_end_id else None
        if entry.credit_debit == "DBIT" and order is not None:
            moved = advance(
                tx,
                order,
                TxState.SETTLED,
                now,
                status_code=entry.status,
                bank_ref=bank_ref,
                value_date=value_date,
            )
            return "settled" if moved else "ignored"
        if entry.credit_debit == "CRDT" and order is not None and detail.return_reason:
            moved = advance(
                tx,
                order,
                TxState.RETURNED,
                now,
                reason_code=detail.return_reason,
                bank_ref=bank_ref,
                value_date=value_date,
            )
            return "returned" if moved else "ignored"
        if entry.credit_debit == "CRDT" and bank_ref:
            return self._revenue(tx, partner, notification, entry, detail, bank_ref, now)
        log.warning(
            "notification.entry_unmatched",
            bank_ref=bank_ref,
            end_to_end_id=detail.end_to_end_id,
            credit_debit=entry.credit_debit,
        )
        return "ignored"

    def _revenue(
        self,
        tx: Tx,
        partner: PartnerProfile,
        notification: Notification,
        entry: Entry,
        detail: EntryDetail,
        bank_ref: str,
        now: datetime,
    ) -> str:
        if not tx.add_revenue(
            bank_ref=bank_ref,
            partner=partner.name,
            msg_id=notification.msg_id,
            amount=format(detail.amount, "f"),
            currency=detail.currency,
            value_date=entry.value_date.isoformat() if entry.value_date else None,
            payer=detail.counterparty_name,
            now=stamp(now),
        ):
            return "ignored"
        posting = LedgerPosting(
            kind=PostingKind.REVENUE_COLLECTED,
            subject=f"{partner.name}:{bank_ref}",
            order_id=None,
            end_to_end_id=detail.end_to_end_id,
            msg_id=notification.msg_id,
            status="collected",
            reason_code=None,
            reason_text=detail.remittance,
            amount=detail.amount,
            currency=detail.currency,
            value_date=entry.value_date,
            bank_ref=bank_ref,
            occurred_at=now,
            debtor_name=detail.counterparty_name,
            budget={"structured_ref": detail.structured_ref} if detail.structured_ref else None,
        )
        tx.enqueue(posting_message(posting), stamp(now))
        return "revenue"
