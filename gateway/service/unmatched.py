"""A line of a verified bank file that cannot be applied: why, and how it is kept.

The rules for status reports, notifications, returns and statements raise `Unmatched` with the
reason; the file is still applied, the line is kept in `unmatched` with the reason for an admin,
and nothing of the line moves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.reasons import bounded
from gateway.service.ports import UnitOfWork, UnmatchedLine


class Unmatched(Exception):  # noqa: N818 - a verdict on one line, not an error of the gateway
    """A line that cannot be applied; the message says why."""

    @property
    def reason(self) -> str:
        """The reason as it is kept and logged: bounded, one line."""
        return bounded(str(self))


def keep_unmatched(
    uow: UnitOfWork,
    partner: str,
    msg_id: str,
    reference: str | None,
    reason: str,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    """Keep a line that could not be applied, with its (bounded) reason, in the caller's unit."""
    line = UnmatchedLine(partner, msg_id, reference, bounded(reason), detail)
    uow.inbound.unmatched(line, now)
