"""Outbox relay: publishes what the services wrote and marks it sent on the broker's confirm."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, cast, runtime_checkable

import structlog

from gateway import crashpoints
from gateway.errors import PermanentError, TransientError
from gateway.metrics import NO_METRICS, Metrics
from gateway.service.channels import TO_BANK_EXCHANGE
from gateway.service.clock import Clock, utcnow
from gateway.service.ports import OutboxMessage, PendingMessage, Storage, UnitOfWork

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


class Settled(Protocol):
    """What became of messages handed to a pipelining publisher, by token."""

    confirmed: list[Hashable]
    # Seconds from hand-over to confirm of each confirmed message.
    latencies: list[float]
    unroutable: list[tuple[Hashable, str]]
    failed: list[tuple[Hashable, str]]


@runtime_checkable
class PipeliningPublisher(Protocol):
    """Hands many messages to the broker before their confirms arrive (see
    gateway/adapters/confirms.py); each comes back confirmed, unroutable or failed."""

    def submit(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: dict[str, Any] | None = None,
        content_type: str = ...,
        token: Hashable | None = None,
    ) -> None: ...

    def flush(self, timeout: float | None = None) -> Settled: ...

    def keepalive(self) -> None: ...


@dataclass
class _Drained:
    """One drain's outcome, row ids by fate."""

    confirmed: list[int] = field(default_factory=list)
    parked: list[tuple[int, str]] = field(default_factory=list)
    # Seconds each confirmed message waited for its confirm.
    latencies: list[float] = field(default_factory=list)


class _Holds:
    """The outbox rows the relays of this process are publishing, on a store whose relays all
    run in one process (SQLite: the main role's instance lock). A relay takes rows while it
    holds the turn, reading them on a snapshot begun in it, and lets them go once their marks
    are committed: no two relays take a row, and none takes a row already marked sent. The
    urgent lane's relay, waiting, has the next turn (as its units have the write lock first)."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._busy = False
        self._urgent_waiting = 0
        self._rows: set[int] = set()

    @contextmanager
    def turn(self, urgent: bool) -> Iterator[None]:
        """The turn to take rows: one relay at a time, an urgent one first."""
        with self._turn:
            self._urgent_waiting += urgent
            try:
                self._turn.wait_for(lambda: not self._busy and (urgent or not self._urgent_waiting))
            finally:
                self._urgent_waiting -= urgent
            self._busy = True
        try:
            yield
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()

    def held(self) -> frozenset[int]:
        """The rows held now; read in a turn before the snapshot begins, so that a row let go
        after this read is seen marked by the snapshot, or is in what it returns."""
        with self._turn:
            return frozenset(self._rows)

    def hold(self, row_ids: Iterable[int]) -> None:
        with self._turn:
            self._rows.update(row_ids)

    def let_go(self, row_ids: Iterable[int]) -> None:
        """Once the rows' marks are committed (or the marks failed): any turn may take them."""
        with self._turn:
            self._rows.difference_update(row_ids)


# The holds of each database, by where it is (`Storage.describe`): two storage objects on one
# SQLite file share them.
_HOLDS: dict[str, _Holds] = {}
_HOLDS_MUTEX = threading.Lock()


def _holds_of(storage: Storage) -> _Holds:
    with _HOLDS_MUTEX:
        return _HOLDS.setdefault(storage.describe(), _Holds())


