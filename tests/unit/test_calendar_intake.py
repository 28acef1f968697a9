"""Intake applies each partner's cut-off and calendar: orders moved, or refused with a reason."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.service.execution import MOVED_FROM, ExecutionDates
from gateway.service.intake import IntakeService
from tests.unit.test_intake import body, order


def refusing(settings: Settings) -> Settings:
    """Settings whose agribank profile refuses orders it cannot execute on the day asked."""
    agribank = settings.partners["agribank"]
    profile = replace(agribank, schedule=replace(agribank.schedule, off_day="refuse"))
    return replace(settings, partners={**settings.partners, "agribank": profile})


def stored_payload(storage: MemoryStorage) -> str:
    """The payload of the one order stored."""
    [stored] = storage.snapshot().orders.values()
    return stored.payload


def test_an_order_for_tet_is_moved_to_the_next_business_day(settings: Settings) -> None:
    """Next-business-day partners keep the order, dated after Tết, and remember the day asked."""
    settings = replace(settings, as_of="2026-01-05T08:00:00+07:00")
    storage = MemoryStorage()
    [outcome] = IntakeService(storage, settings).handle(
        [body(order(requested_execution_date="2026-02-17"))]
    )
    assert outcome.result == "new"
    [kept] = storage.snapshot().orders.values()
    stored = json.loads(kept.payload)
    assert stored["requested_execution_date"] == "2026-02-23"
    assert stored[MOVED_FROM] == "2026-02-17"
    assert "|2026-02-23|" in kept.group_key


def test_an_order_on_a_business_day_is_stored_as_sent(settings: Settings) -> None:
    """A business day before the cut-off is kept, and nothing is added to the order."""
    storage = MemoryStorage()
    IntakeService(storage, settings).handle([body(order())])
    stored = json.loads(stored_payload(storage))
    assert stored["requested_execution_date"] == "2026-11-10"
    assert MOVED_FROM not in stored


def test_a_refusing_partner_refuses_with_a_posting(settings: Settings) -> None:
    """With off_day = refuse, a Sunday order is refused, kept, and the treasury told why."""
    settings = refusing(settings)
    storage = MemoryStorage()
    [outcome] = IntakeService(storage, settings).handle(
        [body(order(requested_execution_date="2026-11-15"))]
    )
    assert outcome.result == "invalid"
    assert outcome.reason is not None
    assert "agribank cannot execute on 2026-11-15" in outcome.reason
    assert "Sunday" in outcome.reason
    assert "2026-11-16" in outcome.reason
    state = storage.snapshot()
    assert len(state.orders) == 0
    assert [row.order_id for row in state.invalid_orders.values()] == ["BTXH2611-000001"]
    [posting] = [json.loads(row.message.body) for row in state.outbox.values()]
    assert posting["kind"] == "order_invalid"
    assert "Sunday" in posting["reason"]["text"]


def test_after_the_cutoff_the_clock_decides(settings: Settings) -> None:
    """Without a fixed `as_of`, the moment intake receives the order is compared to the cut-off."""
    late = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # 16:00 in Hà Nội, after 15:30
    storage = MemoryStorage()
    intake = IntakeService(storage, replace(settings, as_of=""), clock=lambda: late)
    intake.handle([body(order())])
    stored = json.loads(stored_payload(storage))
    assert stored["requested_execution_date"] == "2026-11-11"


def test_a_redelivered_order_keeps_its_day_even_past_the_cutoff(settings: Settings) -> None:
    """An order accepted before the cut-off and delivered again after it is a plain duplicate."""
    storage = MemoryStorage()
    early = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)
    late = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    strict = replace(refusing(settings), as_of="")
    IntakeService(storage, strict, clock=lambda: early).handle([body(order())])
    [again] = IntakeService(storage, strict, clock=lambda: late).handle([body(order())])
    assert again.result == "duplicate"
    assert len(storage.snapshot().invalid_orders) == 0


def test_a_day_already_past_is_named_as_such(settings: Settings) -> None:
    """An order for a day before its arrival is refused (per profile) saying that day has passed."""
    settings = refusing(settings)
    storage = MemoryStorage()
    [outcome] = IntakeService(storage, settings).handle(
        [body(order(requested_execution_date="2026-10-30"))]
    )
    assert outcome.reason is not None
    assert "2026-10-30 has passed" in outcome.reason


@pytest.mark.parametrize("as_of", ["yesterday", "2026-11-02T08:00:00"])
def test_a_bad_as_of_setting_is_refused_at_start(settings: Settings, as_of: str) -> None:
    """as_of must be a date-time with an offset; anything else stops the start, named."""
    with pytest.raises(ConfigError, match=r"as_of .* must be a date-time with an offset"):
        ExecutionDates.from_settings(replace(settings, as_of=as_of))


def test_one_scheduler_decides_again_for_another_arrival(settings: Settings) -> None:
    """Decisions are remembered by arrival moment and day: the same scheduler, asked for the
    same day before and after the cut-off, keeps the day and then moves it."""
    from gateway.domain.orders import order_from_payload  # noqa: PLC0415

    profile = settings.partners["agribank"]
    dates = ExecutionDates()
    payload = order(requested_execution_date="2026-11-10")  # a Tuesday
    domain = order_from_payload(payload)
    morning = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
    evening = datetime(2026, 11, 10, 13, 0, tzinfo=UTC)  # 20:00, past the cut-off
    for _ in range(2):
        kept, _order = dates.schedule(profile, payload, domain, morning)
        assert kept["requested_execution_date"] == "2026-11-10"
        moved, _order = dates.schedule(profile, payload, domain, evening)
        assert moved["requested_execution_date"] == "2026-11-11"
