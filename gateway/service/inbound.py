"""Inbound: bank files verified, checked, kept, and handed to the report or notification rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from gateway import crashpoints
from gateway.adapters.db import Database
from gateway.config import PartnerProfile, Settings
from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.camt054 import read_camt054
from gateway.iso20022.namespaces import message_type
from gateway.iso20022.pain002 import read_pain002
from gateway.service.clock import Clock, stamp, utcnow
from gateway.service.notifications import apply_notification
from gateway.service.reports import apply_report
from gateway.signing import verify

log = structlog.get_logger("gateway.inbound")


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
        """Verify, check and apply one file: applied, duplicate or quarantined."""
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
                # ../shared's SOURCES: pain.002.001.10 is read, and validated once its XSD is
                # installed in schemas/; the signature has been verified either way.
                log.warning("inbound.no_schema", message=kind.name_id)
            if kind.family == "pain.002":
                report = read_pain002(tree)
                with self._db.transaction() as tx:
                    result = apply_report(tx, partner, report, raw, now)
                    crashpoints.hit("inbound.before_commit")
                    return result
            if kind.family == "camt.054":
                notification = read_camt054(tree)
                with self._db.transaction() as tx:
                    result = apply_notification(tx, partner, notification, raw, now)
                    crashpoints.hit("inbound.before_commit")
                    return result
            raise InvalidMessage(f"{kind.name_id} is not a report the gateway reads")
        except InvalidMessage as exc:
            with self._db.transaction() as tx:
                first = tx.quarantine(partner_name, raw, str(exc), stamp(now))
            log.error("inbound.quarantined", reason=str(exc), again=not first)
            return "quarantined"
