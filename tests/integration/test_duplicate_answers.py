"""A bank answering our resend of a file with "duplicate file" (pain.002 group RJCT, reason DUPL).

The gateway resends the same MsgId after a crash; many banks refuse the copy that way while they
execute the original. Such an answer must move no order and no file, in whatever order it
arrives among the original's pain.002 and camt.054.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry
from structlog.testing import capture_logs

from gateway.adapters.prometheus_state import StateCollector
from gateway.banksim.bank import AccountBook, BankSimulator
from gateway.banksim.wiring import build_bank
from gateway.bootstrap import Gateway, build_gateway
from gateway.config import Settings
from gateway.service.deadlines import DeadlineWatch
from gateway.service.overview import overview
from gateway.service.reports import FILE_DUPLICATE_ANSWER
from tests.conftest import ROOT
from tests.doubles import FakeClock, Msg, pass_quiet_time
from tests.unit.test_intake import order

# slow: whole flows with the bank simulator.
pytestmark = pytest.mark.slow

GATEWAY = str(Path(sys.executable).parent / "gateway")

IDS = ("BTXH2611-000101", "BTXH2611-000102", "BTXH2611-000103")
CLOSED = "8800999999999"  # the bank says this beneficiary's account is closed (AC04)
SETTLED = {IDS[0]: "settled", IDS[1]: "settled", IDS[2]: "rejected"}


@dataclass
class Resent:
    """One file sent to Agribank, received by its bank twice (the second time a resend)."""

    gateway: Gateway
    bank: BankSimulator
    msg_id: str
    replies: dict[str, bytes]  # "pain.002", "camt.054" of the original; "dupl" of the resend

    def states(self) -> dict[str, str]:
        """Order id → state."""
        return dict(self.gateway.storage.query("SELECT order_id, state FROM orders"))

    def file_state(self) -> str:
        """The state of the file."""
        [(state,)] = self.gateway.storage.query("SELECT state FROM files")
        return str(state)

    def apply(self, name: str) -> str:
        """Hand one of the bank's replies to the gateway's inbound service."""
        return self.gateway.inbound.apply("agribank", self.replies[name])


@pytest.fixture
def resent(settings: Settings, tmp_path: Path) -> Resent:
    """Three orders in one file; the bank settles two, rejects one, and answers the resend DUPL."""
    gateway = build_gateway(settings, clock=FakeClock())
    payloads = [
        order(order_id=IDS[0]),
        order(order_id=IDS[1], amount="810000"),
        order(
            order_id=IDS[2],
            creditor={
                "name": "Lò Văn Páo",
                "account": {"number": CLOSED, "scheme": "BBAN"},
                "agent_bic": "VBAAVNVX",
            },
        ),
    ]
    gateway.intake.handle([Msg(json.dumps(p, ensure_ascii=False).encode()) for p in payloads])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(msg_id, body)] = gateway.storage.query(
        "SELECT message_id, body FROM outbox WHERE exchange = 'gateway.to-bank'"
    )
    with gateway.storage.unit_of_work() as uow:
        uow.files.sent(msg_id, datetime(2026, 11, 10, 8, 0, tzinfo=UTC))
    bank = build_bank(
        settings,
        settings.partners["agribank"],
        AccountBook(closed=frozenset({CLOSED})),
        tmp_path / "bank.db",
        resend_answer="dupl",
    )
    first = {kind: reply for _, kind, reply in bank.receive(bytes(body))}
    # A crash before the broker's confirm was recorded: the same file, same MsgId, again.
    [(_, kind, dupl)] = bank.receive(bytes(body))
    assert kind == "pain.002" and b"<Cd>DUPL</Cd>" in dupl
    assert set(first) == {"pain.002", "camt.054"}
    return Resent(gateway, bank, msg_id, {**first, "dupl": dupl})


ORDERS = list(itertools.permutations(("dupl", "pain.002", "camt.054")))


@pytest.mark.parametrize("arrival", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_a_duplicate_file_answer_moves_nothing_in_any_order(
    resent: Resent, arrival: tuple[str, ...]
) -> None:
    """DUPL before, between or after the original's pain.002 and camt.054: the orders end as the
    original's reports say, the file as the original's pain.002 says, and nothing is unmatched."""
    for name in arrival:
        before = (resent.states(), resent.file_state())
        assert resent.apply(name) == "applied"
        if name == "dupl":
            assert (resent.states(), resent.file_state()) == before
    assert resent.states() == SETTLED
    assert resent.file_state() == "partially_rejected"
    db = resent.gateway.storage
    assert db.query("SELECT reason FROM unmatched") == []
    assert db.query("SELECT COUNT(*) FROM quarantine") == [(0,)]
    postings = [
        json.loads(body)
        for (body,) in db.query("SELECT body FROM outbox WHERE exchange = 'treasury.ledger'")
    ]
    kinds = sorted((p["kind"], p["order_id"]) for p in postings)
    assert kinds == [
        ("payment_rejected", IDS[2]),
        ("payment_settled", IDS[0]),
        ("payment_settled", IDS[1]),
    ]


def test_a_duplicate_file_answer_first_leaves_the_file_waiting(resent: Resent) -> None:
    """DUPL before any report: the file stays sent and without a status, so its deadline still
    runs; the orders stay sent."""
    assert resent.apply("dupl") == "applied"
    assert set(resent.states().values()) == {"sent"}
    assert resent.file_state() == "sent"
    assert resent.gateway.storage.query("SELECT status_at FROM files") == [(None,)]
    # A bank that never sends the original's reports leaves the file overdue, for an admin.
    later = datetime(2026, 11, 10, 8, 0, tzinfo=UTC) + timedelta(hours=2)
    watch = DeadlineWatch(resent.gateway.storage, resent.gateway.settings, clock=lambda: later)
    assert watch.tick() == 1


def test_a_duplicate_file_answer_is_logged_counted_shown_and_raised(
    resent: Resent, settings: Settings
) -> None:
    """The DUPL answer is a log event, an admin event, a metric and a line of `gateway status`."""
    resent.apply("pain.002")
    with capture_logs() as logs:
        assert resent.apply("dupl") == "applied"
    assert resent.apply("dupl") == "duplicate"  # the same answer twice is kept once
    [event] = [e for e in logs if e["event"] == "report.duplicate_file"]
    assert event["original_msg_id"] == resent.msg_id
    db = resent.gateway.storage
    [(key, body)] = db.query(
        "SELECT routing_key, body FROM outbox WHERE exchange = 'gateway.admin'"
    )
    assert key == FILE_DUPLICATE_ANSWER
    raised = json.loads(body)
    assert (raised["event"], raised["original_msg_id"]) == ("file_duplicate_answer", resent.msg_id)
    seen = overview(db.queries, settings)
    assert seen["duplicate_file_answers"] == 1
    [answer] = seen["duplicate_answered_files"]
    assert (answer["original_msg_id"], answer["file_state"]) == (
        resent.msg_id,
        "partially_rejected",
    )
    registry = CollectorRegistry()
    registry.register(StateCollector(db.queries, settings))
    value = registry.get_sample_value(
        "kbnn_gateway_bank_duplicate_file_answers_total", {"partner": "agribank"}
    )
    assert value == 1


def test_gateway_status_shows_the_duplicate_answer(resent: Resent, settings: Settings) -> None:
    """`gateway status` counts the answer and names the file it was about, with its state."""
    resent.apply("pain.002")
    resent.apply("dupl")
    env = {
        **os.environ,
        "GATEWAY_HOME": str(ROOT),
        "GATEWAY_DB_PATH": str(settings.db_file),
        "GATEWAY_DB_URL": "",
    }
    shown = subprocess.run(
        [GATEWAY, "status"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"duplicate file answers\s+1\b", shown.stdout), shown.stdout
    assert "agribank answered DUPL" in shown.stdout
    assert f"to {resent.msg_id}, which is partially_rejected" in shown.stdout
    as_json = subprocess.run(
        [GATEWAY, "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert json.loads(as_json.stdout)["duplicate_file_answers"] == 1
