"""File relay: the outbox's payment files for file-exchange partners, written into their folders.

The batcher's outbox row is the same whatever the transport; this relay takes the rows of
partners reached by files (the broker relay leaves them alone), writes each file atomically as
`<MsgId>.xml` into the partner's outbound folder, with its detached signature beside it as
`<MsgId>.xml.sig` when the row carries one, and only then marks it sent. A crash in between
writes the same file again under the same name: the bank sees the same MsgId at worst.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import structlog

from gateway.errors import GatewayError
from gateway.metrics import NO_METRICS, Metrics
from gateway.service.channels import SIGNATURE_SUFFIX, Folder
from gateway.service.clock import Clock, utcnow
from gateway.service.ports import Storage

log = structlog.get_logger("gateway.file_relay")


def file_name(msg_id: str) -> str:
    """The name a payment file is given in the outbound folder."""
    return f"{msg_id}.xml"


class FileRelay:
    """Delivers pending outbox files to the outbound folders of file-exchange partners."""

    def __init__(
        self,
        storage: Storage,
        folders: Mapping[str, Folder],
        clock: Clock = utcnow,
        batch: int = 100,
        metrics: Metrics = NO_METRICS,
        owner: str = "gateway",
        claim_seconds: float = 30.0,
    ) -> None:
        self._storage = storage
        self._owner = owner
        self._claim_for = timedelta(seconds=claim_seconds)
        self._metrics = metrics
        # Outbound folder of each partner reached by file exchange.
        self._folders = dict(folders)
        self._clock = clock
        self._batch = batch

    def drain(self) -> int:
        """Write pending files; returns how many reached their folder."""
        if not self._folders:
            return 0
        now = self._clock()
        with self._storage.unit_of_work() as uow:
            pending = uow.outbox.claim(
                self._owner,
                self._batch,
                now,
                now + self._claim_for,
                file_partners=tuple(self._folders),
                files_only=True,
            )
        written: list[tuple[int, str]] = []
        unreachable: set[str] = set()
        sent: list[tuple[str, str]] = []  # (exchange, partner) of each file written
        try:
            for item in pending:
                message = item.message
                partner = message.routing_key
                if partner in unreachable:
                    continue  # keep this partner's files in order: retry them all later
                folder = self._folders[partner]
                name = file_name(message.message_id)
                try:
                    signature = message.headers.get("signature")
                    if signature:
                        folder.write_atomic(name + SIGNATURE_SUFFIX, signature.encode("utf-8"))
                    folder.write_atomic(name, message.body)
                except (OSError, GatewayError) as exc:
                    log.warning(
                        "file.write_failed",
                        msg_id=message.message_id,
                        partner=partner,
                        folder=folder.describe(),
                        error=str(exc),
                    )
                    unreachable.add(partner)
                    continue
                written.append((item.row_id, message.message_id))
                sent.append((message.exchange, partner))
                log.info(
                    "file.sent",
                    msg_id=message.message_id,
                    partner=partner,
                    file=name,
                    folder=folder.describe(),
                )
        finally:
            done = {row_id for row_id, _ in written}
            unsent = [item.row_id for item in pending if item.row_id not in done]
            if written or unsent:
                now = self._clock()
                with self._storage.unit_of_work() as uow:
                    uow.outbox.mark_sent([row_id for row_id, _ in written], now)
                    for _, msg_id in written:
                        uow.files.sent(msg_id, now)
                    uow.outbox.release(unsent, self._owner)
                for exchange, partner in sent:
                    self._metrics.outbox_sent(exchange, partner)
        return len(written)

    def close(self) -> None:
        """Release the folders' connections."""
        for folder in self._folders.values():
            folder.close()
