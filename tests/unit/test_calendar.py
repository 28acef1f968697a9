"""Business days and cut-offs on real Vietnamese dates: Tết, Reunification Day, National Day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.domain.calendar import BusinessCalendar, Cutoff, execution_date

VN = BusinessCalendar("VN")
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CUTOFF = Cutoff(time(15, 30), HANOI)
# A moment long before any of the days below, so that only the calendar decides.
EARLY = datetime(2024, 12, 1, 8, 0, tzinfo=HANOI)


def executes(requested: date, received_at: datetime = EARLY) -> date:
    """The day an order for `requested`, received at `received_at`, is executed on."""
    return execution_date(requested, received_at, CUTOFF, VN).execution


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 27),  # 29 Tết
        date(2025, 1, 28),  # Lunar New Year's Eve
        date(2025, 1, 29),  # Tết
        date(2025, 1, 30),
        date(2025, 1, 31),
    ],
)
def test_tet_2025_is_closed(day: date) -> None:
    """Tết 2025 (Monday 27 to Friday 31 January) has no business day."""
    assert not VN.is_business_day(day)
    assert VN.holiday(day)


def test_tet_2025_orders_move_to_the_monday_after() -> None:
    """An order for Tết 2025 is executed on Monday 3 February; the Friday before is open."""
    assert executes(date(2025, 1, 27)) == date(2025, 2, 3)
    assert executes(date(2025, 1, 31)) == date(2025, 2, 3)
    assert executes(date(2025, 1, 24)) == date(2025, 1, 24)


def test_tet_2026_is_closed_all_week() -> None:
    """Tết 2026 takes Monday 16 to Friday 20 February; orders go to Monday 23."""
    for offset in range(5):
        day = date(2026, 2, 16) + timedelta(days=offset)
        assert not VN.is_business_day(day), day
        assert executes(day) == date(2026, 2, 23)
    assert VN.is_business_day(date(2026, 2, 13))
    assert VN.is_business_day(date(2026, 2, 23))


def test_reunification_day_and_labour_day_2025() -> None:
    """30 April and 1 May 2025, and the 2 May day off swapped for a Saturday, are closed."""
    for day in (date(2025, 4, 30), date(2025, 5, 1), date(2025, 5, 2)):
        assert not VN.is_business_day(day), day
    assert executes(date(2025, 4, 30)) == date(2025, 5, 5)
    assert VN.is_business_day(date(2025, 4, 29))


def test_reunification_day_and_labour_day_2026() -> None:
    """30 April (Thursday) and 1 May 2026 (Friday): orders go to Monday 4 May."""
    assert executes(date(2026, 4, 30)) == date(2026, 5, 4)
    assert executes(date(2026, 5, 1)) == date(2026, 5, 4)


def test_national_day_2025_with_its_adjacent_day() -> None:
    """2 September 2025 and the day the law adds before it (Monday 1) are closed."""
    assert not VN.is_business_day(date(2025, 9, 1))
    assert not VN.is_business_day(date(2025, 9, 2))
    assert executes(date(2025, 9, 1)) == date(2025, 9, 3)


def test_national_day_2026_long_weekend() -> None:
    """2026: the swapped Monday 31 August, then 1 and 2 September; Thursday 3 is open."""
    for day in (date(2026, 8, 31), date(2026, 9, 1), date(2026, 9, 2)):
        assert not VN.is_business_day(day), day
    assert executes(date(2026, 8, 29)) == date(2026, 9, 3)  # a Saturday before it all


def test_weekends_move_to_monday_and_say_why() -> None:
    """A Saturday order executes on Monday; the reason names the weekday."""
    decided = execution_date(date(2026, 11, 7), EARLY, CUTOFF, VN)
    assert decided.execution == date(2026, 11, 9)
    assert decided.moved
    assert "Saturday" in decided.reason


def test_a_holiday_reason_names_the_holiday() -> None:
    """The reason for moving an order off a holiday says which holiday it is."""
    decided = execution_date(date(2026, 2, 17), EARLY, CUTOFF, VN)
    assert "public holiday" in decided.reason
    assert "Lunar New Year" in decided.reason


def test_exactly_at_the_cutoff_makes_the_day() -> None:
    """Received at 15:30:00 local (08:30 UTC) on the day itself: executed that day."""
    at_cutoff = datetime(2026, 11, 10, 8, 30, 0, tzinfo=UTC)
    decided = execution_date(date(2026, 11, 10), at_cutoff, CUTOFF, VN)
    assert decided.execution == date(2026, 11, 10)
    assert not decided.moved
    assert decided.reason == ""


def test_one_second_after_the_cutoff_is_the_next_day() -> None:
    """Received at 15:30:01 local: executed the next business day, with the cut-off named."""
    late = datetime(2026, 11, 10, 8, 30, 1, tzinfo=UTC)
    decided = execution_date(date(2026, 11, 10), late, CUTOFF, VN)
    assert decided.execution == date(2026, 11, 11)
    assert "after the cut-off 15:30" in decided.reason


def test_a_microsecond_after_the_cutoff_is_late() -> None:
    """The cut-off is a moment, not a minute: 15:30:00.000001 is after it."""
    late = datetime(2026, 11, 10, 15, 30, 0, 1, tzinfo=HANOI)
    assert executes(date(2026, 11, 10), late) == date(2026, 11, 11)


def test_utc_evening_is_already_the_next_morning_in_hanoi() -> None:
    """23:00 UTC on the 10th is 06:00 on the 11th in Hà Nội: an order for the 10th is late."""
    evening = datetime(2026, 11, 10, 23, 0, tzinfo=UTC)
    assert executes(date(2026, 11, 10), evening) == date(2026, 11, 11)
    assert executes(date(2026, 11, 11), evening) == date(2026, 11, 11)  # before that cut-off


def test_another_offset_is_converted_too() -> None:
    """A time stamped in another zone (UTC-5) is converted before the cut-off is compared."""
    new_york_morning = datetime(2026, 11, 10, 3, 0, tzinfo=timezone(timedelta(hours=-5)))
    # 03:00-05:00 is 15:00 in Hà Nội: still before the cut-off.
    assert executes(date(2026, 11, 10), new_york_morning) == date(2026, 11, 10)


def test_late_on_friday_goes_to_monday() -> None:
    """After the cut-off on Friday 20 November 2026, the next business day is Monday 23."""
    late_friday = datetime(2026, 11, 20, 16, 0, tzinfo=HANOI)
    assert executes(date(2026, 11, 20), late_friday) == date(2026, 11, 23)


def test_late_before_a_holiday_skips_it() -> None:
    """Late on Friday 13 February 2026, before Tết: executed on Monday 23 February."""
    late = datetime(2026, 2, 13, 17, 0, tzinfo=HANOI)
    decided = execution_date(date(2026, 2, 13), late, CUTOFF, VN)
    assert decided.execution == date(2026, 2, 23)
    assert "cut-off" in decided.reason and "Lunar New Year" in decided.reason


def test_a_future_day_is_kept_whatever_the_time() -> None:
    """An order for next Tuesday received late today keeps its day."""
    late = datetime(2026, 11, 10, 23, 59, tzinfo=HANOI)
    assert executes(date(2026, 11, 17), late) == date(2026, 11, 17)


def test_a_naive_time_is_refused() -> None:
    """Times are timezone-aware: a naive arrival time is a programming error, said plainly."""
    with pytest.raises(ValueError, match="timezone-aware"):
        CUTOFF.first_day(datetime(2026, 11, 10, 8, 0))  # noqa: DTZ001 - the point of the test


# --- other calendars, the bank's own closing days and half days, the cut-off boundary --------


def test_target2_closes_on_good_friday_and_easter_monday() -> None:
    """A EUR partner on the ECB (TARGET2) calendar moves Good Friday 2026 to the Tuesday after."""
    target2 = BusinessCalendar("ECB")
    decided = execution_date(date(2026, 4, 3), EARLY, CUTOFF, target2)
    assert decided.execution == date(2026, 4, 7)
    assert "a closing day of the ECB calendar (Good Friday)" in decided.reason
    assert "Easter Monday" in decided.reason
    # Vietnam's days mean nothing to TARGET2: 2 September 2026 is a business day there.
    assert target2.is_business_day(date(2026, 9, 2))
    assert not VN.is_business_day(date(2026, 9, 2))


def test_a_country_calendar_other_than_vietnam() -> None:
    """A USD partner on the US calendar is closed on Independence Day observed (3 July 2026)."""
    assert BusinessCalendar("US").closed_because(date(2026, 7, 3)) == (
        "a public holiday in US (Independence Day (observed))"
    )


def test_a_country_whose_weekend_is_friday_and_saturday() -> None:
    """The weekend is the calendar's own: Saudi Arabia rests on Friday and Saturday."""
    saudi = BusinessCalendar("SA")
    assert saudi.closed_because(date(2026, 11, 13)) == "a Friday"
    assert saudi.is_business_day(date(2026, 11, 15))  # a Sunday


