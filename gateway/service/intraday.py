"""camt.052 intraday account reports: booked entries are applied as camt.054 entries are (debits
settle our payments, returns undo them, other credits are revenue), once per bank reference
across camt.052, camt.054 and camt.053; pending entries settle nothing."""

from __future__ import annotations

from datetime import datetime

import structlog

from gateway.config import PartnerProfile
from gateway.errors import InvalidMessage
from gateway.iso20022.model import IntradayReport, Notification
from gateway.service.notifications import apply_entries
from gateway.service.ports import UnitOfWork

log = structlog.get_logger("gateway.inbound")


def _number(account: str) -> str:
    return account.rsplit(":", maxsplit=1)[-1]


def apply_intraday(
    uow: UnitOfWork, partner: PartnerProfile, report: IntradayReport, raw: bytes, now: datetime
) -> str:
    """Apply a verified camt.052 in the caller's transaction: applied or duplicate."""
    ours = {_number(a) for a in partner.accounts}
    for rpt in report.reports:
        if _number(rpt.account) not in ours:
            raise InvalidMessage(
                f"camt.052 {report.msg_id} report {rpt.statement_id} is for account"
                f" {rpt.account}, not one of {partner.name}'s accounts in its profile"
            )
    log_ = log.bind(msg_id=report.msg_id)
    if not uow.inbound.first_sight(partner.name, report.msg_id, "camt.052", raw, now):
        log_.info("intraday.duplicate")
        return "duplicate"
    totals: dict[str, int] = {}
    for rpt in report.reports:
        as_notification = Notification(
            msg_id=report.msg_id,
            created_at=rpt.created_at or report.created_at,
            account=rpt.account,
            entries=rpt.entries,
        )
        counts = apply_entries(uow, partner, as_notification, now, booked_only=True)
        for key, n in counts.items():
            totals[key] = totals.get(key, 0) + n
    log_.info("intraday.applied", reports=len(report.reports), **totals)
    return "applied"
