"""Time as the services see it: always timezone-aware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The ISO 8601 form stored in the database (sortable, with offset)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
