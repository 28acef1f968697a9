"""Intake: valid orders stored once, duplicates no-ops, conflicts and bad input quarantined."""

from __future__ import annotations

import json
import time
import unicodedata
from decimal import Decimal
from typing import Any

import pytest

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.config import Settings
from gateway.contracts import _nfc, parse_order_json
from gateway.domain.orders import canonical_json, content_hash
from gateway.service.intake import IntakeService
from tests.doubles import Msg


def order(**changes: Any) -> dict[str, Any]:
    """A valid social-assistance order, changed as asked."""
    base: dict[str, Any] = {
        "schema": "payment-order/1",
        "order_id": "BTXH2611-000001",
        "batch_ref": "BTXH-PL-2026-11",
        "category": "social_benefit",
        "debtor": {
            "name": "Kho bạc Nhà nước Phú Lương",
            "account": {"number": "7411058271001", "scheme": "BBAN"},
            "agent_bic": "VBAAVNVX",
        },
        "creditor": {
            "name": "Nguyễn Thị Hồng Nhung",
            "account": {"number": "8800123456789", "scheme": "BBAN"},
            "agent_bic": "VBAAVNVX",
        },
        "amount": "540000",
        "currency": "VND",
        "requested_execution_date": "2026-11-10",
        "remittance": "Trợ cấp xã hội tháng 11/2026 - xã Yên Ninh",
    }
    base.update(changes)
    return base


def body(payload: dict[str, Any]) -> Msg:
    """The order as bytes on the wire."""
    return Msg(json.dumps(payload, ensure_ascii=False).encode())


def postings(storage: MemoryStorage) -> list[dict[str, Any]]:
    """The bodies of every outbox message, oldest first."""
    return [json.loads(row.message.body) for row in storage.snapshot().outbox.values()]


@pytest.fixture
def storage() -> MemoryStorage:
    """A fresh storage in memory."""
    return MemoryStorage()


@pytest.fixture
def intake(storage: MemoryStorage, settings: Settings) -> IntakeService:
    """The intake service on that storage."""
    return IntakeService(storage, settings)


def test_valid_order_is_stored_as_received(intake: IntakeService, storage: MemoryStorage) -> None:
    """A valid order lands in state received, routed to the partner holding the debtor account."""
    [outcome] = intake.handle([body(order())])
    assert outcome.result == "new"
    orders = storage.snapshot().orders.values()
    assert [(o.state, o.partner, o.amount) for o in orders] == [
        ("received", "agribank", Decimal("540000"))
    ]


def test_an_order_is_stored_as_its_canonical_json(
    intake: IntakeService, storage: MemoryStorage
) -> None:
    """The stored payload is the canonical JSON the content hash is taken of (one encoding
    for both), and reads back as the order; the same content in another key order, layout and
    escaping is the same order."""
    message = body(order())
    payload = parse_order_json(message.body)  # in NFC
    intake.handle([message])
    [stored] = storage.snapshot().orders.values()
    assert stored.payload == canonical_json(payload)
    assert json.loads(stored.payload) == payload
    assert content_hash(payload, stored.payload) == content_hash(payload)
    shuffled = json.dumps(dict(reversed(payload.items())), indent=2, ensure_ascii=True)
    [again] = intake.handle([Msg(shuffled.encode())])
    assert again.result == "duplicate"


def test_same_order_twice_is_a_no_op(intake: IntakeService, storage: MemoryStorage) -> None:
    """Same id and same content: stored once, no posting."""
    outcomes = intake.handle([body(order()), body(order())])
    assert [o.result for o in outcomes] == ["new", "duplicate"]
    state = storage.snapshot()
    assert len(state.orders) == 1
    assert len(state.outbox) == 0


def test_same_id_different_content_is_a_conflict(
    intake: IntakeService, storage: MemoryStorage
) -> None:
    """Same id, other amount: refused as a conflict, quarantined and reported."""
    intake.handle([body(order())])
    [outcome] = intake.handle([body(order(amount="999000"))])
    assert outcome.result == "invalid"
    assert "different content" in (outcome.reason or "")
    assert [o.amount for o in storage.snapshot().orders.values()] == [Decimal("540000")]
    [data] = postings(storage)
    assert data["kind"] == "order_invalid"
    assert data["reason"]["code"] == "DUPL"
    # The live order keeps its id to itself: the refusal names the claimed id apart.
    assert data["order_id"] is None
    assert data["refused_order_id"] == "BTXH2611-000001"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"schema": "payment-order/1", "order_id": ', "not JSON"),
        # A lone surrogate is no text, NaN no JSON number: both refused as not JSON.
        (
            json.dumps(order(creditor={**order()["creditor"], "name": "A \ud800 B"})).encode(),
            "not JSON: no low surrogate in string at line 1",
        ),
        (json.dumps(order()).replace('"VND"', "NaN").encode(), "not JSON"),
        (json.dumps(order(amount="606000.50")).encode(), "VND allows 0"),
        (json.dumps(order(amount=606000)).encode(), "amount"),
        (json.dumps(order(category="lottery")).encode(), "category"),
        (json.dumps(order(order_id="X" * 36)).encode(), "order_id"),
        (
            json.dumps({**order(), "creditor": {"name": "A", "agent_bic": "VBAAVNVX"}}).encode(),
            "account",
        ),
        (json.dumps(order(requested_execution_date="2026-02-30")).encode(), "date"),
        (
            json.dumps(
                order(creditor={**order()["creditor"], "name": "Nguyễn Văn\u0001 An"})
            ).encode(),
            "creditor.name contains character U+0001",
        ),
        (
            json.dumps(
                order(
                    creditor={**order()["creditor"], "account": {"iban": "DE00370400440532013000"}}
                )
            ).encode(),
            "fails its check digits",
        ),
        (json.dumps(order(budget={"chapter": "6" * 200})).encode(), "budget/chapter"),
        (json.dumps(order(partner="nobank")).encode(), "not configured"),
        (
            json.dumps(
                order(debtor={"name": "X", "account": {"number": "1"}, "agent_bic": "VBAAVNVX"})
            ).encode(),
            "no partner holds",
        ),
    ],
)
def test_invalid_orders_are_refused_with_reason_and_kept(
    intake: IntakeService, storage: MemoryStorage, raw: bytes, needle: str
) -> None:
    """Each bad order is quarantined with a clear reason and an order_invalid posting."""
    [outcome] = intake.handle([Msg(raw)])
    assert outcome.result == "invalid"
    assert needle in (outcome.reason or ""), outcome.reason
    assert [row.raw for row in storage.snapshot().invalid_orders.values()] == [raw]
    [posting] = postings(storage)
    assert needle in posting["reason"]["text"]


