"""Inbound: bank files verified, checked, kept, and handed to the report or notification rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from lxml import etree

from gateway import crashpoints
from gateway.config import PartnerProfile, Settings
from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.camt052 import read_camt052
from gateway.iso20022.camt053 import read_camt053
from gateway.iso20022.camt054 import read_camt054
from gateway.iso20022.namespaces import message_type
from gateway.iso20022.pacs004 import read_pacs004
from gateway.iso20022.pain002 import read_pain002
from gateway.service.clock import Clock, utcnow
from gateway.service.intraday import apply_intraday
from gateway.service.notifications import apply_notification
from gateway.service.ports import Storage, UnitOfWork
from gateway.service.reports import apply_report
from gateway.service.returns import apply_return
from gateway.service.statements import apply_statement
from gateway.signing import (
    SIGNATURE_HEADER,
    TrustedCertificate,
    load_pinned,
    verify_for_partner,
)

log = structlog.get_logger("gateway.inbound")


class InboundService:
    """Applies pain.002, camt.054, camt.052, pacs.004 and camt.053 files from partners; refused
    files are quarantined."""

    def __init__(self, storage: Storage, settings: Settings, clock: Clock = utcnow) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock
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
                raise InvalidMessage(f"file from unknown partner {partner_name!r}")
            verified = verify_for_partner(
                raw, partner.signature, self._trusted(partner), now, signature
            )
            tree = verified.document
            kind = message_type(tree)
            if xsd.has_schema(kind):
                xsd.validate(tree)
            else:
                # schemas/SOURCES.md: pacs.004.001.02 and .11 ship no XSD; the signature has
                # been verified, and the reader checks the XSD's rules for every value it uses.
                log.warning("inbound.no_schema", message=kind.name_id)
            step = _application(kind.family, kind.name_id, partner, tree, raw, now)
            with self._storage.unit_of_work() as uow:
                result = step(uow)
                crashpoints.hit("inbound.before_commit")
                return result
        except InvalidMessage as exc:
            with self._storage.unit_of_work() as uow:
                first = uow.inbound.quarantine(partner_name, raw, str(exc), now)
            log.error("inbound.quarantined", reason=str(exc), again=not first)
            return "quarantined"


def _application(
    family: str,
    name_id: str,
    partner: PartnerProfile,
    tree: etree._Element,
    raw: bytes,
    now: datetime,
) -> Callable[[UnitOfWork], str]:
    """Read a verified file into its model (outside any transaction); the step returned applies
    it by the rules of its kind, inside one."""
    if family == "pain.002":
        report = read_pain002(tree)
        return lambda uow: apply_report(uow, partner, report, raw, now)
    if family == "camt.054":
        notification = read_camt054(tree)
        return lambda uow: apply_notification(uow, partner, notification, raw, now)
    if family == "pacs.004":
        returned = read_pacs004(tree)
        return lambda uow: apply_return(uow, partner, returned, raw, now)
    if family == "camt.053":
        statement = read_camt053(tree)
        return lambda uow: apply_statement(uow, partner, statement, raw, now)
    if family == "camt.052":
        intraday = read_camt052(tree)
        return lambda uow: apply_intraday(uow, partner, intraday, raw, now)
    raise InvalidMessage(f"{name_id} is not a report the gateway reads")