class RelayService:
    """Drains the outbox in id order; a crash before marking means a resend with the same id.

    Each drain takes a batch of messages for this instance, publishes them, and marks the
    confirmed ones sent. On PostgreSQL (`Storage.relay_locks`) one unit of work takes them with
    row locks, stays open while they are published and marks them: other instances skip the
    locked rows, and the rows not confirmed are free again when it ends. Elsewhere (SQLite,
    the memory store) every relay runs in one process: a relay reads its messages without
    writing, holds them in memory while it publishes (the process's other relays skip them),
    and one unit marks the confirmed ones sent; nothing is written to take or give them back.
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
        urgent_only: bool = False,
    ) -> None:
        self._storage = storage
        # Only the files of urgent orders (the urgent lane sends its files itself, at once).
        self._urgent_only = urgent_only
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
        if self._storage.relay_locks:
            return self._drain_locked()
        return self._drain_held()

    def _drain_held(self) -> int:
        """Take messages the process's other relays do not hold, publish them, and mark the
        confirmed ones in one unit of work: the only write."""
        holds = _holds_of(self._storage)
        now = self._clock()
        pending: list[PendingMessage] = []
        try:
            with holds.turn(self._urgent_only):
                held = holds.held()
                # A read alone: on SQLite, a snapshot without the write lock (`run_unit`).
                taken = self._storage.run_unit(
                    lambda uow: uow.outbox.lock_pending(
                        self._owner,
                        self._batch + len(held),
                        now,
                        self._claim_for,
                        file_partners=self._file_partners,
                        urgent_only=self._urgent_only,
                    )
                )
                pending = [item for item in taken if item.row_id not in held][: self._batch]
                holds.hold([item.row_id for item in pending])
            if not pending:
                self._publisher.keepalive()
                return 0
            drained = _Drained()
            failure: Exception | None = None
            try:
                failure = self._publish(pending, drained)
            finally:  # also on an interrupt: what the broker confirmed is marked
                with self._storage.unit_of_work() as uow:
                    files = self._record(uow, pending, drained)
        finally:  # marked, or left pending for the next drain (sent again, same ids)
            holds.let_go(item.row_id for item in pending)
        confirmed = self._done(pending, drained, files)
        if failure is not None:
            raise failure
        return confirmed

    def _drain_locked(self) -> int:
        """Take, publish and mark in one unit of work, the messages held by its row locks
        meanwhile: nothing is written to claim them, nor to give back those not sent."""
        now = self._clock()
        drained = _Drained()
        failure: Exception | None = None
        pending: list[PendingMessage] = []
        files: list[OutboxMessage] = []
        try:
            with self._storage.unit_of_work() as uow:
                pending = uow.outbox.lock_pending(
                    self._owner,
                    self._batch,
                    now,
                    self._claim_for,
                    file_partners=self._file_partners,
                    urgent_only=self._urgent_only,
                )
                if pending:
                    failure = self._publish(pending, drained)
                    files = self._record(uow, pending, drained)
        except TransientError:
            if not drained.confirmed and not drained.parked:
                raise
            # The unit was lost once the broker had answered: PostgreSQL closed its session
            # (held idle past `claim_seconds` while the broker was slow to confirm), or the
            # connection broke. What the broker confirmed is marked in a unit of its own.
            log.warning("outbox.hold_lost", confirmed=len(drained.confirmed))
            with self._storage.unit_of_work() as uow:
                files = self._record(uow, pending, drained)
        if not pending:
            self._publisher.keepalive()
            return 0
        confirmed = self._done(pending, drained, files)
        if failure is not None:
            raise failure
        return confirmed

    def _publish(self, pending: Sequence[PendingMessage], drained: _Drained) -> Exception | None:
        """Hand the messages to the broker; `drained` says what became of each. A broker gone
        midway is logged; any other failure is returned, to be raised once what the broker
        confirmed is marked."""
        try:
            if isinstance(self._publisher, PipeliningPublisher):
                self._pipelined(self._publisher, pending, drained)
            else:
                self._one_by_one(pending, drained)
        except TransientError as exc:
            log.warning("outbox.publish_failed", error=str(exc), confirmed=len(drained.confirmed))
        except Exception as exc:  # returned: raised by the caller once the marks are made
            return exc
        return None

    def _one_by_one(self, pending: Sequence[PendingMessage], drained: _Drained) -> None:
        """Publish each message and wait for its confirm before the next."""
        for item in pending:
            message = item.message
            started = time.perf_counter()
            try:
                self._publisher.publish(
                    message.exchange,
                    message.routing_key,
                    message.body,
                    message_id=message.message_id,
                    headers=message.headers,
                    content_type=_content_type(message.exchange),
                )
            except PermanentError as exc:
                # Kept in the outbox, out of the way of the others, for an admin to look at.
                log.error("outbox.parked", message_id=message.message_id, error=str(exc))
                drained.parked.append((item.row_id, str(exc)))
                continue
            drained.latencies.append(time.perf_counter() - started)
            crashpoints.hit("relay.confirmed_unmarked")
            drained.confirmed.append(item.row_id)

    def _pipelined(
        self, publisher: PipeliningPublisher, pending: Sequence[PendingMessage], drained: _Drained
    ) -> None:
        """Hand every message over, many confirms outstanding, then collect the confirms; the
        rows are marked only for the messages the broker confirmed."""
        try:
            for item in pending:
                message = item.message
                publisher.submit(
                    message.exchange,
                    message.routing_key,
                    message.body,
                    message_id=message.message_id,
                    headers=message.headers,
                    content_type=_content_type(message.exchange),
                    token=item.row_id,
                )
        finally:
            # Also when the broker went away midway: what it confirmed before is marked.
            self._settle(publisher.flush(), drained)

    @staticmethod
    def _settle(settled: Settled, drained: _Drained) -> None:
        for token, reason in settled.unroutable:
            log.error("outbox.parked", row_id=token, error=reason)
            drained.parked.append((cast(int, token), reason))
        if settled.failed:
            log.warning(
                "outbox.publish_failed", failed=len(settled.failed), error=settled.failed[0][1]
            )
        if settled.confirmed:
            crashpoints.hit("relay.confirmed_unmarked")
        drained.confirmed.extend(cast(int, token) for token in settled.confirmed)
        drained.latencies.extend(settled.latencies)

    def _record(
        self, uow: UnitOfWork, pending: Sequence[PendingMessage], drained: _Drained
    ) -> list[OutboxMessage]:
        """Mark the confirmed messages sent and park the unroutable ones; the files sent."""
        confirmed = set(drained.confirmed)
        files = [
            item.message
            for item in pending
            if item.row_id in confirmed and item.message.exchange == TO_BANK_EXCHANGE
        ]
        now = self._clock()
        uow.outbox.mark_sent(drained.confirmed, now)
        for message in files:
            uow.files.sent(message.message_id, now)
        for row_id, reason in drained.parked:
            uow.outbox.park(row_id, reason, now)
        return files

    def _done(
        self, pending: Sequence[PendingMessage], drained: _Drained, files: list[OutboxMessage]
    ) -> int:
        """Once the marks are committed: the log lines and metrics; how many were confirmed."""
        for message in files:
            log.info("file.sent", msg_id=message.message_id, partner=message.routing_key)
        confirmed = set(drained.confirmed)
        for item in pending:
            if item.row_id in confirmed:
                self._metrics.outbox_sent(item.message.exchange, item.message.routing_key)
        for seconds in drained.latencies:
            self._metrics.publish_confirmed(seconds)
        return len(drained.confirmed)


def _content_type(exchange: str) -> str:
    return "application/xml" if exchange == TO_BANK_EXCHANGE else "application/json"
