"""No inbound data ever ends in a traceback: every fault while reading or applying a file is a
quarantine row naming the class of fault; the storage's own faults are still retried."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.adapters.persistence.memory import MemoryQuarantine, MemoryStorage
from gateway.config import Settings, load_settings
from gateway.errors import TransientError
from gateway.reasons import REASON_MAX
from gateway.service import inbound
from gateway.service.inbound import InboundService
from tests.conftest import ROOT

NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def service() -> tuple[InboundService, MemoryStorage]:
    """The inbound service on storage in memory, with the repository's partners."""
    settings: Settings = load_settings(ROOT)
    storage = MemoryStorage()
    service = InboundService(storage, settings, lambda: NOW, quarantine=MemoryQuarantine())
    # The checks themselves are replaced below: no pinned certificate is read.
    service._trusted = lambda _partner: ()  # type: ignore[method-assign]
    return service, storage


def _raising(exc: BaseException) -> Callable[..., Any]:
    def raise_it(*_args: object, **_kwargs: object) -> Any:
        raise exc

    return raise_it


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (MemoryError(), "fault while reading the file: MemoryError"),
        (OverflowError("date value out of range"), "OverflowError: date value out of range"),
        (RecursionError("maximum recursion depth"), "RecursionError: maximum recursion depth"),
        (KeyError("Amt"), "fault while reading the file: KeyError: 'Amt'"),
    ],
)
def test_a_fault_while_reading_is_quarantined_by_its_class(
    service: tuple[InboundService, MemoryStorage],
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    reason: str,
) -> None:
    """Any exception out of the checks and readers quarantines the file, naming its class."""
    gateway, storage = service
    monkeypatch.setattr(inbound, "receive", _raising(exc))
    assert gateway.apply("agribank", b"<Document/>") == "quarantined"
    [(partner, kept, _)] = storage.queries.quarantine_reasons()
    assert partner == "agribank"
    assert reason in kept
    assert "Traceback" not in kept and "\n" not in kept


def test_a_fault_while_applying_is_quarantined(
    service: tuple[InboundService, MemoryStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An arithmetic fault on what a verified file says quarantines it too."""
    gateway, storage = service
    monkeypatch.setattr(inbound, "receive", lambda *_a, **_k: _Received())
    monkeypatch.setattr(inbound, "_application", lambda *_a: [_raising(ArithmeticError("x"))])
    assert gateway.apply("agribank", b"<Document/>") == "quarantined"
    [(_, kept, _)] = storage.queries.quarantine_reasons()
    assert kept == "fault while applying the file: ArithmeticError: x"


def test_a_storage_fault_is_retried_not_quarantined(
    service: tuple[InboundService, MemoryStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient fault of the storage propagates (the message is retried), nothing is kept."""
    gateway, storage = service
    monkeypatch.setattr(inbound, "receive", lambda *_a, **_k: _Received())
    monkeypatch.setattr(
        inbound, "_application", lambda *_a: [_raising(TransientError("database busy"))]
    )
    with pytest.raises(TransientError):
        gateway.apply("agribank", b"<Document/>")
    assert storage.queries.quarantine_reasons() == []


def test_a_long_reason_is_kept_bounded(
    service: tuple[InboundService, MemoryStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reason quoting megabytes of a file is kept as one line of at most REASON_MAX."""
    gateway, storage = service
    monkeypatch.setattr(inbound, "receive", _raising(ValueError("K" * 5_000_000 + "\nvalid")))
    gateway.apply("agribank", b"<Document/>")
    [(_, kept, _)] = storage.queries.quarantine_reasons()
    assert len(kept) <= REASON_MAX and "\n" not in kept


class _Received:
    """A stand-in for a file that passed every check."""

    schema_checked = True
    content = None
