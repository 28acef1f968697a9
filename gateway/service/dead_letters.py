"""Parked messages, as an admin handles them: list, show, replay (put back) or drop (for good).

Messages wait for an admin in two places: each consumed queue's `<queue>.parking` on the broker
(parked by the gateway with a reason, or by the broker's delivery limit), and the outbox (a
message the broker could not route, status `parked`; addressed as the pseudo-queue `outbox`).
The rules here are the same for both and for every front end (`gateway dlq`, the console):

- Every replay and drop is recorded in the database (`dlq_actions`) with who did it and why; a
  dropped message is kept there with its body. The same unit of work appends it to the
  hash-chained audit trail (`dlq.replay`, `dlq.drop`), with the front end it came through.
- Outbox messages are put back, recorded, in one transaction: all of them or none.
- A broker message is republished (confirmed) before it is taken out of its parking queue, and a
  drop is recorded before the message is taken out: a crash between the two leaves it parked
  (a replayed one possibly twice, which the consumers take as a duplicate), never lost.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from gateway.errors import GatewayError
from gateway.service.audit import logged
from gateway.service.clock import Clock, utcnow
from gateway.service.ports import AuditEntry, AuditRecord, DlqAction, Storage, UnitOfWork

# The outbox's parked messages are addressed as this pseudo-queue.
OUTBOX = "outbox"
# Characters of a body shown by `show` (the whole body stays where it is).
PREVIEW_CHARS = 400


class UnknownQueue(GatewayError):  # noqa: N818 - names what happened, as STYLE.md has it
    """A queue that is neither one the gateway consumes nor `outbox`."""


class NotParked(GatewayError):  # noqa: N818 - same reason
    """A message named by an admin is not parked where they said."""


@dataclass(frozen=True, slots=True)
class ParkedLetter:
    """A message in a broker parking queue, as the broker adapter read it."""

    # The broker's handle on this delivery (to take it out or leave it).
    tag: int
    message_id: str | None
    # Why it was parked: the gateway's reason, else the broker's dead-letter record.
    reason: str
    # When the gateway parked it (as its header says), or None.
    parked_at: str | None
    redelivered: bool
    body: bytes
    content_type: str | None
    # Its headers as parked, and as first published (the parking marks left out).
    headers: dict[str, Any] = field(default_factory=dict)
    original_headers: dict[str, Any] = field(default_factory=dict)


class ParkedBatch(Protocol):
    """The messages of one parking queue, taken out for a while: those not settled go back
    when the batch is closed."""

    @property
    def letters(self) -> Sequence[ParkedLetter]:
        """Every message waiting in the parking queue, oldest first."""

    def republish(self, letter: ParkedLetter) -> None:
        """Publish the message to its queue again, as first published, and wait for the
        broker's confirm (it stays in the parking queue until settled)."""

    def settle(self, letter: ParkedLetter) -> None:
        """Take the message out of the parking queue for good."""


class ParkingLot(Protocol):
    """The broker's parking queues (gateway/adapters/parking.py)."""

    def counts(self, queues: Sequence[str]) -> dict[str, int | None]:
        """How many messages wait in each queue's parking queue (None: not declared)."""

    def open(self, queue: str) -> AbstractContextManager[ParkedBatch]:
        """The parked messages of `queue`, taken out until the block ends."""


@dataclass(frozen=True, slots=True)
class ParkedItem:
    """One parked message as an admin sees it."""

    queue: str
    message_id: str | None
    reason: str
    parked_at: str | None
    body: bytes
    # exchange/routing key of an outbox message; None for a broker one.
    to: str | None = None
    # Whether the broker delivered a parked message before; None for an outbox one.
    redelivered: bool | None = None

    def preview(self, chars: int = PREVIEW_CHARS) -> str:
        """The body as text, cut at `chars` characters."""
        text = self.body.decode("utf-8", errors="replace")
        return text if len(text) <= chars else text[:chars] + "..."


