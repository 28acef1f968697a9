"""The `gateway` command as an admin runs it: help, one-line errors, submit, status, show."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.adapters import topology
from gateway.adapters.amqp_connect import Links
from gateway.adapters.rabbitmq import connect
from gateway.bootstrap import open_database
from gateway.config import load_settings
from gateway.service.file_scanner import CLAIMED, Claim
from gateway.service.intake import IntakeService
from tests.conftest import ROOT
from tests.doubles import Msg
from tests.unit.test_intake import order

GATEWAY = str(Path(sys.executable).parent / "gateway")


def run(home: Path, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `gateway ARGS` with GATEWAY_HOME=home."""
    env = {**os.environ, "GATEWAY_HOME": str(home)}
    if url:
        env["GATEWAY_AMQP_URL"] = url
    return subprocess.run(
        [GATEWAY, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A gateway home with the project's configuration and schemas."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def test_help_lists_the_commands(home: Path) -> None:
    """`gateway --help` names every command of the walking skeleton."""
    result = run(home, "--help")
    assert result.returncode == 0
    for command in ("run", "demo", "bank-sim", "submit", "status", "orders"):
        assert command in result.stdout


@pytest.mark.parametrize("words", [["submit", "--help"], ["dlq", "list", "-h"], ["run", "--help"]])
def test_a_commands_help_shows_while_the_settings_file_is_broken(
    home: Path, words: list[str]
) -> None:
    """--help needs no setting: a broken conf/gateway.toml does not hide it. The command itself
    still stops at the file's error, naming it."""
    settings = home / "conf" / "gateway.toml"
    settings.write_text(settings.read_text(encoding="utf-8") + "\nlog_level = \n", "utf-8")

    helped = run(home, *words)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"Usage: gateway {' '.join(words[:-1])} [OPTIONS]")

    refused = run(home, "status")
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith(f"error: {settings}: Invalid value")


def test_status_without_a_database_is_one_clear_line(home: Path) -> None:
    """No traceback: one line saying what is missing, and a non-zero exit."""
    result = run(home, "status")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "no gateway database" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_profile_is_named(home: Path) -> None:
    """A partner profile with an unknown key stops the command with the file and key named."""
    broken = 'name = "xbank"\nbic = "XBNKVNVX"\ncolour = 1\n'
    (home / "conf" / "partners" / "broken.toml").write_text(broken)
    result = run(home, "status")
    assert result.returncode == 1
    assert "broken.toml: unknown key(s) colour" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("bank-sim",),
        ("build", "ORDERS"),
        ("verify", "ORDERS"),
        ("reconcile", "--date", "2026-11-02"),
        ("files", "scan"),
    ],
)
def test_an_unknown_partner_is_the_same_line_for_every_command(
    home: Path, command: tuple[str, ...]
) -> None:
    """Every command taking --partner looks it up one way and says the same line."""
    (home / "orders.json").write_text("[]")
    args = [str(home / "orders.json") if arg == "ORDERS" else arg for arg in command]
    result = run(home, *args, "--partner", "nobank")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no partner profile named 'nobank' in conf/partners/ (known: agribank, vietinbank)"
    )


@pytest.mark.broker
@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ";"), ("utf-8-sig", "\t")],
    ids=["plain", "spreadsheet-semicolons", "spreadsheet-tabs"],
)
def test_submit_publishes_csv_orders(
    home: Path, broker_url: str, encoding: str, delimiter: str
) -> None:
    """Orders from a CSV file arrive on gateway.orders as payment-order/1 JSON: comma-separated,
    or as a spreadsheet saves "CSV UTF-8" (a byte-order mark, semicolons or tabs)."""
    conn = connect(broker_url)
    channel = conn.channel()
    topology.declare(channel, ["agribank"], 5)
    channel.queue_purge(topology.ORDERS_QUEUE)
    csv_file = home / "orders.csv"
    csv_file.write_text(
        (
            "order_id,category,debtor_name,debtor_account,debtor_bic,creditor_name,"
            "creditor_account,creditor_bic,amount,currency,requested_execution_date,remittance\n"
            "CSV-1,electricity,Kho bạc Nhà nước Phú Lương,7411058271001,VBAAVNVX,"
            "Công ty Điện lực Thái Nguyên,1020304050,ICBVVNVX,1250000,VND,2026-11-12,HĐ 0012345\n"
        ).replace(",", delimiter),
        encoding=encoding,
    )
    result = run(home, "submit", str(csv_file), url=broker_url)
    assert result.returncode == 0, result.stderr
    assert "published 1 order(s)" in result.stdout
    method, _, body = channel.basic_get(topology.ORDERS_QUEUE, auto_ack=True)
    conn.close()
    assert method is not None
    payload = json.loads(body)
    assert payload["creditor"]["name"] == "Công ty Điện lực Thái Nguyên"
    assert payload["amount"] == "1250000"