def test_the_banks_own_closing_day_moves_the_order() -> None:
    """A closing day listed in the profile closes the bank like a holiday, and says so."""
    calendar = BusinessCalendar("VN", frozenset({date(2026, 11, 20)}))
    decided = execution_date(date(2026, 11, 20), EARLY, CUTOFF, calendar)
    assert decided.execution == date(2026, 11, 23)
    assert "a closing day of the bank (its profile's closed_days)" in decided.reason


def test_a_half_day_has_its_earlier_cutoff() -> None:
    """On a half day the bank's earlier cut-off decides; other days keep the daily one."""
    cutoff = Cutoff(time(15, 30), HANOI, half_days={date(2026, 12, 31): time(11, 0)})
    before = datetime(2026, 12, 31, 10, 59, tzinfo=HANOI)
    after = datetime(2026, 12, 31, 11, 30, tzinfo=HANOI)
    assert execution_date(date(2026, 12, 31), before, cutoff, VN).execution == date(2026, 12, 31)
    late = execution_date(date(2026, 12, 31), after, cutoff, VN)
    assert late.execution == date(2027, 1, 4)  # New Year's Day, then the weekend
    assert "after the cut-off 11:00 for 2026-12-31" in late.reason
    other = datetime(2026, 12, 30, 15, 0, tzinfo=HANOI)
    assert execution_date(date(2026, 12, 30), other, cutoff, VN).execution == date(2026, 12, 30)


@pytest.mark.parametrize(("inclusive", "expected"), [(True, 10), (False, 11)])
def test_the_cutoff_boundary_is_the_profiles(inclusive: bool, expected: int) -> None:
    """Exactly at the cut-off: inclusive keeps the day, exclusive does not."""
    cutoff = Cutoff(time(15, 30), HANOI, inclusive=inclusive)
    at = datetime(2026, 11, 10, 15, 30, tzinfo=HANOI)
    decided = execution_date(date(2026, 11, 10), at, cutoff, VN)
    assert decided.execution == date(2026, 11, expected)
    if not inclusive:
        assert "at or after the cut-off 15:30" in decided.reason