@dataclass(frozen=True, slots=True)
class Shown:
    """The first parked messages of a queue, and how many wait in all."""

    items: list[ParkedItem]
    total: int


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay put back, and which named messages were not parked there."""

    queue: str
    message_ids: list[str]
    missing: list[str]


class DeadLetters:
    """The parked-message rules, over the storage port and the broker's parking queues.

    `storage` is None when the gateway has no database yet: the broker's parking queues can
    still be counted and shown, but nothing can be replayed or dropped (it would go unrecorded).
    """

    def __init__(
        self,
        storage: Storage | None,
        parking: ParkingLot,
        queues: Sequence[str],
        clock: Clock = utcnow,
        *,
        via: str = "cli",
    ) -> None:
        self._storage = storage
        self._parking = parking
        self._queues = tuple(queues)
        self._clock = clock
        # The front end admins act through (`cli` or `console`), as the audit trail keeps it.
        self._via = via

    def _record(self, uow: UnitOfWork, action: DlqAction, now: datetime) -> AuditRecord:
        """Keep an admin's action with the message, and append it to the audit trail, in the
        caller's unit of work (the caller logs the row once the unit is committed)."""
        uow.admin.record_dlq_action(action, now)
        detail = {"queue": action.queue} | ({"reason": action.reason} if action.reason else {})
        entry = AuditEntry(
            action.actor, self._via, f"dlq.{action.action}", action.message_id or "", detail
        )
        return uow.audit.append(entry, now)

    @property
    def queues(self) -> tuple[str, ...]:
        """The queues whose parked messages can be handled: each consumed queue, and `outbox`."""
        return (*self._queues, OUTBOX)

    def counts(self) -> list[tuple[str, int | None]]:
        """(queue, messages parked) for each queue, `outbox` last when there is a database;
        None for a parking queue not declared yet."""
        found = self._parking.counts(self._queues)
        counted: list[tuple[str, int | None]] = [(q, found.get(q)) for q in self._queues]
        if self._storage is not None:
            counted.append((OUTBOX, len(self._storage.queries.outbox_parked())))
        return counted

    def show(self, queue: str, limit: int = 20) -> Shown:
        """The first `limit` parked messages of `queue` (or `outbox`), oldest first."""
        if self._known(queue) == OUTBOX:
            parked = self._database().queries.outbox_parked()
            items = [
                ParkedItem(
                    queue=OUTBOX,
                    message_id=p.message_id,
                    reason=p.parked_why,
                    parked_at=p.parked_at.isoformat(),
                    body=p.body,
                    to=f"{p.exchange}/{p.routing_key}",
                )
                for p in parked[:limit]
            ]
            return Shown(items, len(parked))
        with self._parking.open(queue) as batch:
            letters = list(batch.letters)
        items = [
            ParkedItem(
                queue=queue,
                message_id=letter.message_id,
                reason=letter.reason,
                parked_at=letter.parked_at,
                body=letter.body,
                redelivered=letter.redelivered,
            )
            for letter in letters[:limit]
        ]
        return Shown(items, len(letters))

    def replay(self, queue: str, message_ids: Collection[str] | None, actor: str) -> Replayed:
        """Put the named parked messages of `queue` (None: all of them) back in line, once their
        cause is mended; the named ones not parked there are returned as missing."""
        if message_ids is not None and not message_ids:
            raise GatewayError("name the messages to replay, or replay them all")
        storage = self._database()
        wanted = None if message_ids is None else set(message_ids)
        if self._known(queue) == OUTBOX:
            done = self._replay_outbox(storage, wanted, actor)
        else:
            done = self._replay_broker(storage, queue, wanted, actor)
        missing = sorted((wanted or set()) - set(done))
        return Replayed(queue, done, missing)

    def _replay_outbox(self, storage: Storage, wanted: set[str] | None, actor: str) -> list[str]:
        """Put parked outbox messages back, and record it, in one transaction."""
        now = self._clock()
        done: list[str] = []
        rows: list[AuditRecord] = []
        with storage.unit_of_work() as uow:
            for parked in uow.outbox.parked(None if wanted is None else sorted(wanted)):
                if not uow.outbox.unpark(parked.message_id):
                    continue
                action = _action("replay", OUTBOX, parked.message_id, parked.parked_why, actor)
                rows.append(self._record(uow, action, now))
                done.append(parked.message_id)
        for row in rows:
            logged(row)
        return done

    def _replay_broker(
        self, storage: Storage, queue: str, wanted: set[str] | None, actor: str
    ) -> list[str]:
        """Republish each wanted message (confirmed), record it, then take it out of parking."""
        done: list[str] = []
        with self._parking.open(queue) as batch:
            for letter in batch.letters:
                if wanted is not None and letter.message_id not in wanted:
                    continue
                batch.republish(letter)
                with storage.unit_of_work() as uow:
                    replayed = _action("replay", queue, letter.message_id, letter.reason, actor)
                    row = self._record(
                        uow, replace(replayed, headers=letter.original_headers), self._clock()
                    )
                logged(row)
                batch.settle(letter)
                done.append(letter.message_id or "")
        return done

    def drop(self, queue: str, message_id: str, reason: str, actor: str) -> None:
        """Take one parked message out for good; it is kept in the database with `reason`."""
        if not reason.strip():
            raise GatewayError("a drop must say why the message is dropped (--reason)")
        storage = self._database()
        if self._known(queue) == OUTBOX:
            now = self._clock()
            with storage.unit_of_work() as uow:
                found = uow.outbox.parked([message_id])
                if not found or not uow.outbox.drop(message_id, now):
                    raise NotParked(f"no parked message {message_id!r} in the outbox")
                parked = found[0]
                dropped = _action("drop", OUTBOX, message_id, parked.parked_why, actor)
                row = self._record(uow, replace(dropped, reason=reason, body=parked.body), now)
            logged(row)
            return
        with self._parking.open(queue) as batch:
            for letter in batch.letters:
                if letter.message_id != message_id:
                    continue
                # Recorded first: a crash between the two leaves the message parked, never lost.
                with storage.unit_of_work() as uow:
                    dropped = _action("drop", queue, message_id, letter.reason, actor)
                    kept = replace(dropped, reason=reason, body=letter.body, headers=letter.headers)
                    row = self._record(uow, kept, self._clock())
                logged(row)
                batch.settle(letter)
                return
        raise NotParked(f"no parked message {message_id!r} in {queue}")

    def _known(self, queue: str) -> str:
        if queue not in self.queues:
            raise UnknownQueue(f"no queue {queue!r}: choose one of {', '.join(self.queues)}")
        return queue

    def _database(self) -> Storage:
        if self._storage is None:
            raise GatewayError(
                "no gateway database yet: parked messages are replayed and dropped with a"
                " record there; start `gateway run` once"
            )
        return self._storage


def _action(
    action: str, queue: str, message_id: str | None, parked_why: str, actor: str
) -> DlqAction:
    """An admin's action on a parked message, before its reason, body and headers are added."""
    return DlqAction(
        action=action,
        queue=queue,
        message_id=message_id,
        reason=None,
        parked_why=parked_why,
        body=None,
        headers={},
        actor=actor,
    )