def test_submit_a_csv_missing_a_column(home: Path) -> None:
    """A CSV without a required column names the line and the column."""
    csv_file = home / "orders.csv"
    csv_file.write_text("order_id,category\nX,water\n", encoding="utf-8")
    result = run(home, "submit", str(csv_file))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {csv_file}: line 2: no column debtor_name (the header has order_id, category)"
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [("orders.json", "[]"), ("orders.csv", ""), ("orders.csv", "order_id,category\n")],
    ids=["empty-list", "empty-csv", "header-only"],
)
def test_submit_with_no_order_is_refused(home: Path, name: str, text: str) -> None:
    """A file with no order is an error, not "published 0 order(s)"."""
    path = home / name
    path.write_text(text, encoding="utf-8")
    result = run(home, "submit", str(path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {path}: no order in it; nothing published"


def test_orders_show_prints_one_order(home: Path) -> None:
    """`orders show` prints the stored order with its state."""
    settings = load_settings(home)
    IntakeService(open_database(settings), settings).handle(
        [Msg(json.dumps(order(), ensure_ascii=False).encode())]
    )
    result = run(home, "orders", "show", "BTXH2611-000001")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["state"] == "received"
    assert shown["payload"]["creditor"]["name"] == "Nguyễn Thị Hồng Nhung"
    missing = run(home, "orders", "show", "NOPE")
    assert missing.returncode == 1
    assert "no order 'NOPE'" in missing.stderr


def test_demo_refuses_a_remote_broker(home: Path) -> None:
    """The demo empties queues, so it will not run against a broker on another host by mistake."""
    result = run(home, "demo", url="amqp://guest:guest@rabbit.example.org:5672/%2F")
    assert result.returncode == 1
    assert "will not do that on rabbit.example.org" in result.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"[1, 2]", "item 0 is not a JSON object"),
        (b"\xff\xfe not text", "not UTF-8"),
        (b'{"order_id": ', "not JSON"),
    ],
)
def test_submit_refuses_a_bad_file_in_one_line(home: Path, content: bytes, needle: str) -> None:
    """A file that holds no orders is refused with a line naming the problem, no traceback."""
    path = home / "orders.json"
    path.write_bytes(content)
    result = run(home, "submit", str(path))
    assert result.returncode == 1
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_bank_sim_with_a_broken_book(home: Path) -> None:
    """A bank book that is not JSON is named, not crashed on."""
    book = home / "book.json"
    book.write_text("{closed: [", encoding="utf-8")
    result = run(home, "bank-sim", "--book", str(book))
    assert result.returncode == 1
    assert "book.json" in result.stderr and "Traceback" not in result.stderr


