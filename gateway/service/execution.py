"""Execution dates at intake: each order gets a day its partner bank really executes on.

An order for a weekend, a public holiday or a day whose cut-off has passed is moved to the next
business day, or refused, as the partner's profile says ([schedule] off_day).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog

from gateway.domain.calendar import BusinessCalendar, Cutoff, ExecutionDate, execution_date
from gateway.domain.orders import PaymentOrder
from gateway.errors import ConfigError, InvalidMessage
from gateway.profile import PartnerProfile

if TYPE_CHECKING:
    from gateway.config import Settings

log = structlog.get_logger("gateway.execution")

# Decisions an ExecutionDates keeps (see `schedule`).
_REMEMBERED = 256

# Key of the stored order (not of the contract) keeping the day the treasury asked for.
MOVED_FROM = "requested_execution_date_moved_from"


class ExecutionDateRefused(InvalidMessage):
    """The partner refuses orders it cannot execute on the requested day."""


class ExecutionDates:
    """Applies each partner's cut-off and calendar to orders as they arrive."""

    def __init__(self, as_of: datetime | None = None) -> None:
        # A fixed arrival moment (replaying a past month); None means the time intake received it.
        self._as_of = as_of
        # The last decisions, by (schedule rules, requested day, arrival): a chunk's orders
        # arrive at one moment and ask for a handful of days (at most _REMEMBERED kept).
        self._decided: dict[tuple[object, date, datetime], ExecutionDate] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutionDates:
        """From the `as_of` setting (empty: each order's own arrival time)."""
        if not settings.as_of:
            return cls()
        try:
            moment = datetime.fromisoformat(settings.as_of)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ConfigError(
                f"as_of {settings.as_of!r} must be a date-time with an offset,"
                " e.g. 2026-11-02T08:00:00+07:00"
            )
        return cls(moment)

    def schedule(
        self, partner: PartnerProfile, payload: dict[str, Any], order: PaymentOrder, now: datetime
    ) -> tuple[dict[str, Any], PaymentOrder]:
        """The payload to store and the order as it will be executed; refused per the profile."""
        rules = partner.schedule
        arrival = self._as_of or now
        key = (rules, order.requested_execution_date, arrival)
        decided = self._decided.get(key)
        if decided is None:
            decided = execution_date(
                order.requested_execution_date,
                arrival,
                Cutoff(
                    rules.cutoff,
                    ZoneInfo(rules.timezone),
                    inclusive=rules.cutoff_boundary == "inclusive",
                    half_days=dict(rules.half_days),
                ),
                BusinessCalendar(rules.calendar, rules.closed_days),
            )
            if len(self._decided) >= _REMEMBERED:
                self._decided.clear()
            self._decided[key] = decided
        if not decided.moved:
            return payload, order
        if rules.off_day == "refuse":
            raise ExecutionDateRefused(
                f"{partner.name} cannot execute on {decided.requested.isoformat()}:"
                f" {decided.reason}; the next business day is {decided.execution.isoformat()}"
            )
        log.info(
            "order.execution_moved",
            order_id=order.order_id,
            partner=partner.name,
            requested=decided.requested.isoformat(),
            execution=decided.execution.isoformat(),
            reason=decided.reason,
        )
        stored = {
            **payload,
            "requested_execution_date": decided.execution.isoformat(),
            MOVED_FROM: decided.requested.isoformat(),
        }
        return stored, replace(order, requested_execution_date=decided.execution)
