"""A file's overdue flag and its late report, in two units at once on PostgreSQL (two instances:
one's deadline watch, the other applying the bank's report): whichever comes first, no flag is
left that nothing will clear."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.adapters.persistence.postgres import PostgresStorage
from gateway.domain.states import FileState
from tests.contract.values import outbound_file

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PARTNER = "VBA"
MSG_ID = "KBNN-VBA-LATE"


@pytest.fixture
def storage(postgres_url: str) -> Iterator[PostgresStorage]:
    made = PostgresStorage(postgres_url)
    with made.unit_of_work() as uow:
        uow.files.add(outbound_file(MSG_ID, partner=PARTNER), T0)
        uow.files.sent(MSG_ID, T0 + timedelta(seconds=1))
    try:
        yield made
    finally:
        made.close()


def _waiting_for_a_lock(storage: PostgresStorage, done: threading.Thread) -> None:
    """Until a session of this database waits for a row lock (or `done` has ended without)."""
    deadline = time.monotonic() + 30
    while done.is_alive() and time.monotonic() < deadline:
        waiting = storage.query(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting[0][0]:
            return
        time.sleep(0.02)


def _in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_report_being_applied_keeps_the_watch_from_flagging(storage: PostgresStorage) -> None:
    """The report's unit has written the file's status and found no flag; the watch, which
    listed the file before, waits for that unit and then flags nothing."""
    looked, commit = threading.Event(), threading.Event()
    cleared: list[datetime | None] = []
    flagged: list[bool] = []

    def report() -> None:
        with storage.unit_of_work() as uow:
            uow.files.status_reported(MSG_ID, T0 + timedelta(minutes=40))
            cleared.append(uow.files.clear_overdue(MSG_ID, PARTNER, T0 + timedelta(minutes=40)))
            looked.set()
            commit.wait(30)

    def watch() -> None:
        with storage.unit_of_work() as uow:
            flagged.append(uow.files.flag_overdue(MSG_ID, PARTNER, T0 + timedelta(minutes=40)))

    reporting = _in_thread(report)
    assert looked.wait(30)
    watching = _in_thread(watch)
    _waiting_for_a_lock(storage, watching)
    commit.set()
    reporting.join(30)
    watching.join(30)
    assert cleared == [None]
    assert flagged == [False]
    assert storage.query("SELECT msg_id FROM overdue_flags") == []


def test_a_flag_being_raised_is_cleared_by_the_report(storage: PostgresStorage) -> None:
    """The watch has flagged the file, not yet committed; the report's unit waits for it and
    then finds the flag and clears it."""
    raised, commit = threading.Event(), threading.Event()
    cleared: list[datetime | None] = []

    def watch() -> None:
        with storage.unit_of_work() as uow:
            assert uow.files.flag_overdue(MSG_ID, PARTNER, T0 + timedelta(minutes=30))
            raised.set()
            commit.wait(30)

    def report() -> None:
        with storage.unit_of_work() as uow:
            uow.files.status_reported(MSG_ID, T0 + timedelta(minutes=31))
            uow.files.set_status(MSG_ID, FileState.ACKNOWLEDGED, T0 + timedelta(minutes=31))
            cleared.append(uow.files.clear_overdue(MSG_ID, PARTNER, T0 + timedelta(minutes=31)))

    watching = _in_thread(watch)
    assert raised.wait(30)
    reporting = _in_thread(report)
    _waiting_for_a_lock(storage, reporting)
    commit.set()
    watching.join(30)
    reporting.join(30)
    assert cleared == [T0 + timedelta(minutes=30)]
    assert storage.query("SELECT msg_id FROM overdue_cleared") == [(MSG_ID,)]
