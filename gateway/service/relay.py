"""Outbox relay: publishes what the services wrote and marks it sent on the broker's confirm."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
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
    gateway/adapters/confirms.py); each comes back confirmed, unroutable or failed. `flush`
    waits for every message, or (`through`, a `handed` read earlier) for those handed over
    until then, and returns what was settled meanwhile, of any message."""

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

    @property
    def handed(self) -> int: ...

    def flush(self, timeout: float | None = None, through: int | None = None) -> Settled: ...

    def keepalive(self) -> None: ...


@dataclass
class _Drained:
    """One batch's outcome, row ids by fate."""

    confirmed: list[int] = field(default_factory=list)
    parked: list[tuple[int, str]] = field(default_factory=list)
    # Seconds each confirmed message waited for its confirm.
    latencies: list[float] = field(default_factory=list)


@dataclass
class _Batch:
    """The messages a drain took at once: handed to the broker, then settled and marked."""

    pending: list[PendingMessage]
    drained: _Drained = field(default_factory=_Drained)
    # The publisher's `handed` once the last of them was handed over.
    through: int = 0
    # What failed in the hand-over (not the broker's going away): raised once marks are made.
    failure: Exception | None = None
    # The broker went away during the hand-over: the messages after it wait for a later drain.
    cut: bool = False
    # PostgreSQL: the unit of work whose row locks hold the messages, open until they are
    # marked (its exit, and the unit).
    unit: ExitStack | None = None
    uow: UnitOfWork | None = None

    @property
    def row_ids(self) -> list[int]:
        return [item.row_id for item in self.pending]


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

    Each batch is taken for this instance, published, and the confirmed messages marked sent.
    On PostgreSQL (`Storage.relay_locks`) one unit of work takes them with row locks, stays
    open while they are published and marks them: other instances skip the locked rows, and
    the rows not confirmed are free again when it ends. Elsewhere (SQLite, the memory store)
    every relay runs in one process: a relay reads its messages without writing, holds them in
    memory while it publishes (the process's other relays skip them), and one unit marks the
    confirmed ones sent; nothing is written to take or give them back.

    On PostgreSQL with a pipelining publisher, a drain takes up to `batches` batches while each
    comes full: the next batch is taken, by a unit of its own on a connection of its own
    (`Storage.overlapping_units`), while the broker confirms the last messages of the one
    before, and that one is marked while the broker confirms the next. The database's work
    and the broker's overlap; each row is still marked only once its own message is confirmed,
    in the unit that locked it. Elsewhere a drain is one batch.
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
        batches: int = 1,
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
        self._batches = max(1, batches)

    def drain(self) -> int:
        """Publish pending messages; returns how many were confirmed."""
        publisher = self._publisher
        holds = None if self._storage.relay_locks else _holds_of(self._storage)
        # PostgreSQL's work overlaps the broker's; SQLite's costs little beside the broker's,
        # and a batch taken while another is held would read the held rows again to skip them.
        overlap = (
            holds is None
            and self._storage.overlapping_units
            and isinstance(publisher, PipeliningPublisher)
        )
        confirmed = 0
        taken: list[_Batch] = []
        # Taken and not yet finished (settled, marked, let go), oldest first: at most two.
        open_batches: list[_Batch] = []
        try:
            for _ in range(self._batches if overlap else 1):
                batch = self._take_locked() if holds is None else self._take_held(holds)
                if batch is None:
                    break
                if open_batches and _shares_rows(batch, open_batches[-1]):
                    # The unit before lost its locks (PostgreSQL ended its session while the
                    # broker was slow to confirm): its rows are left to it; the drain ends.
                    self._give_back(batch)
                    break
                taken.append(batch)
                open_batches.append(batch)  # finished below, whatever happens from here
                self._publish(batch)
                if len(open_batches) == 2:
                    older = open_batches.pop(0)
                    confirmed += self._finish(older, holds, ahead=batch)
                if batch.failure is not None or batch.cut or len(batch.pending) < self._batch:
                    break  # the outbox is drained, or the hand-over failed
        finally:  # also on an interrupt: what the broker confirmed is marked
            confirmed += self._finish_all(open_batches, holds)
        for batch in taken:
            if batch.failure is not None:
                raise batch.failure
        if not taken:
            publisher.keepalive()  # nothing to publish
        return confirmed

    # --- taking a batch ------------------------------------------------------------------------

    def _take_held(self, holds: _Holds) -> _Batch | None:
        """Messages the process's other relays do not hold, read (not written) and held."""
        now = self._clock()
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
        return _Batch(pending) if pending else None

    def _take_locked(self) -> _Batch | None:
        """Messages taken by the row locks of a unit of work left open until they are marked:
        nothing is written to claim them, nor to give back those not sent."""
        with ExitStack() as unit:
            uow = unit.enter_context(self._storage.unit_of_work())
            pending = uow.outbox.lock_pending(
                self._owner,
                self._batch,
                self._clock(),
                self._claim_for,
                file_partners=self._file_partners,
                urgent_only=self._urgent_only,
            )
            if not pending:
                return None  # the unit ends: nothing was written
            return _Batch(pending, unit=unit.pop_all(), uow=uow)

    @staticmethod
    def _give_back(batch: _Batch) -> None:
        """End a batch's unit before anything was handed over: its locks go."""
        if batch.unit is not None:
            batch.unit.close()

    # --- publishing ----------------------------------------------------------------------------

    def _publish(self, batch: _Batch) -> None:
        """Hand the batch's messages to the broker (a pipelining publisher's confirms are
        gathered by `_finish`). A broker gone midway is logged (`batch.cut`); any other
        failure is kept (`batch.failure`), raised once what the broker confirmed is marked."""
        publisher = self._publisher
        try:
            if isinstance(publisher, PipeliningPublisher):
                self._hand_over(publisher, batch)
            else:
                self._one_by_one(batch.pending, batch.drained)
        except TransientError as exc:
            batch.cut = True
            log.warning(
                "outbox.publish_failed", error=str(exc), confirmed=len(batch.drained.confirmed)
            )
        except Exception as exc:  # raised by `drain` once the marks are made
            batch.failure = exc

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

    @staticmethod
    def _hand_over(publisher: PipeliningPublisher, batch: _Batch) -> None:
        """Hand every message over, many confirms outstanding; `_finish` collects them."""
        try:
            for item in batch.pending:
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
            batch.through = publisher.handed

    @staticmethod
    def _settle(settled: Settled, batch: _Batch, ahead: _Batch | None) -> None:
        """Give each settled message's fate to its batch: `batch`, or the one handed over
        after it, whose confirms began to arrive meanwhile."""
        theirs = set(ahead.row_ids) if ahead is not None else set()

        def owner(token: Hashable) -> _Drained:
            return ahead.drained if ahead is not None and token in theirs else batch.drained

        for token, reason in settled.unroutable:
            log.error("outbox.parked", row_id=token, error=reason)
            owner(token).parked.append((cast(int, token), reason))
        if settled.failed:
            log.warning(
                "outbox.publish_failed", failed=len(settled.failed), error=settled.failed[0][1]
            )
        if settled.confirmed:
            crashpoints.hit("relay.confirmed_unmarked")
        for token, seconds in zip(settled.confirmed, settled.latencies, strict=True):
            drained = owner(token)
            drained.confirmed.append(cast(int, token))
            drained.latencies.append(seconds)

    # --- marking -------------------------------------------------------------------------------

    def _finish(self, batch: _Batch, holds: _Holds | None, ahead: _Batch | None) -> int:
        """Wait for the batch's confirms (not for those of the batch `ahead` of it), mark the
        confirmed messages sent in its unit, and let its messages go; how many were confirmed.
        The messages not confirmed stay pending, sent again by a later drain (same ids)."""
        try:
            if isinstance(self._publisher, PipeliningPublisher):
                settled = self._publisher.flush(through=batch.through)
                self._settle(settled, batch, ahead)
        finally:  # also on an interrupt: what the broker confirmed is marked
            if holds is not None:
                try:
                    with self._storage.unit_of_work() as uow:
                        files = self._record(uow, batch.pending, batch.drained)
                finally:  # marked, or left pending for the next drain (sent again, same ids)
                    holds.let_go(batch.row_ids)
            else:
                files = self._commit_locked(batch)
        return self._done(batch.pending, batch.drained, files)

    def _finish_all(self, batches: list[_Batch], holds: _Holds | None) -> int:
        """`_finish` each batch, oldest first, each whatever became of the one before."""
        if not batches:
            return 0
        first, rest = batches[0], batches[1:]
        try:
            done = self._finish(first, holds, ahead=rest[0] if rest else None)
        finally:
            done_after = self._finish_all(rest, holds)
        return done + done_after

    def _commit_locked(self, batch: _Batch) -> list[OutboxMessage]:
        """Mark the batch in the unit holding its row locks, and end the unit."""
        unit, uow, drained = batch.unit, batch.uow, batch.drained
        if unit is None or uow is None:
            raise RuntimeError("a batch taken by row locks has its unit of work")
        try:
            with unit:
                return self._record(uow, batch.pending, drained)
        except TransientError:
            if not drained.confirmed and not drained.parked:
                raise
            # The unit was lost once the broker had answered: PostgreSQL closed its session
            # (held idle past `claim_seconds` while the broker was slow to confirm), or the
            # connection broke. What the broker confirmed is marked in a unit of its own.
            log.warning("outbox.hold_lost", confirmed=len(drained.confirmed))
            with self._storage.unit_of_work() as fresh:
                return self._record(fresh, batch.pending, drained)

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


def _shares_rows(batch: _Batch, other: _Batch) -> bool:
    """Whether two batches took a row in common."""
    return not set(other.row_ids).isdisjoint(batch.row_ids)


def _content_type(exchange: str) -> str:
    return "application/xml" if exchange == TO_BANK_EXCHANGE else "application/json"
