"""The console's actions on parked messages and quarantined files (the `AdminActions` port).

Parked messages are listed, replayed and dropped by the same rules as `gateway dlq`
(gateway/service/dead_letters.py, built with `via="console"`): each replay or drop is kept
with the message and appended to the audit trail in one unit of work. A quarantined bank file
is taken in again by handing its kept bytes to the partner's channel once more:
`gateway.from-bank` for a partner reached by message, its inbound folder for a partner reached
by files; the audit row is appended first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from pika.exceptions import AMQPError

from gateway.adapters import topology
from gateway.adapters.amqp_connect import COMMAND_WAIT, BrokerUnreachableError
from gateway.adapters.quarantine_folder import QuarantineFolder
from gateway.adapters.rabbitmq import Publisher
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.service.audit import record
from gateway.service.channels import Folder
from gateway.service.console import ParkedItem
from gateway.service.dead_letters import DeadLetters, ParkedBatch
from gateway.service.ports import Storage

VIA = "console"
# Parked messages shown per queue (the page says how many more wait).
SHOWN_PER_QUEUE = 200


class NoParking:
    """No broker: no parking queue to count or open (the console on a database alone)."""

    def counts(self, queues: Sequence[str]) -> dict[str, int | None]:
        return {}

    def open(self, queue: str) -> AbstractContextManager[ParkedBatch]:
        raise GatewayError(f"no broker to open {queue}.parking on")


class ConsoleActions:
    """Replay, drop and reprocess for the console, over the dead-letter rules."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        dead_letters: DeadLetters,
        inbound_folder: Callable[[str], Folder],
    ) -> None:
        self._settings = settings
        self._storage = storage
        self._letters = dead_letters
        self._inbound_folder = inbound_folder

    def parked(self) -> tuple[list[ParkedItem], list[str]]:
        items: list[ParkedItem] = []
        problems: list[str] = []
        queues = list(self._letters.queues)
        for index, queue in enumerate(queues):
            try:
                shown = self._letters.show(queue, SHOWN_PER_QUEUE)
            except BrokerUnreachableError as exc:
                # No node answered for this queue: the others would each wait as long again.
                problems.append(f"{queue}: {exc}")
                problems.extend(
                    f"{rest}: not asked, the broker is unreachable" for rest in queues[index + 1 :]
                )
                break
            except (AMQPError, OSError, GatewayError) as exc:
                problems.append(f"{queue}: {str(exc) or type(exc).__name__}")
                continue
            items.extend(
                ParkedItem(
                    queue=item.queue,
                    message_id=item.message_id or "",
                    reason=item.reason,
                    parked_at=item.parked_at or "",
                    destination=item.to or item.queue,
                    preview=item.preview(),
                )
                for item in shown.items
            )
            if shown.total > len(shown.items):
                problems.append(f"{queue}: {shown.total - len(shown.items)} more not shown")
        return items, problems

    def replay(self, queue: str, message_id: str, *, actor: str) -> None:
        done = self._letters.replay(queue, [message_id], actor)
        if done.missing:
            raise GatewayError(f"no parked message {message_id!r} in {queue}")

    def drop(self, queue: str, message_id: str, reason: str, *, actor: str) -> None:
        self._letters.drop(queue, message_id, reason, actor)

    def quarantined_bytes(self, quarantine_id: int) -> bytes | None:
        found = self._storage.queries.quarantined_file(quarantine_id)
        if found is None:
            return None
        kept = QuarantineFolder(self._settings.quarantine_path).read(found.sha256)
        return kept if kept is not None else self._storage.queries.quarantined_raw(found.sha256)

    def reprocess(self, quarantine_id: int, *, actor: str) -> None:
        found = self._storage.queries.quarantined_file(quarantine_id)
        if found is None:
            raise GatewayError(f"no quarantined file {quarantine_id}")
        raw = self.quarantined_bytes(quarantine_id)
        if raw is None:
            raise GatewayError(
                f"quarantined file {quarantine_id}: its bytes ({found.sha256[:16]}...) are not in"
                f" the quarantine folder {self._settings.quarantine_path}"
            )
        profile = self._settings.partners.get(found.partner)
        if profile is None:
            raise GatewayError(f"partner {found.partner!r} has no profile: it cannot be read")
        record(
            self._storage,
            actor=actor,
            via=VIA,
            action="quarantine.reprocess",
            subject=str(quarantine_id),
            detail={"partner": found.partner, "sha256": found.sha256},
        )
        if profile.files is not None:
            folder = self._inbound_folder(found.partner)
            try:
                folder.write_atomic(f"reprocess-{found.sha256[:16]}.xml", raw)
            finally:
                folder.close()
            return
        publisher = Publisher(self._settings.amqp_url, within=COMMAND_WAIT)
        try:
            publisher.publish(
                topology.FROM_BANK_EXCHANGE,
                found.partner,
                raw,
                message_id=f"reprocess-{hashlib.sha256(raw).hexdigest()[:32]}",
                headers={"partner": found.partner, "reprocessed": str(quarantine_id)},
                content_type="application/xml",
            )
        finally:
            publisher.close()
