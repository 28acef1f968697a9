"""Business days and cut-offs: on which day a partner bank executes a payment order.

A bank executes on business days only: Monday to Friday, except the country's public holidays.
Vietnam's holidays (Tết and the other lunar-calendar days, the days off the government moves
around them) come from the maintained `holidays` library, not from a hand-kept list.
An order received after the partner's cut-off, in the partner's time zone, is for the next
business day at the earliest. Pure computation: no clock, no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cache

import holidays

# Calendars a partner profile may name: ISO 3166 country codes the holiday library knows.
SUPPORTED_CALENDARS = ("VN",)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@cache
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """The days a bank in one country executes payments."""

    country: str = "VN"

    def holiday(self, day: date) -> str | None:
        """The public holiday's name on `day`, or None."""
        return _holidays(self.country, day.year).get(day)

    def closed_because(self, day: date) -> str | None:
        """Why the bank is closed on `day` (weekend or holiday), or None on a business day."""
        name = self.holiday(day)
        if name:
            return f"a public holiday in {self.country} ({name})"
        if day.weekday() >= 5:
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

    def first_day(self, received_at: datetime) -> date:
        """The first day an order received at `received_at` can be executed on, in local time.

        An order received exactly at the cut-off still makes the day; a moment later does not.
        """
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        local = received_at.astimezone(self.zone)
        today = local.date()
        return today if local.time() <= self.at else today + timedelta(days=1)


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
            reason = f"{received}, after the cut-off {cutoff.at:%H:%M} for {requested.isoformat()}"
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
