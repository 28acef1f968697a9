"""Business days and cut-offs: on which day a partner bank executes a payment order.

A bank executes on business days only: its market's working days (Monday to Friday in most),
except the public holidays of its country or the closing days of its financial market, and except
the extra closing days its profile lists. Holidays (Vietnam's Tết and the other lunar-calendar
days, the days off the government moves around them, TARGET2's closing days, ...) come from the
maintained `holidays` library, not from a hand-kept list. An order received after the partner's
cut-off (earlier on the bank's half days), in the partner's time zone, is for the next business
day at the earliest. Pure computation: no clock, no files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cache

import holidays

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@cache
def _markets() -> frozenset[str]:
    """Financial markets the holiday library knows (ECB for TARGET2, XNYS, ...)."""
    return frozenset(holidays.list_supported_financial())


@cache
def _countries() -> frozenset[str]:
    """Countries (ISO 3166 alpha-2 codes) the holiday library knows."""
    return frozenset(holidays.list_supported_countries())


def is_known_calendar(name: str) -> bool:
    """Whether `name` is a country code or a financial market the holiday library knows."""
    return name in _countries() or name in _markets()


def is_market(name: str) -> bool:
    """Whether `name` is a financial market's calendar (not a country's)."""
    return name in _markets() and name not in _countries()


@cache
def _holidays(name: str, year: int) -> holidays.HolidayBase:
    if is_market(name):
        return holidays.financial_holidays(name, years=year)
    return holidays.country_holidays(name, years=year)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """The days a bank executes payments: its country's or market's, less its own closing days."""

    # A country code (VN, US, DE, ...) or a financial market (ECB for TARGET2, XNYS, ...).
    country: str = "VN"
    # The bank's own extra closing days (beyond the calendar's holidays and weekends).
    closed: frozenset[date] = field(default_factory=frozenset)

    def holiday(self, day: date) -> str | None:
        """The public holiday's (or market closing day's) name on `day`, or None."""
        return _holidays(self.country, day.year).get(day)

    def closed_because(self, day: date) -> str | None:
        """Why the bank is closed on `day` (weekend, holiday, its own closing day), or None on a
        business day."""
        if day in self.closed:
            return "a closing day of the bank (its profile's closed_days)"
        name = self.holiday(day)
        if name:
            if is_market(self.country):
                return f"a closing day of the {self.country} calendar ({name})"
            return f"a public holiday in {self.country} ({name})"
        if day.weekday() in _holidays(self.country, day.year).weekend:
            return f"a {_WEEKDAYS[day.weekday()]}"
        return None

    def is_business_day(self, day: date) -> bool:
        """Whether the bank executes payments on `day`."""
        return self.closed_because(day) is None

    def next_business_day(self, day: date) -> date:
        """`day` itself when it is a business day, else the first one after it."""
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day


@dataclass(frozen=True, slots=True)
class Cutoff:
    """A partner's daily cut-off: orders received later are for a later day."""

    at: time
    zone: tzinfo
    # True: an order received exactly at the cut-off still makes the day; False: it does not.
    inclusive: bool = True
    # The bank's half days: the earlier cut-off of each.
    half_days: Mapping[date, time] = field(default_factory=dict)

    def on(self, day: date) -> time:
        """The cut-off of `day` (a half day's own, else the daily one)."""
        return self.half_days.get(day, self.at)

    def first_day(self, received_at: datetime) -> date:
        """The first day an order received at `received_at` can be executed on, in local time.

        At the cut-off itself the order makes the day when the cut-off is inclusive, and not when
        it is exclusive; a moment later it never does.
        """
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        local = received_at.astimezone(self.zone)
        today = local.date()
        limit = self.on(today)
        makes_it = local.time() <= limit if self.inclusive else local.time() < limit
        return today if makes_it else today + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ExecutionDate:
    """The day a partner will execute an order, and why it differs from the one requested."""

    requested: date
    execution: date
    # Why the requested day cannot be kept (empty when it is kept).
    reason: str = ""

    @property
    def moved(self) -> bool:
        """Whether the execution day is not the one requested."""
        return self.execution != self.requested


def execution_date(
    requested: date, received_at: datetime, cutoff: Cutoff, calendar: BusinessCalendar
) -> ExecutionDate:
    """The first business day on or after both the requested day and the cut-off's first day."""
    first = cutoff.first_day(received_at)
    if requested < first:
        local = received_at.astimezone(cutoff.zone)
        received = f"received {local:%Y-%m-%d %H:%M:%S} {cutoff.zone}"
        if requested < local.date():
            reason = f"{requested.isoformat()} has passed ({received})"
        else:
            when = "after" if cutoff.inclusive else "at or after"
            limit = cutoff.on(local.date())
            reason = f"{received}, {when} the cut-off {limit:%H:%M} for {requested.isoformat()}"
        candidate = first
    else:
        reason = ""
        candidate = requested
    execution = calendar.next_business_day(candidate)
    if execution != candidate:
        closed: list[str] = []
        day = candidate
        while day < execution:
            why = calendar.closed_because(day)
            if why and why not in closed:
                closed.append(why)
            day += timedelta(days=1)
        last = execution - timedelta(days=1)
        span = candidate.isoformat() if last == candidate else f"{candidate} to {last}"
        reason = f"{reason}; " if reason else ""
        reason += f"{span} {'is' if last == candidate else 'are'} closed: {', '.join(closed)}"
    return ExecutionDate(requested, execution, reason)
