"""Outbox relay: publishes what the services wrote and marks it sent on the broker's confirm."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import structlog

from gateway import crashpoints
from gateway.errors import PermanentError, TransientError
from gateway.metrics import NO_METRICS, Metrics
from gateway.service.channels import TO_BANK_EXCHANGE
from gateway.service.clock import Clock, utcnow
from gateway.service.ports import Storage

log = structlog.get_logger("gateway.relay")


class Publisher(Protocol):
    """Publishes one message and returns only once the broker confirmed it."""

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: dict[str, str] | None = None,
        content_type: str = ...,
    ) -> None: ...

    def keepalive(self) -> None:
        """Keep an idle connection alive."""


class RelayService:
    """Drains the outbox in id order; a crash before marking means a resend with the same id.

    Each drain claims a batch of messages for this instance (other instances skip them until
    the claim expires), publishes them, and marks the confirmed ones sent; the others are
    released for the next drain, here or elsewhere.
    """

    def __init__(
        self,
        storage: Storage,
        publisher: Publisher,
        clock: Clock = utcnow,
        batch: int = 500,
        file_partners: Sequence[str] = (),
        metrics: Metrics = NO_METRICS,
        owner: str = "gateway",
        claim_seconds: float = 30.0,
    ) -> None:
        self._storage = storage
        self._owner = owner
        self._claim_for = timedelta(seconds=claim_seconds)
        self._metrics = metrics
        # Partners reached by file exchange: gateway/service/file_relay.py delivers their files.
        self._file_partners = tuple(file_partners)
        self._publisher = publisher
        self._clock = clock
        self._batch = batch

    def drain(self) -> int:
        """Publish pending messages; returns how many were confirmed."""
        now = self._clock()
        with self._storage.unit_of_work() as uow:
            pending = uow.outbox.claim(
                self._owner,
                self._batch,
                now,
                now + self._claim_for,
                file_partners=self._file_partners,
            )
        if not pending:
            self._publisher.keepalive()
            return 0
        confirmed: list[int] = []
        sent: list[tuple[str, str]] = []  # (exchange, routing key) of each confirmed message
        files: list[str] = []
        parked: list[tuple[int, str]] = []
        try:
            for item in pending:
                message = item.message
                is_file = message.exchange == TO_BANK_EXCHANGE
                try:
                    started = time.perf_counter()
                    self._publisher.publish(
                        message.exchange,
                        message.routing_key,
                        message.body,
                        message_id=message.message_id,
                        headers=message.headers,
                        content_type="application/xml" if is_file else "application/json",
                    )
                except PermanentError as exc:
                    # Kept in the outbox, out of the way of the others, for an admin to look at.
                    log.error("outbox.parked", message_id=message.message_id, error=str(exc))
                    parked.append((item.row_id, str(exc)))
                    continue
                self._metrics.publish_confirmed(time.perf_counter() - started)
                crashpoints.hit("relay.confirmed_unmarked")
                confirmed.append(item.row_id)
                sent.append((message.exchange, message.routing_key))
                if is_file:
                    files.append(message.message_id)
                    log.info("file.sent", msg_id=message.message_id, partner=message.routing_key)
        except TransientError as exc:
            log.warning("outbox.publish_failed", error=str(exc), confirmed=len(confirmed))
        finally:
            done = {*confirmed, *(row_id for row_id, _ in parked)}
            unsent = [item.row_id for item in pending if item.row_id not in done]
            now = self._clock()
            with self._storage.unit_of_work() as uow:
                uow.outbox.mark_sent(confirmed, now)
                for msg_id in files:
                    uow.files.sent(msg_id, now)
                for row_id, reason in parked:
                    uow.outbox.park(row_id, reason, now)
                uow.outbox.release(unsent)
            if confirmed or parked:
                for exchange, routing_key in sent:
                    self._metrics.outbox_sent(exchange, routing_key)
        return len(confirmed)
