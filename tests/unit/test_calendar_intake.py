"""Intake applies each partner's cut-off and calendar: orders moved, or refused with a reason."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from gateway.adapters.db import Database

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


def test_an_order_for_tet_is_moved_to_the_next_business_day(settings: Settings) -> None:
    """Next-business-day partners keep the order, dated after Tết, and remember the day asked."""
    settings = replace(settings, as_of="2026-01-05T08:00:00+07:00")
    db = Database(settings.db_file)
    [outcome] = IntakeService(db, settings).handle(
        [body(order(requested_execution_date="2026-02-17"))]
    )
    assert outcome.result == "new"
    payload, group = db.query("SELECT payload, group_key FROM orders")[0]
    stored = json.loads(payload)
    assert stored["requested_execution_date"] == "2026-02-23"
    assert stored[MOVED_FROM] == "2026-02-17"
    assert "|2026-02-23|" in group


def test_an_order_on_a_business_day_is_stored_as_sent(settings: Settings) -> None:
    """A business day before the cut-off is kept, and nothing is added to the order."""
    db = Database(settings.db_file)
    IntakeService(db, settings).handle([body(order())])
    stored = json.loads(db.query("SELECT payload FROM orders")[0][0])
    assert stored["requested_execution_date"] == "2026-11-10"
    assert MOVED_FROM not in stored


def test_a_refusing_partner_refuses_with_a_posting(settings: Settings) -> None:
    """With off_day = refuse, a Sunday order is refused, kept, and the treasury told why."""
    settings = refusing(settings)
    db = Database(settings.db_file)
    [outcome] = IntakeService(db, settings).handle(
        [body(order(requested_execution_date="2026-11-15"))]
    )
    assert outcome.result == "invalid"
    assert outcome.reason is not None
    assert "agribank cannot execute on 2026-11-15" in outcome.reason
    assert "Sunday" in outcome.reason
    assert "2026-11-16" in outcome.reason
    assert db.query("SELECT COUNT(*) FROM orders") == [(0,)]
    assert db.query("SELECT order_id FROM invalid_orders") == [("BTXH2611-000001",)]
    [posting] = [json.loads(b) for (b,) in db.query("SELECT body FROM outbox")]
    assert posting["kind"] == "order_invalid"
    assert "Sunday" in posting["reason"]["text"]


def test_after_the_cutoff_the_clock_decides(settings: Settings) -> None:
    """Without a fixed `as_of`, the moment intake receives the order is compared to the cut-off."""
    late = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # 16:00 in Hà Nội, after 15:30
    db = Database(settings.db_file)
    intake = IntakeService(db, replace(settings, as_of=""), clock=lambda: late)
    intake.handle([body(order())])
    stored = json.loads(db.query("SELECT payload FROM orders")[0][0])
    assert stored["requested_execution_date"] == "2026-11-11"


def test_a_redelivered_order_keeps_its_day_even_past_the_cutoff(settings: Settings) -> None:
    """An order accepted before the cut-off and delivered again after it is a plain duplicate."""
    db = Database(settings.db_file)
    early = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)
    late = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    strict = replace(refusing(settings), as_of="")
    IntakeService(db, strict, clock=lambda: early).handle([body(order())])
    [again] = IntakeService(db, strict, clock=lambda: late).handle([body(order())])
    assert again.result == "duplicate"
    assert db.query("SELECT COUNT(*) FROM invalid_orders") == [(0,)]


def test_a_day_already_past_is_named_as_such(settings: Settings) -> None:
    """An order for a day before its arrival is refused (per profile) saying that day has passed."""
    settings = refusing(settings)
    db = Database(settings.db_file)
    [outcome] = IntakeService(db, settings).handle(
        [body(order(requested_execution_date="2026-10-30"))]
    )
    assert outcome.reason is not None
    assert "2026-10-30 has passed" in outcome.reason


@pytest.mark.parametrize("as_of", ["yesterday", "2026-11-02T08:00:00"])
def test_a_bad_as_of_setting_is_refused_at_start(settings: Settings, as_of: str) -> None:
    """as_of must be a date-time with an offset; anything else stops the start, named."""
    with pytest.raises(ConfigError, match=r"as_of .* must be a date-time with an offset"):
        ExecutionDates.from_settings(replace(settings, as_of=as_of))