def test_status_counts_what_the_database_holds(home: Path) -> None:
    """`status --json` shows orders by state and the admin queues, including refused orders."""
    settings = load_settings(home)
    intake = IntakeService(open_database(settings), settings)
    intake.handle([Msg(json.dumps(order(), ensure_ascii=False).encode()), Msg(b"not json")])
    result = run(home, "status", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["orders"] == {"invalid": 1, "received": 1}
    assert shown["outbox_pending"] == 1  # the order_invalid posting, not yet relayed
    assert shown["quarantined_inbound"] == 0


def test_status_shows_what_waits_in_the_inbound_folders(home: Path) -> None:
    """Per files partner: complete reports waiting, one being written, one claimed by a scanner
    that never finished (signatures not counted); an unreadable folder is named, not fatal."""
    settings = load_settings(home)
    IntakeService(open_database(settings), settings).handle([Msg(b"not json")])
    inbound = home / "var" / "exchange" / "vietinbank" / "from-bank"
    (inbound / CLAIMED).mkdir(parents=True)
    for name in ("VTB-STS-1.xml", "VTB-DBT-1.xml", "VTB-DBT-1.xml.sig", ".VTB-2.xml.77-ab.part"):
        (inbound / name).write_bytes(b"<Document/>")
    since = time.time() - 900
    for name in ("VTB-STS-0.xml", "VTB-STS-0.xml.sig"):
        (inbound / Claim(name, "host~4242-dead", since).path).write_bytes(b"<Document/>")
    (inbound / CLAIMED / "stray-note.txt").write_text("not a claim")
    result = run(home, "status", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["inbound_folders"]
    assert list(shown) == ["vietinbank"]  # Agribank is reached by message
    seen = shown["vietinbank"]
    assert (seen["waiting"], seen["partial"], seen["claimed"]) == (2, 1, 1)
    assert 890 <= seen["oldest_claim_seconds"] <= 1000
    text = run(home, "status")
    assert text.returncode == 0, text.stderr
    assert "inbound folders" in text.stdout
    line = next(line for line in text.stdout.splitlines() if "vietinbank" in line)
    assert "2 waiting, 1 being written, 1 claimed (oldest" in line
    shutil.rmtree(inbound)
    inbound.write_text("a file where the folder should be")
    broken = run(home, "status")
    assert broken.returncode == 0, broken.stderr
    assert "vietinbank" in broken.stdout and "unreadable:" in broken.stdout


def test_orders_show_without_a_database_creates_none(home: Path) -> None:
    """Looking never creates an empty database as a side effect."""
    result = run(home, "orders", "show", "X")
    assert result.returncode == 1
    assert "no gateway database" in result.stderr
    assert not (home / "var" / "gateway.db").exists()


def test_status_names_the_broker_nodes_and_where_each_connection_is(home: Path) -> None:
    """On a cluster: the nodes configured, and per running `gateway run` of this home the node
    each connection is on with its failovers (read from var/run/, as the process wrote it)."""
    settings = load_settings(home)
    IntakeService(open_database(settings), settings).handle([Msg(b"not json")])
    links = Links()
    links.keep_in(home / "var" / "run")  # as a running gateway (this process) writes them
    links.connected("intake", "127.0.0.1:5701")
    links.lost("intake")
    links.connected("intake", "127.0.0.1:5702")
    urls = ",".join(f"amqp://guest:guest@127.0.0.1:{p}/%2F" for p in (5701, 5702, 5703))
    shown = json.loads(run(home, "status", "--json", url=urls).stdout)["broker"]
    assert shown["nodes"] == ["127.0.0.1:5701", "127.0.0.1:5702", "127.0.0.1:5703"]
    assert shown["quorum_group_size"] == 3
    (process,) = shown["processes"]
    assert process["pid"] == os.getpid()
    (link,) = process["links"]
    assert (link["worker"], link["node"], link["failovers"]) == ("intake", "127.0.0.1:5702", 1)
    text = run(home, "status", url=urls).stdout
    assert "broker nodes (3): 127.0.0.1:5701, 127.0.0.1:5702, 127.0.0.1:5703" in text
    line = next(line for line in text.splitlines() if line.strip().startswith("intake"))
    assert "127.0.0.1:5702" in line and "failovers 1" in line


def test_a_file_that_is_not_a_database_is_named(home: Path) -> None:
    """db_path pointing at some other file: one line naming it, no traceback."""
    (home / "var").mkdir()
    (home / "var" / "gateway.db").write_bytes(b"not a database, " * 256)
    for command in (("status",), ("db", "status")):
        result = run(home, *command)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"error: {home / 'var' / 'gateway.db'} is not a database SQLite can read:"
            " file is not a database"
        )


def test_a_sqlite_url_to_no_file_creates_nothing(home: Path) -> None:
    """A mistyped sqlite:/// URL is refused as a missing database, as db_path is: an empty
    database made there would pass for a gateway with no history."""
    missing = home / "elsewhere" / "gateway.db"
    env = {**os.environ, "GATEWAY_HOME": str(home), "GATEWAY_DB_URL": f"sqlite://{missing}"}
    result = subprocess.run(
        [GATEWAY, "status"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no gateway database at {missing} yet; start `gateway run`"
    )
    assert not missing.parent.exists()
