"""The admin overview: a file with no status report past its partner's deadline is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.config import Settings
from gateway.domain.states import FileState
from gateway.service.overview import overdue_files, overview
from gateway.service.ports import OutboundFile


def test_files_past_their_status_deadline_are_overdue(settings: Settings) -> None:
    """Sent 61 minutes ago with a 60-minute deadline: overdue; acknowledged or recent: not."""
    storage = MemoryStorage()
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    deadline = settings.partners["agribank"].status_deadline_minutes
    with storage.unit_of_work() as uow:
        for msg_id, minutes_ago, state in (
            ("F-OLD", deadline + 1, FileState.SENT),
            ("F-NEW", deadline - 1, FileState.SENT),
            ("F-ACK", deadline + 30, FileState.ACKNOWLEDGED),
        ):
            sent_at = now - timedelta(minutes=minutes_ago)
            uow.files.add(
                OutboundFile(
                    msg_id=msg_id,
                    partner="agribank",
                    message_type="pain.001.001.09",
                    nb_of_txs=1,
                    ctrl_sum=Decimal(1),
                    sha256="0",
                ),
                sent_at,
            )
            uow.files.sent(msg_id, sent_at)
            if state is not FileState.SENT:
                uow.files.set_status(msg_id, state, sent_at)
    assert overdue_files(storage.queries, settings, now) == ["F-OLD"]
    assert overview(storage.queries, settings, now)["files_overdue"] == 1
