"""The console's actions on parked messages and quarantined files (the `AdminActions` port).

The outbox's parked messages are changed in the database, in the same transaction as their
audit row. Messages parked on the broker (`<queue>.parking`) are put back or dropped as
`gateway dlq` does it (gateway/commands/dlq.py), and their audit row is appended before the
message is acknowledged, so a crash between the two leaves the message parked, never lost
unrecorded. A quarantined bank file is taken in again by handing its kept bytes to the
partner's channel once more: `gateway.from-bank` for a partner reached by message, its inbound
folder for a partner reached by files.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pika
from pika.exceptions import AMQPError

from gateway.adapters import topology
from gateway.adapters.rabbitmq import PARKED_AT_HEADER, Publisher
from gateway.commands.dlq import _PARKING_HEADERS, _parked, _preview, _text, _why
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.service.audit import logged
from gateway.service.console import OUTBOX, ParkedItem
from gateway.service.ports import AuditEntry, DlqAction, Storage

VIA = "console"


class BrokerAdminActions:
    """Replay, drop and reprocess against the gateway's database and broker."""

    def __init__(self, settings: Settings, storage: Storage, *, broker: bool = True) -> None:
        self._settings = settings
        self._storage = storage
        # Without a broker (tests on the database alone) only the outbox is looked at.
        self._broker = broker

    # --- reading ---

    def parked(self) -> tuple[list[ParkedItem], list[str]]:
        items = [
            ParkedItem(
                OUTBOX,
                p.message_id,
                p.parked_why,
                p.parked_at.isoformat(timespec="seconds"),
                f"{p.exchange}/{p.routing_key}",
                _preview(p.body),
            )
            for p in self._storage.queries.outbox_parked()
            if not p.sent
        ]
        problems: list[str] = []
        if not self._broker:
            return items, problems
        for queue in topology.consumed_queues(self._settings.partners):
            try:
                with _parked(self._settings, queue) as (_, taken):
                    for _method, props, body in taken:
                        headers = dict(props.headers or {})
                        at = _text(headers.get(PARKED_AT_HEADER, ""))
                        items.append(
                            ParkedItem(
                                queue,
                                props.message_id or "",
                                _why(headers),
                                at,
                                queue,
                                _preview(body),
                            )
                        )
            except (AMQPError, OSError) as exc:
                problems.append(f"{queue}: {type(exc).__name__}")
            except pika.exceptions.ChannelClosedByBroker:
                continue
        return items, problems

    # --- acting ---

    def _audit(self, actor: str, action: str, subject: str, detail: dict[str, str]) -> None:
        with self._storage.unit_of_work() as uow:
            row = uow.audit.append(AuditEntry(actor, VIA, action, subject, detail), _now())
        logged(row)

    def replay(self, queue: str, message_id: str, *, actor: str) -> None:
        if queue == OUTBOX:
            now = _now()
            with self._storage.unit_of_work() as uow:
                if not uow.outbox.unpark(message_id):
                    raise GatewayError(f"no parked message {message_id!r} in the outbox")
                uow.admin.record_dlq_action(_dlq("replay", queue, message_id, None, actor), now)
                row = uow.audit.append(
                    AuditEntry(actor, VIA, "dlq.replay", message_id, {"queue": queue}), now
                )
            logged(row)
            return
        self._known(queue)
        with _parked(self._settings, queue) as (channel, taken):
            for method, props, body in taken:
                if props.message_id != message_id:
                    continue
                headers = dict(props.headers or {})
                kept = {k: v for k, v in headers.items() if k not in _PARKING_HEADERS}
                channel.basic_publish(
                    "",
                    queue,
                    body,
                    pika.BasicProperties(
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=props.message_id,
                        content_type=props.content_type,
                        headers=kept,
                    ),
                    mandatory=True,
                )
                self._audit(actor, "dlq.replay", message_id, {"queue": queue})
                channel.basic_ack(method.delivery_tag)
                return
        raise GatewayError(f"no parked message {message_id!r} in {queue}")

    def drop(self, queue: str, message_id: str, reason: str, *, actor: str) -> None:
        if not reason.strip():
            raise GatewayError("a reason is required to drop a message")
        detail = {"queue": queue, "reason": reason}
        if queue == OUTBOX:
            now = _now()
            parked = [
                p for p in self._storage.queries.outbox_parked() if p.message_id == message_id
            ]
            with self._storage.unit_of_work() as uow:
                if not parked or not uow.outbox.drop(message_id, now):
                    raise GatewayError(f"no parked message {message_id!r} in the outbox")
                action = _dlq("drop", queue, message_id, reason, actor)
                uow.admin.record_dlq_action(action, now)
                row = uow.audit.append(AuditEntry(actor, VIA, "dlq.drop", message_id, detail), now)
            logged(row)
            return
        self._known(queue)
        with _parked(self._settings, queue) as (channel, taken):
            for method, props, body in taken:
                if props.message_id != message_id:
                    continue
                headers = dict(props.headers or {})
                with self._storage.unit_of_work() as uow:
                    kept = DlqAction(
                        "drop", queue, message_id, reason, _why(headers), body, headers, actor
                    )
                    uow.admin.record_dlq_action(kept, _now())
                    row = uow.audit.append(
                        AuditEntry(actor, VIA, "dlq.drop", message_id, detail), _now()
                    )
                logged(row)
                channel.basic_ack(method.delivery_tag)
                return
        raise GatewayError(f"no parked message {message_id!r} in {queue}")

    def reprocess(self, quarantine_id: int, *, actor: str) -> None:
        found = self._storage.queries.quarantined_file(quarantine_id)
        if found is None:
            raise GatewayError(f"no quarantined file {quarantine_id}")
        profile = self._settings.partners.get(found.partner)
        if profile is None:
            raise GatewayError(f"partner {found.partner!r} has no profile: it cannot be read")
        detail = {"partner": found.partner, "sha256": found.sha256}
        self._audit(actor, "quarantine.reprocess", str(quarantine_id), detail)
        name = f"reprocess-{found.sha256[:16]}.xml"
        if profile.files is not None:
            from gateway.bootstrap import inbound_folder  # noqa: PLC0415 - the composition root

            folder = inbound_folder(self._settings, profile)
            try:
                folder.write_atomic(name, found.raw)
            finally:
                folder.close()
            return
        publisher = Publisher(self._settings.amqp_url)
        try:
            publisher.publish(
                topology.FROM_BANK_EXCHANGE,
                found.partner,
                found.raw,
                message_id=f"reprocess-{hashlib.sha256(found.raw).hexdigest()[:32]}",
                headers={"partner": found.partner, "reprocessed": str(quarantine_id)},
                content_type="application/xml",
            )
        finally:
            publisher.close()

    def _known(self, queue: str) -> None:
        queues = topology.consumed_queues(self._settings.partners)
        if queue not in queues:
            raise GatewayError(f"no queue {queue!r}")


def _now() -> datetime:
    return datetime.now(UTC)


def _dlq(action: str, queue: str, message_id: str, reason: str | None, actor: str) -> DlqAction:
    headers: dict[str, Any] = {}
    return DlqAction(action, queue, message_id, reason, None, None, headers, actor)
