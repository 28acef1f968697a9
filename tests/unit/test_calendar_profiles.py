"""A partner's own closing days, half days and cut-off boundary, as intake applies them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, time

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.config import Settings
from gateway.service.execution import MOVED_FROM
from gateway.service.intake import IntakeService
from tests.unit.test_intake import body, order


def _with_schedule(settings: Settings, as_of: str, **schedule: object) -> Settings:
    agribank = settings.partners["agribank"]
    profile = replace(agribank, schedule=replace(agribank.schedule, **schedule))
    return replace(settings, partners={**settings.partners, "agribank": profile}, as_of=as_of)


def _stored_day(settings: Settings, requested: str) -> dict[str, str]:
    storage = MemoryStorage()
    IntakeService(storage, settings).handle([body(order(requested_execution_date=requested))])
    stored = storage.queries.order("BTXH2611-000001")
    assert stored is not None
    payload: dict[str, str] = json.loads(stored.payload)
    return payload


def test_an_exclusive_cutoff_and_a_closing_day_move_the_order(settings: Settings) -> None:
    """Exactly at an exclusive cut-off misses the day; the bank's own closing day is skipped."""
    settings = _with_schedule(
        settings,
        "2026-11-10T15:30:00+07:00",
        cutoff_boundary="exclusive",
        closed_days=frozenset({date(2026, 11, 11)}),
    )
    stored = _stored_day(settings, "2026-11-10")
    assert stored["requested_execution_date"] == "2026-11-12"
    assert stored[MOVED_FROM] == "2026-11-10"


def test_an_inclusive_cutoff_keeps_the_day(settings: Settings) -> None:
    """The same moment with the shipped (inclusive) boundary keeps the day asked for."""
    settings = _with_schedule(settings, "2026-11-10T15:30:00+07:00", cutoff_boundary="inclusive")
    stored = _stored_day(settings, "2026-11-10")
    assert stored["requested_execution_date"] == "2026-11-10"
    assert MOVED_FROM not in stored


def test_a_half_day_cutoff_reaches_intake(settings: Settings) -> None:
    """On the bank's half day, an order after its early cut-off is for the next business day."""
    settings = _with_schedule(
        settings,
        "2026-11-12T11:00:00+07:00",
        half_days=((date(2026, 11, 12), time(10, 0)),),
    )
    stored = _stored_day(settings, "2026-11-12")
    assert stored["requested_execution_date"] == "2026-11-13"


def test_a_target2_partner_refuses_good_friday(settings: Settings) -> None:
    """A partner on the ECB calendar that refuses off days refuses Good Friday, naming it."""
    settings = _with_schedule(
        settings, "2026-03-30T08:00:00+07:00", calendar="ECB", off_day="refuse"
    )
    storage = MemoryStorage()
    [outcome] = IntakeService(storage, settings).handle(
        [body(order(requested_execution_date="2026-04-03"))]
    )
    assert outcome.result == "invalid"
    assert outcome.reason is not None
    assert "a closing day of the ECB calendar (Good Friday)" in outcome.reason
    assert "the next business day is 2026-04-07" in outcome.reason
