"""`gateway dlq` as an admin runs it, on a real broker: list, show, replay, drop with a reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pika
import pytest

from gateway.adapters import topology
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.rabbitmq import PARKED_REASON_HEADER, connect
from gateway.config import load_settings
from gateway.service.clock import utcnow
from gateway.service.ports import OutboxMessage
from tests.conftest import ROOT
from tests.integration.test_cli import run

pytestmark = pytest.mark.broker


@pytest.fixture
def home(tmp_path: Path, broker_url: str) -> Path:
    """A gateway home with a database and two orders parked in gateway.orders.parking."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    settings = load_settings(tmp_path)
    SqliteStorage(settings.db_file).close()  # the gateway's database, as `gateway run` makes it
    conn = connect(broker_url)
    topology.declare_on(conn, settings.partners, settings.delivery_limit)
    ch = conn.channel()
    ch.confirm_delivery()
    for name in (topology.ORDERS_QUEUE, topology.parking_queue(topology.ORDERS_QUEUE)):
        ch.queue_purge(name)
    for message_id, reason in (("P-1", "no partner holds the account"), ("P-2", "disk full")):
        ch.basic_publish(
            topology.PARKING_EXCHANGE,
            topology.ORDERS_QUEUE,
            f'{{"order_id": "{message_id}"}}'.encode(),
            pika.BasicProperties(
                message_id=message_id, delivery_mode=2, headers={PARKED_REASON_HEADER: reason}
            ),
            mandatory=True,
        )
    conn.close()
    return tmp_path


def _actions(home: Path) -> list[tuple[object, ...]]:
    storage = SqliteStorage(load_settings(home).db_file)
    return storage.query(
        "SELECT action, queue, message_id, reason, parked_why, body FROM dlq_actions"
    )


def test_list_and_show_name_each_parked_message_and_its_reason(home: Path, broker_url: str) -> None:
    """`list` counts per queue; `show` gives each message's id, reason and body."""
    listed = run(home, "dlq", "list", url=broker_url)
    assert listed.returncode == 0, listed.stderr
    counts = dict(line.split() for line in listed.stdout.splitlines() if "not declared" not in line)
    assert counts["gateway.orders"] == "2"
    assert counts["outbox"] == "0"
    shown = run(home, "dlq", "show", "gateway.orders", url=broker_url)
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(m["message_id"], m["reason"]) for m in lines] == [
        ("P-1", "no partner holds the account"),
        ("P-2", "disk full"),
    ]
    assert json.loads(lines[0]["body"]) == {"order_id": "P-1"}
    again = run(home, "dlq", "list", url=broker_url)
    assert "gateway.orders                               2" in again.stdout  # show kept them


def test_drop_needs_a_reason_and_keeps_the_message_with_it(home: Path, broker_url: str) -> None:
    """Without --reason nothing is dropped; with it the body and the reason are recorded."""
    refused = run(home, "dlq", "drop", "gateway.orders", "--id", "P-1", url=broker_url)
    assert refused.returncode != 0
    assert "--reason" in refused.stderr and "Traceback" not in refused.stderr
    dropped = run(
        home,
        "dlq",
        "drop",
        "gateway.orders",
        "--id",
        "P-1",
        "--reason",
        "sent again by the core under a new id",
        url=broker_url,
    )
    assert dropped.returncode == 0, dropped.stderr
    [(action, queue, message_id, reason, parked_why, body)] = _actions(home)
    assert (action, queue, message_id) == ("drop", "gateway.orders", "P-1")
    assert reason == "sent again by the core under a new id"
    assert parked_why == "no partner holds the account"
    assert json.loads(bytes(body)) == {"order_id": "P-1"}  # type: ignore[arg-type]
    shown = run(home, "dlq", "show", "gateway.orders", url=broker_url)
    assert [json.loads(line)["message_id"] for line in shown.stdout.splitlines()] == ["P-2"]


def test_replay_puts_the_message_back_without_its_parking_marks(
    home: Path, broker_url: str
) -> None:
    """A replayed message is in its queue again, as first published, and the replay recorded."""
    replayed = run(home, "dlq", "replay", "gateway.orders", "--id", "P-2", url=broker_url)
    assert replayed.returncode == 0, replayed.stderr
    conn = connect(broker_url)
    method, props, _ = conn.channel().basic_get(topology.ORDERS_QUEUE, auto_ack=True)
    conn.close()
    assert method is not None and props.message_id == "P-2"
    assert PARKED_REASON_HEADER not in (props.headers or {})
    assert [(a, m) for a, _, m, *_ in _actions(home)] == [("replay", "P-2")]


def test_parked_outbox_messages_are_replayed_too(home: Path, broker_url: str) -> None:
    """The outbox's parked messages are the `outbox` queue: replay puts one back in line."""
    storage = SqliteStorage(load_settings(home).db_file)
    now = utcnow()
    with storage.unit_of_work() as uow:
        uow.outbox.enqueue(
            OutboxMessage("F-1", topology.TO_BANK_EXCHANGE, "nobank", b"<x/>", {}), now
        )
    [(row_id,)] = storage.query("SELECT id FROM outbox")
    with storage.unit_of_work() as uow:
        uow.outbox.park(row_id, "message F-1 has no queue to go to", now)
    listed = run(home, "dlq", "list", url=broker_url).stdout
    assert "outbox                                       1" in listed
    replayed = run(home, "dlq", "replay", "outbox", "--all", url=broker_url)
    assert replayed.returncode == 0, replayed.stderr
    assert storage.query("SELECT parked_at FROM outbox") == [(None,)]


def test_an_unknown_queue_is_one_clear_line(home: Path, broker_url: str) -> None:
    """A misspelt queue is named with the ones that exist, no traceback."""
    result = run(home, "dlq", "show", "gateway.order", url=broker_url)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no queue 'gateway.order'")
    assert result.stderr.strip().count("\n") == 0
