"""A status report whose acceptances move orders together, applied on SQLite and PostgreSQL
as the gateway applies it: in steps, each in `run_unit` (SQLite prepares a step on a snapshot
and makes its writes under the lock, or runs it again under the lock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import PartnerProfile, load_settings
from gateway.domain.states import TxState
from gateway.iso20022.model import TxStatus
from gateway.service.notifications import MORE
from gateway.service.ports import Storage
from gateway.service.reports import report_steps
from tests.conftest import ROOT
from tests.unit.test_bank_reply_rules import NOW, raw_of, report, send_file


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    made: Storage
    if request.param == "sqlite":
        from gateway.adapters.persistence.sqlite import SqliteStorage  # noqa: PLC0415

        made = SqliteStorage(tmp_path / "gateway.db")
    else:
        from gateway.adapters.persistence.postgres import PostgresStorage  # noqa: PLC0415

        made = PostgresStorage(request.getfixturevalue("postgres_url"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def agribank() -> PartnerProfile:
    return load_settings(ROOT).partners["agribank"]


def _apply(storage: Storage, partner: PartnerProfile, lines: list[TxStatus], chunk: int) -> None:
    message = report("R-1", *lines, group_status="ACCP")
    results = [
        storage.run_unit(step)
        for step in report_steps(partner, message, raw_of(message), NOW, chunk=chunk)
    ]
    assert results[-1] == "applied"
    assert set(results[:-1]) <= {MORE}


@pytest.mark.parametrize("chunk", [500, 3])
def test_acceptances_move_together_and_the_rest_line_by_line(
    storage: Storage, agribank: PartnerProfile, chunk: int
) -> None:
    """1,200 acceptances (covered by the group status), a second line for one order, one for
    another file's order, a rejection: every order where its line puts it."""
    orders = [(f"O-{n:04d}", "P-1") for n in range(1200)]
    send_file(storage, orders)  # type: ignore[arg-type] - any Storage
    send_file(storage, [("X-1", "P-1")], msg_id="KBNN-AGR-OTHER")  # type: ignore[arg-type]
    lines = [
        TxStatus("O-0000", "ACTC"),
        TxStatus("O-0000", "ACSP"),
        TxStatus("X-1", "ACCP"),
        TxStatus("O-0001", "RJCT", reason_code="AC04"),
    ]
    _apply(storage, agribank, lines, chunk)
    states = storage.queries.orders_by_state()
    assert states == {"acknowledged": 1199, "rejected": 1, "sent": 1}
    first = storage.queries.order("O-0000")
    other = storage.queries.order("O-0999")
    assert first is not None and other is not None
    assert (first.state, first.status_code) == (TxState.ACKNOWLEDGED, "ACTC")
    assert (other.state, other.status_code, other.updated_at) == (
        TxState.ACKNOWLEDGED,
        "ACCP",
        NOW,
    )
    assert storage.queries.unmatched_by_partner() == {"agribank": 1}  # the line for X-1