def test_same_bad_body_twice_is_reported_once(
    intake: IntakeService, storage: MemoryStorage
) -> None:
    """A redelivered bad message does not post a second refusal."""
    intake.handle([Msg(b"not json"), Msg(b"not json")])
    assert len(postings(storage)) == 1


def test_a_valid_iban_is_accepted(intake: IntakeService, storage: MemoryStorage) -> None:
    """An IBAN with correct check digits is stored as the creditor account."""
    creditor = {**order()["creditor"], "account": {"iban": "DE89370400440532013000"}}
    [outcome] = intake.handle([body(order(creditor=creditor))])
    assert outcome.result == "new", outcome.reason


def test_lengths_are_counted_after_nfc(intake: IntakeService, storage: MemoryStorage) -> None:
    """A 130-character name sent decomposed (NFD, over 140 code points) is accepted, in NFC."""
    name = ("Nguyễn Thị Hồng Nhung " * 6)[:130]
    decomposed = unicodedata.normalize("NFD", name)
    assert len(decomposed) > 140
    creditor = {**order()["creditor"], "name": decomposed}
    [outcome] = intake.handle([body(order(creditor=creditor))])
    assert outcome.result == "new", outcome.reason
    [stored] = storage.snapshot().orders.values()
    assert json.loads(stored.payload)["creditor"]["name"] == name


def test_deeply_nested_json_is_refused_not_parked(
    intake: IntakeService, storage: MemoryStorage
) -> None:
    """JSON nested past Python's recursion limit is an invalid order with a reason."""
    [outcome] = intake.handle([Msg(b"[" * 100_000)])
    assert outcome.result == "invalid"
    assert "nested too deeply" in (outcome.reason or "")


def test_an_escaped_order_nested_past_the_stack_is_refused_not_parked(
    intake: IntakeService, storage: MemoryStorage
) -> None:
    """With `\\u` escapes every decoded string is put in NFC by a walk of the value: nested
    deeper than Python's stack (within orjson's 1,024 levels), it is refused with a reason."""
    body = b'{"order_id": "X", "a": ' + b"[" * 600 + b'"\\u00e9"' + b"]" * 600 + b"}"
    [outcome] = intake.handle([Msg(body)])
    assert outcome.result == "invalid"
    assert "nested too deeply" in (outcome.reason or "")


@pytest.mark.parametrize("ensure_ascii", [False, True], ids=["as-written", "escaped"])
def test_an_order_is_read_in_nfc_whether_written_or_escaped(ensure_ascii: bool) -> None:
    """Decomposed Vietnamese, written as it is or as `\\u` escapes (and in a key's value
    starting with a combining mark), reads as the same NFC payload."""
    name = unicodedata.normalize("NFD", "Nguyễn Thị Hồng Nhung")
    remittance = "\u0301" + unicodedata.normalize("NFD", "Trợ cấp tháng 11")
    payload = order(creditor={**order()["creditor"], "name": name}, remittance=remittance)
    text = json.dumps(payload, ensure_ascii=ensure_ascii)
    read = parse_order_json(text.encode())
    assert read["creditor"]["name"] == "Nguyễn Thị Hồng Nhung"
    assert read["remittance"] == unicodedata.normalize("NFC", remittance)
    assert read == {**_nfc(json.loads(text)), "priority": "normal"}  # the contract's default


def test_intake_is_idle_only_with_no_chunk_in_hand_for_the_time_asked(
    intake: IntakeService, storage: MemoryStorage
) -> None:
    """What lets the main role apply the banks' files: no chunk in hand, none done lately."""
    assert not intake.idle_for(60)  # a start is not idle yet
    seen: list[bool] = []
    real_run_unit = storage.run_unit

    def watching(step: Any) -> Any:
        seen.append(intake.idle_for(0))  # a chunk in hand is busy, however long it takes
        return real_run_unit(step)

    storage.run_unit = watching  # type: ignore[method-assign]
    intake.handle([body(order())])
    assert seen == [False]
    time.sleep(0.05)
    assert intake.idle_for(0.02)
    assert not intake.idle_for(60)
