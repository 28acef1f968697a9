"""The storage operation behind duplicate-file answers, on every backend: memory, SQLite, and
PostgreSQL when GATEWAY_TEST_POSTGRES_URL answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.adapters.persistence import open_storage
from gateway.adapters.persistence.memory import MemoryStorage
from gateway.domain.states import FileState
from gateway.service.ports import DuplicateAnswer, OutboundFile, Storage

AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """One backend, with its schema migrated."""
    if request.param == "memory":
        yield MemoryStorage()
        return
    if request.param == "sqlite":
        opened = open_storage("", tmp_path / "gateway.db")
    else:
        url = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "")
        if not url:
            if os.environ.get("GATEWAY_REQUIRE_POSTGRES"):
                pytest.fail("GATEWAY_TEST_POSTGRES_URL is not set")
            pytest.skip("no PostgreSQL (GATEWAY_TEST_POSTGRES_URL is not set)")
        try:
            opened = open_storage(url, tmp_path / "unused.db")
        except Exception as exc:
            if os.environ.get("GATEWAY_REQUIRE_POSTGRES"):
                raise
            pytest.skip(f"PostgreSQL at GATEWAY_TEST_POSTGRES_URL does not answer: {exc}")
    try:
        yield opened
    finally:
        opened.close()


def test_a_duplicate_answer_is_kept_once_and_read_with_its_files_state(storage: Storage) -> None:
    """record_duplicate_answer keeps an answer once (partner + MsgId); the queries give it back,
    newest first, with the state of the file it refers to, and count them per partner."""
    partner = f"bank-{uuid.uuid4().hex[:8]}"  # PostgreSQL is shared between runs
    original = f"KBNN-{uuid.uuid4().hex[:12]}"
    with storage.unit_of_work() as uow:
        uow.files.add(
            OutboundFile(original, partner, "pain.001.001.09", 2, Decimal("1350000"), "ab" * 32),
            AT,
        )
        uow.files.sent(original, AT)
        first = DuplicateAnswer(partner, f"{original}-D1", original, "duplicate file")
        assert uow.inbound.record_duplicate_answer(first, AT + timedelta(minutes=1))
        assert not uow.inbound.record_duplicate_answer(first, AT + timedelta(minutes=2))
        second = DuplicateAnswer(partner, f"{original}-D2", original, None)
        assert uow.inbound.record_duplicate_answer(second, AT + timedelta(minutes=3))
    assert storage.queries.duplicate_answers_by_partner()[partner] == 2
    mine = [a for a in storage.queries.duplicate_answers(1000) if a.partner == partner]
    assert [(a.msg_id, a.reason_text) for a in mine] == [
        (f"{original}-D2", None),
        (f"{original}-D1", "duplicate file"),
    ]
    assert {a.file_state for a in mine} == {FileState.SENT}
    assert mine[1].received_at == AT + timedelta(minutes=1)
