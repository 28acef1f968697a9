"""When a partner executes payments: cut-off, time zone, business-day calendar and the bank's
own closing days and half days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.domain.calendar import is_known_calendar
from gateway.profile.reading import Table

# What happens to an order past the cut-off or on a day the bank is closed.
OFF_DAY_RULES = ("next_business_day", "refuse")
# Whether an order received exactly at the cut-off still makes the day.
CUTOFF_BOUNDARIES = ("inclusive", "exclusive")


@dataclass(frozen=True, slots=True)
class Schedule:
    """The partner's working hours."""

    timezone: str = "Asia/Ho_Chi_Minh"
    # Local time after which an order is executed on the next business day (or refused).
    cutoff: time = time(15, 30)
    # Any country code or financial market the `holidays` library knows: VN, US, DE, ECB, XNYS...
    calendar: str = "VN"
    off_day: str = "next_business_day"
    # inclusive: an order received exactly at the cut-off still makes the day; exclusive: not.
    cutoff_boundary: str = "inclusive"
    # The bank's own closing days, beyond its calendar's holidays.
    closed_days: frozenset[date] = field(default_factory=frozenset)
    # The bank's half days, each with its earlier cut-off.
    half_days: tuple[tuple[date, time], ...] = ()


def read_schedule(table: Table) -> Schedule:
    """The [schedule] table (with its [[schedule.half_days]])."""
    zone = table.text("timezone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise table.error("timezone", f"{zone!r} is not a known IANA time zone") from None
    calendar = table.text("calendar", "VN")
    if not is_known_calendar(calendar):
        raise table.error(
            "calendar",
            f"{calendar!r} is neither a country code nor a financial market the holidays library"
            " knows (e.g. VN, US, DE, or ECB for TARGET2)",
        )
    half_days: dict[date, time] = {}
    for entry in table.tables("half_days"):
        day = _date(entry, "date", entry.raw("date"))
        if day in half_days:
            raise entry.error("date", f"{day.isoformat()} is a half day twice")
        half_days[day] = _time(entry, "cutoff")
        entry.finish()
    closed = frozenset(_date(table, "closed_days", value) for value in _list(table, "closed_days"))
    both = sorted(closed & half_days.keys())
    if both:
        raise table.error("closed_days", f"{both[0].isoformat()} is also a half day")
    schedule = Schedule(
        timezone=zone,
        cutoff=_time(table, "cutoff", "15:30"),
        calendar=calendar,
        off_day=table.choice("off_day", OFF_DAY_RULES, "next_business_day"),
        cutoff_boundary=table.choice("cutoff_boundary", CUTOFF_BOUNDARIES, "inclusive"),
        closed_days=closed,
        half_days=tuple(sorted(half_days.items())),
    )
    table.finish()
    return schedule


def _time(table: Table, key: str, default: str | None = None) -> time:
    """A local time `HH:MM`, without offset."""
    text = table.text(key, default)
    try:
        value = time.fromisoformat(text)
    except ValueError:
        raise table.error(key, f"{text!r} is not a time like 15:30") from None
    if value.tzinfo is not None:
        raise table.error(key, f"{text!r} carries an offset; give the local time and set timezone")
    return value


def _list(table: Table, key: str) -> list[Any]:
    value = table.raw(key, [])
    if not isinstance(value, list):
        raise table.error(key, f"must be a list of dates like [2026-12-31], got {value!r}")
    return value


def _date(table: Table, key: str, value: Any) -> date:
    """A TOML date (2026-12-31) or a string holding one."""
    if value is None:
        raise table.error(key, "is required")
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise table.error(key, f"{value!r} is not a date like 2026-12-31")
