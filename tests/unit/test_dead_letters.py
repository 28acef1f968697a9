"""The parked-message rules (gateway.service.dead_letters) on the in-memory storage and a fake
parking lot: what is put back, recorded, dropped, and what is refused."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.adapters.persistence.memory import MemoryAdmin, MemoryStorage
from gateway.adapters.prometheus_state import StateCollector
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.service.dead_letters import (
    OUTBOX,
    DeadLetters,
    NotParked,
    ParkedLetter,
    UnknownQueue,
)
from gateway.service.overview import overview
from gateway.service.ports import DlqAction, OutboxMessage, OutboxStatus

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
QUEUE = "gateway.orders"


class FakeBatch:
    """A parking queue's messages taken out: what was republished and settled."""

    def __init__(self, lot: FakeParking, queue: str) -> None:
        self._lot = lot
        self._queue = queue

    @property
    def letters(self) -> Sequence[ParkedLetter]:
        return list(self._lot.parked[self._queue])

    def republish(self, letter: ParkedLetter) -> None:
        self._lot.republished.append((self._queue, letter.message_id, letter.original_headers))

    def settle(self, letter: ParkedLetter) -> None:
        self._lot.parked[self._queue].remove(letter)


class FakeParking:
    """Parking queues in memory."""

    def __init__(self, **parked: list[ParkedLetter]) -> None:
        self.parked: dict[str, list[ParkedLetter]] = {QUEUE: [], **parked}
        self.republished: list[tuple[str, str | None, dict[str, Any]]] = []

    def counts(self, queues: Sequence[str]) -> dict[str, int | None]:
        return {q: len(self.parked[q]) if q in self.parked else None for q in queues}

    @contextmanager
    def open(self, queue: str) -> Iterator[FakeBatch]:
        yield FakeBatch(self, queue)


def letter(n: int, reason: str = "no partner holds the account") -> ParkedLetter:
    """A parked order message."""
    return ParkedLetter(
        tag=n,
        message_id=f"P-{n}",
        reason=reason,
        parked_at="2026-11-02T07:00:00+00:00",
        redelivered=False,
        body=b'{"order_id": "P-%d"}' % n,
        content_type="application/json",
        headers={"x-gateway-parked-reason": reason, "trace": "t"},
        original_headers={"trace": "t"},
    )


class RecordingStorage(MemoryStorage):
    """The in-memory storage keeping every admin record (read back for the checks)."""

    def actions(self) -> list[DlqAction]:
        return [action for action, _ in self._state.dlq_actions]


@pytest.fixture
def storage() -> RecordingStorage:
    """A storage with three outbox messages, two of them parked."""
    store = RecordingStorage()
    with store.unit_of_work() as uow:
        for n in (1, 2, 3):
            uow.outbox.enqueue(
                OutboxMessage(f"F-{n}", "gateway.to-bank", "nobank", b"<x/>", {}), NOW
            )
        ids = {p.message.message_id: p.row_id for p in uow.outbox.claim("me", 9, NOW, NOW)}
        uow.outbox.park(ids["F-1"], "message F-1 has no queue to go to", NOW)
        uow.outbox.park(ids["F-2"], "message F-2 has no queue to go to", NOW)
        uow.outbox.release([ids["F-3"]], "me")
    return store


def service(storage: RecordingStorage | None, parking: FakeParking) -> DeadLetters:
    return DeadLetters(storage, parking, [QUEUE, "gateway.from-bank"], clock=lambda: NOW)


def test_counts_name_each_queue_and_the_outbox(storage: RecordingStorage) -> None:
    """Each consumed queue's parked count (None: not declared), the outbox's last."""
    parking = FakeParking(**{QUEUE: [letter(1), letter(2)]})
    assert service(storage, parking).counts() == [
        (QUEUE, 2),
        ("gateway.from-bank", None),
        (OUTBOX, 2),
    ]
    assert service(None, parking).counts() == [(QUEUE, 2), ("gateway.from-bank", None)]


def test_show_gives_reason_and_body_and_keeps_the_messages(storage: RecordingStorage) -> None:
    """`show` reads without taking anything out, on the broker and in the outbox."""
    parking = FakeParking(**{QUEUE: [letter(1), letter(2, "disk full")]})
    shown = service(storage, parking).show(QUEUE, limit=1)
    assert shown.total == 2
    [item] = shown.items
    assert (item.message_id, item.reason, item.preview()) == (
        "P-1",
        "no partner holds the account",
        '{"order_id": "P-1"}',
    )
    assert len(parking.parked[QUEUE]) == 2
    outbox = service(storage, parking).show(OUTBOX)
    assert [(i.message_id, i.to) for i in outbox.items] == [
        ("F-1", "gateway.to-bank/nobank"),
        ("F-2", "gateway.to-bank/nobank"),
    ]


