"""The admin overview: a file with no status report past its partner's deadline is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.adapters.db import Database
from gateway.config import Settings
from gateway.service.clock import stamp
from gateway.service.overview import overdue_files, overview


def test_files_past_their_status_deadline_are_overdue(settings: Settings) -> None:
    """Sent 61 minutes ago with a 60-minute deadline: overdue; acknowledged or recent: not."""
    db = Database(settings.db_file)
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    deadline = settings.partners["agribank"].status_deadline_minutes
    with db.transaction() as tx:
        for msg_id, minutes_ago, state in (
            ("F-OLD", deadline + 1, "sent"),
            ("F-NEW", deadline - 1, "sent"),
            ("F-ACK", deadline + 30, "acknowledged"),
        ):
            sent_at = stamp(now - timedelta(minutes=minutes_ago))
            tx.add_file(
                msg_id=msg_id,
                partner="agribank",
                message_type="pain.001.001.09",
                nb_of_txs=1,
                ctrl_sum="1",
                sha256="0",
                now=sent_at,
            )
            tx.file_sent(msg_id, sent_at)
            if state != "sent":
                tx.file_status(msg_id, state, sent_at)
    assert overdue_files(db, settings, now) == ["F-OLD"]
    assert overview(db, settings, now)["files_overdue"] == 1
