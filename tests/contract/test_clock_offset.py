"""The database server's clock against the gateway's: instances sharing PostgreSQL take over
each other's expired claims by their own clocks, so `gateway run` says when they disagree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from gateway.adapters.persistence.postgres import PostgresStorage
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.bootstrap import check_clock
from gateway.config import Settings


def test_postgresql_clock_is_read_and_a_skew_said(postgres_url: str, settings: Settings) -> None:
    """In step: an offset of a round trip and nothing said; a machine 60 s behind the server:
    the offset, and a warning naming it and the claims' length."""
    storage = PostgresStorage(postgres_url)
    try:
        with capture_logs() as logs:
            in_step = check_clock(storage, settings, lambda: datetime.now(UTC))
            behind = check_clock(
                storage, settings, lambda: datetime.now(UTC) - timedelta(seconds=60)
            )
    finally:
        storage.close()
    assert in_step is not None and abs(in_step) < 2
    assert behind is not None and 58 < behind < 62
    [warning] = [entry for entry in logs if entry["event"] == "clock.skew"]
    assert warning["log_level"] == "warning"
    assert 58 < warning["database_ahead_seconds"] < 62
    assert warning["claim_seconds"] == settings.claim_seconds


def test_sqlite_has_no_other_clock(tmp_path: Path, settings: Settings) -> None:
    """SQLite runs in the gateway's process: nothing to compare, nothing said."""
    storage = SqliteStorage(tmp_path / "gateway.db")
    try:
        with capture_logs() as logs:
            assert check_clock(storage, settings, lambda: datetime(2000, 1, 1, tzinfo=UTC)) is None
    finally:
        storage.close()
    assert logs == []