def test_outbox_replay_puts_back_and_records_in_one_transaction(
    storage: RecordingStorage,
) -> None:
    """Replayed outbox messages are pending again, each with its record; a failure while
    recording the second puts back neither (one transaction)."""
    letters = service(storage, FakeParking())
    recorded: list[DlqAction] = []

    def second_fails(self: object, action: DlqAction, now: datetime) -> None:
        recorded.append(action)
        if len(recorded) == 2:
            raise RuntimeError("disk full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MemoryAdmin, "record_dlq_action", second_fails)
        with pytest.raises(RuntimeError):
            letters.replay(OUTBOX, None, actor="an admin")
    assert [a.message_id for a in recorded] == ["F-1", "F-2"]
    assert [p.message_id for p in storage.queries.outbox_parked()] == ["F-1", "F-2"]
    assert storage.actions() == []
    done = letters.replay(OUTBOX, ["F-2", "F-9"], actor="an admin")
    assert (done.message_ids, done.missing) == (["F-2"], ["F-9"])
    assert [p.message_id for p in storage.queries.outbox_parked()] == ["F-1"]
    assert storage.queries.outbox_by_status()[OutboxStatus.PENDING] == 2
    [action] = storage.actions()
    assert (action.action, action.queue, action.message_id, action.actor) == (
        "replay",
        OUTBOX,
        "F-2",
        "an admin",
    )
    assert action.parked_why == "message F-2 has no queue to go to"


def test_broker_replay_republishes_then_records_then_settles(storage: RecordingStorage) -> None:
    """A broker message goes back with its first headers, recorded, out of parking."""
    parking = FakeParking(**{QUEUE: [letter(1), letter(2)]})
    done = service(storage, parking).replay(QUEUE, ["P-2"], actor="an admin")
    assert (done.message_ids, done.missing) == (["P-2"], [])
    assert parking.republished == [(QUEUE, "P-2", {"trace": "t"})]
    assert [m.message_id for m in parking.parked[QUEUE]] == ["P-1"]
    [action] = storage.actions()
    assert (action.action, action.message_id, action.headers) == ("replay", "P-2", {"trace": "t"})


def test_drop_keeps_the_body_and_the_reason(storage: RecordingStorage) -> None:
    """A dropped message is out of line for good, recorded with its body and the reason."""
    parking = FakeParking(**{QUEUE: [letter(1)]})
    letters = service(storage, parking)
    letters.drop(QUEUE, "P-1", "sent again under a new id", actor="an admin")
    letters.drop(OUTBOX, "F-1", "the bank was closed", actor="an admin")
    assert parking.parked[QUEUE] == []
    assert [p.message_id for p in storage.queries.outbox_parked()] == ["F-2"]
    assert storage.queries.outbox_by_status()[OutboxStatus.DROPPED] == 1
    broker, outbox = storage.actions()
    assert (broker.reason, broker.body, broker.parked_why) == (
        "sent again under a new id",
        b'{"order_id": "P-1"}',
        "no partner holds the account",
    )
    assert (outbox.queue, outbox.reason, outbox.body) == (OUTBOX, "the bank was closed", b"<x/>")
    with pytest.raises(NotParked, match="no parked message 'F-1' in the outbox"):
        letters.drop(OUTBOX, "F-1", "again", actor="an admin")
    with pytest.raises(NotParked, match=r"no parked message .P-1. in gateway\.orders"):
        letters.drop(QUEUE, "P-1", "again", actor="an admin")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.show("gateway.order"), "no queue 'gateway.order': choose one of"),
        (lambda d: d.drop(QUEUE, "P-1", "  ", "me"), "must say why"),
        (lambda d: d.replay(QUEUE, [], "me"), "name the messages"),
    ],
)
def test_refusals_are_one_line(storage: RecordingStorage, call: Any, message: str) -> None:
    """A misspelt queue, a drop without a reason, a replay of nothing: refused, said."""
    with pytest.raises(GatewayError, match=message) as refused:
        call(service(storage, FakeParking(**{QUEUE: [letter(1)]})))
    assert "\n" not in str(refused.value)
    assert refused.type is UnknownQueue or "queue" not in message


def test_without_a_database_nothing_is_replayed_or_dropped() -> None:
    """Replaying or dropping with no database to record it in is refused, the message kept."""
    parking = FakeParking(**{QUEUE: [letter(1)]})
    with pytest.raises(GatewayError, match="no gateway database yet"):
        service(None, parking).replay(QUEUE, None, "me")
    with pytest.raises(GatewayError, match="no gateway database yet"):
        service(None, parking).drop(QUEUE, "P-1", "why", "me")
    assert [m.message_id for m in parking.parked[QUEUE]] == ["P-1"]
    assert parking.republished == []


def test_status_metrics_and_dlq_agree_on_what_parked_means(
    storage: RecordingStorage, settings: Settings
) -> None:
    """One parked, one dropped, one pending: `gateway status`, the outbox_parked gauge, `dlq list`
    and `dlq show outbox` all count the one still parked; status shows the dropped one apart."""
    service(storage, FakeParking()).drop(OUTBOX, "F-1", "the bank was closed", "an admin")
    seen = overview(storage.queries, settings, NOW)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(storage.queries, settings, clock=lambda: NOW, max_age=0.0))
    gauge = registry.get_sample_value("kbnn_gateway_outbox_parked")
    listed = dict(service(storage, FakeParking()).counts())[OUTBOX]
    shown = service(storage, FakeParking()).show(OUTBOX)
    assert seen["outbox_parked"] == gauge == listed == shown.total == len(shown.items) == 1
    assert [item.message_id for item in shown.items] == ["F-2"]
    assert (seen["outbox_dropped"], seen["outbox_pending"]) == (1, 1)
