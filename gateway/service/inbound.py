"""Inbound: bank files verified, checked, kept, and handed to the report or notification rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from gateway import crashpoints
from gateway.config import PartnerProfile, Settings
from gateway.errors import ConfigError, InvalidMessage, TransientError
from gateway.iso20022.model import IntradayReport, Notification, PaymentReturn, StatusReport
from gateway.iso20022.xml import shown
from gateway.reasons import bounded, fault, reason_class
from gateway.service.clock import Clock, utcnow
from gateway.service.intraday import apply_intraday
from gateway.service.notifications import MORE, notification_steps
from gateway.service.ports import QuarantineFiles, Storage, UnitOfWork
from gateway.service.reports import report_steps
from gateway.service.returns import apply_return
from gateway.service.statements import apply_statement
from gateway.signing import (
    SIGNATURE_HEADER,
    TrustedCertificate,
    load_pinned,
)
from gateway.signing.receipt import Report, receive

log = structlog.get_logger("gateway.inbound")


class InboundService:
    """Applies pain.002, camt.054, pacs.004 and camt.053 files from partners; refused files are
    quarantined."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        clock: Clock = utcnow,
        *,
        quarantine: QuarantineFiles,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock
        # Where refused files' bytes are kept (their rows go to the storage).
        self._quarantine = quarantine
        self._pinned: dict[str, tuple[TrustedCertificate, ...]] = {}

    def _trusted(self, partner: PartnerProfile) -> tuple[TrustedCertificate, ...]:
        """The partner's pinned certificates, read once (a file that cannot be read is said)."""
        if partner.name not in self._pinned:
            pins = partner.signature.certificates
            try:
                self._pinned[partner.name] = load_pinned(pins, self._settings.path, partner.name)
            except ConfigError as exc:
                raise InvalidMessage(str(exc)) from None
        return self._pinned[partner.name]

    def handle(self, messages: Sequence[Any]) -> None:
        """Apply each file in its own transaction (the caller acks after it returns)."""
        for message in messages:
            partner_name = str(message.headers.get("partner") or message.routing_key)
            signature = message.headers.get(SIGNATURE_HEADER)
            detached = signature if isinstance(signature, bytes) else None
            if isinstance(signature, str):
                detached = signature.encode()
            self.apply(partner_name, message.body, detached)

    def apply(self, partner_name: str, raw: bytes, signature: bytes | None = None) -> str:
        """Verify, check and apply one file (with its detached signature, if any)."""
        with structlog.contextvars.bound_contextvars(partner=partner_name):
            return self._apply(partner_name, raw, signature)

    def _apply(self, partner_name: str, raw: bytes, signature: bytes | None) -> str:
        now = self._clock()
        try:
            partner = self._settings.partners.get(partner_name)
            if partner is None:
                raise InvalidMessage(f"file from unknown partner {shown(partner_name)}")
            try:
                received = receive(raw, partner, self._trusted(partner), now, signature)
            except (InvalidMessage, TransientError):
                raise
            except Exception as exc:  # no inbound data may end in a traceback
                raise InvalidMessage(f"fault while reading the file: {fault(exc)}") from None
            if not received.schema_checked:
                # schemas/SOURCES.md: pacs.004.001.02 and .11 ship no XSD; the signature has
                # been verified, and the reader checks the XSD's rules for every value it uses.
                log.warning("inbound.no_schema", message=received.kind.name_id)
            result = MORE
            try:
                for step in _application(partner, received.content, raw, now):
                    result = self._storage.run_unit(partial(_before_commit, step))
                    if result != MORE:
                        break
                return result
            except _DATA_FAULTS as exc:
                # A fault of the data (an arithmetic or lookup error on what the file says),
                # not of the storage: the storage's own faults propagate and are retried.
                raise InvalidMessage(f"fault while applying the file: {fault(exc)}") from None
        except InvalidMessage as exc:
            reason = bounded(str(exc))
            # Classed on the whole reason: the bounded one may have lost its telling words.
            kind = reason_class(str(exc))
            # The bytes first, then the row: a row never lacks its file.
            sha256 = self._quarantine.keep(raw)
            with self._storage.unit_of_work() as uow:
                first = uow.inbound.quarantine(partner_name, sha256, len(raw), reason, now, kind)
            log.error("inbound.quarantined", reason=reason, again=not first)
            return "quarantined"


def _before_commit(step: Callable[[UnitOfWork], str], uow: UnitOfWork) -> str:
    result = step(uow)
    crashpoints.hit("inbound.before_commit")
    return result


# Exceptions that applying a verified file can meet because of what the file says.
_DATA_FAULTS = (ArithmeticError, LookupError, ValueError, TypeError, AttributeError, RecursionError)


def _application(
    partner: PartnerProfile, content: Report, raw: bytes, now: datetime
) -> Iterable[Callable[[UnitOfWork], str]]:
    """The steps that apply a file read outside any transaction, by the rules of its kind, each
    inside a transaction of its own (one step, except a large camt.054: see
    `notification_steps` and `report_steps`)."""
    if isinstance(content, StatusReport):
        return report_steps(partner, content, raw, now)
    if isinstance(content, Notification):
        return notification_steps(partner, content, raw, now)
    if isinstance(content, PaymentReturn):
        return [lambda uow: apply_return(uow, partner, content, raw, now)]
    if isinstance(content, IntradayReport):
        return [lambda uow: apply_intraday(uow, partner, content, raw, now)]
    return [lambda uow: apply_statement(uow, partner, content, raw, now)]
