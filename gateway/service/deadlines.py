"""Status deadlines: a file without a status report in its partner's time is flagged to admins,
and the flag is cleared, once, when its late report arrives."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import structlog

from gateway.config import Settings
from gateway.service.channels import ADMIN_EXCHANGE
from gateway.service.clock import Clock, stamp, utcnow
from gateway.service.ports import OutboxMessage, Storage, UnitOfWork

log = structlog.get_logger("gateway.deadlines")

# Routing key of the admin event on `gateway.admin`.
FILE_OVERDUE = "admin.file_overdue"
FILE_OVERDUE_CLEARED = "admin.file_overdue_cleared"


class DeadlineWatch:
    """Flags each overdue file once: a log event, and an admin event sent through the outbox."""

    def __init__(self, storage: Storage, settings: Settings, clock: Clock = utcnow) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock

    def tick(self) -> int:
        """Flag the files that went past their deadline since the last tick; returns how many."""
        now = self._clock()
        flagged = 0
        for partner in self._settings.partners.values():
            minutes = partner.status_deadline_minutes
            limit = now - timedelta(minutes=minutes)
            with self._storage.unit_of_work() as uow:
                for msg_id, sent_at in uow.files.overdue_unflagged(partner.name, limit):
                    if not uow.files.flag_overdue(msg_id, partner.name, now):
                        continue  # another instance flagged it first
                    event = {
                        "event": "file_overdue",
                        "msg_id": msg_id,
                        "partner": partner.name,
                        "sent_at": stamp(sent_at),
                        "deadline_minutes": minutes,
                        "flagged_at": stamp(now),
                    }
                    uow.outbox.enqueue(
                        OutboxMessage(
                            message_id=f"overdue:{msg_id}",
                            exchange=ADMIN_EXCHANGE,
                            routing_key=FILE_OVERDUE,
                            body=json.dumps(event, sort_keys=True).encode(),
                            headers={"partner": partner.name, "msg_id": msg_id},
                        ),
                        now,
                    )
                    log.warning(
                        "file.overdue",
                        msg_id=msg_id,
                        partner=partner.name,
                        sent_at=stamp(sent_at),
                        deadline_minutes=minutes,
                    )
                    flagged += 1
        return flagged


def clear_overdue(uow: UnitOfWork, partner: str, msg_id: str, now: datetime) -> bool:
    """In the transaction applying a status report on a file: clear its overdue flag once, with a
    log event and an admin event through the outbox. False when there was no flag to clear."""
    flagged = uow.files.clear_overdue(msg_id, partner, now)
    if flagged is None:
        return False
    flagged_at = stamp(flagged)
    event = {
        "event": "file_overdue_cleared",
        "msg_id": msg_id,
        "partner": partner,
        "flagged_at": flagged_at,
        "cleared_at": stamp(now),
    }
    uow.outbox.enqueue(
        OutboxMessage(
            message_id=f"overdue-cleared:{msg_id}",
            exchange=ADMIN_EXCHANGE,
            routing_key=FILE_OVERDUE_CLEARED,
            body=json.dumps(event, sort_keys=True).encode(),
            headers={"partner": partner, "msg_id": msg_id},
        ),
        now,
    )
    log.info("file.overdue_cleared", msg_id=msg_id, partner=partner, flagged_at=flagged_at)
    return True
