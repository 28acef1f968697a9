"""When a partner executes payments: cut-off time, time zone and business-day calendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.domain.calendar import SUPPORTED_CALENDARS
from gateway.profile.reading import Table

# What happens to an order past the cut-off or on a day the bank is closed.
OFF_DAY_RULES = ("next_business_day", "refuse")
CALENDARS = SUPPORTED_CALENDARS


@dataclass(frozen=True, slots=True)
class Schedule:
    """The partner's working hours."""

    timezone: str = "Asia/Ho_Chi_Minh"
    # Local time after which an order is executed on the next business day (or refused).
    cutoff: time = time(15, 30)
    calendar: str = "VN"
    off_day: str = "next_business_day"


def read_schedule(table: Table) -> Schedule:
    """The [schedule] table."""
    zone = table.text("timezone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise table.error("timezone", f"{zone!r} is not a known IANA time zone") from None
    cutoff_text = table.text("cutoff", "15:30")
    try:
        cutoff = time.fromisoformat(cutoff_text)
    except ValueError:
        raise table.error("cutoff", f"{cutoff_text!r} is not a time like 15:30") from None
    if cutoff.tzinfo is not None:
        raise table.error(
            "cutoff", f"{cutoff_text!r} carries an offset; give the local time and set timezone"
        )
    schedule = Schedule(
        timezone=zone,
        cutoff=cutoff,
        calendar=table.choice("calendar", CALENDARS, "VN"),
        off_day=table.choice("off_day", OFF_DAY_RULES, "next_business_day"),
    )
    table.finish()
    return schedule
