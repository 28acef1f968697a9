"""The demo's month over the real broker: every invariant a treasury relies on holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.bootstrap import our_keypair
from gateway.config import Settings, load_settings
from gateway.demo.eod import RETURN_REASON, RETURNS
from gateway.demo.ledger_sink import LedgerSink
from gateway.demo.month import DemoMonth, generate_month
from gateway.demo.run import DemoPaths
from gateway.iso20022 import xsd
from gateway.signing import verify
from tests.conftest import ROOT, xmlsec1_verify

# slow: the whole demo month.
pytestmark = [pytest.mark.broker, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def month() -> DemoMonth:
    """The demo's month, as `gateway demo` runs it: the bills leave from VietinBank, over files."""
    return generate_month(bills_partner="vietinbank")


@pytest.fixture(scope="module")
def outcome(
    broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], DemoPaths, Settings]:
    """One run of the real command, `gateway demo --json`, in a fresh gateway home."""
    home = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "conf", home / "conf")
    shutil.copytree(ROOT / "schemas", home / "schemas")
    env = {**os.environ, "GATEWAY_HOME": str(home), "GATEWAY_AMQP_URL": broker_url}
    env.pop("GATEWAY_DB_URL", None)  # the demo's own SQLite file, which these tests read
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gateway"), "demo", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result, DemoPaths(home / "var" / "demo"), load_settings(home)


def gateway_db(paths: DemoPaths) -> SqliteStorage:
    """The database the demo left behind (SQLite), opened to read it."""
    assert paths.gateway_db.is_file()
    return SqliteStorage(paths.gateway_db, upgrade=False)


def test_every_order_ends_in_exactly_one_final_state(outcome: Any, month: DemoMonth) -> None:
    """No order is left in flight; each valid order appears once, in a final state."""
    _, paths, _ = outcome
    db = gateway_db(paths)
    rows = db.query("SELECT order_id, state FROM orders")
    assert len(rows) == len(month.orders) == len({r[0] for r in rows})
    assert {state for _, state in rows} <= {"settled", "rejected", "returned"}


def test_settled_rejected_returned_invalid_add_up_to_submitted(
    outcome: Any, month: DemoMonth
) -> None:
    """Counts add up to what the treasury core published; two payments came back."""
    result, _, _ = outcome
    states = result["by_state"]
    submitted = len(month.orders) + len(month.invalid_orders)
    assert result["orders_submitted"] == submitted
    assert states["returned"] == RETURNS
    total = states["settled"] + states["rejected"] + states["returned"] + states["invalid"]
    assert total == submitted
    assert states["invalid"] == len(month.invalid_orders)
    expected_rejections = len(month.closed_accounts) + len(month.unknown_accounts)
    assert states["rejected"] == expected_rejections
    assert result["rejected_by_reason"] == {
        "AC01": len(month.unknown_accounts),
        "AC04": len(month.closed_accounts),
    }


def test_one_posting_per_final_state_and_revenue_credit(outcome: Any, month: DemoMonth) -> None:
    """Postings: one per settled, rejected and invalid order and per revenue credit, none twice."""
    result, paths, _ = outcome
    sink = LedgerSink(paths.ledger_db)
    postings = sink.postings()
    kinds = Counter(p["kind"] for p in postings)
    states = result["by_state"]
    assert kinds == Counter(
        payment_settled=states["settled"] + states["returned"],  # a returned order was settled
        payment_returned=states["returned"],
        payment_rejected=states["rejected"],
        order_invalid=states["invalid"],
        revenue_collected=len(month.revenue),
    )
    order_ids = [
        p["order_id"] for p in postings if p["kind"] in ("payment_settled", "payment_rejected")
    ]
    assert sorted(order_ids) == sorted(o["order_id"] for o in month.orders)
    assert sink.refused() == 0
    assert result["paid_twice"] == 0
    revenue = [p for p in postings if p["kind"] == "revenue_collected"]
    assert {p["bank_ref"] for p in revenue} == {c.bank_ref for c in month.revenue}
    assert all(p["budget"]["economic_code"] for p in revenue)
    settled = [p for p in postings if p["kind"] == "payment_settled"]
    assert len(settled) > 3000
    assert all(p["status"] == "BOOK" and p["bank_ref"] and p["value_date"] for p in settled)
    returned = [p for p in postings if p["kind"] == "payment_returned"]
    assert {p["reason"]["code"] for p in returned} == {RETURN_REASON}
    assert all(p["bank_ref"] and p["reason"]["text"] for p in returned)
    assert {p["order_id"] for p in returned} <= {p["order_id"] for p in settled}


def test_vnd_totals_of_postings_equal_the_orders(outcome: Any, month: DemoMonth) -> None:
    """Settled + rejected postings sum to the orders' total; revenue to the bank's credits."""
    result, paths, _ = outcome
    postings = LedgerSink(paths.ledger_db).postings()

    def posted(kind: str) -> Decimal:
        return sum((Decimal(p["amount"]) for p in postings if p["kind"] == kind), Decimal(0))

    ordered = sum((Decimal(o["amount"]) for o in month.orders), Decimal(0))
    assert posted("payment_settled") + posted("payment_rejected") == ordered
    assert posted("payment_settled") == result["settled_vnd"] + result["returned_vnd"]
    assert posted("payment_returned") == result["returned_vnd"] == result["posted_returned_vnd"]
    assert result["settled_vnd"] + result["rejected_vnd"] + result["returned_vnd"] == ordered
    assert posted("revenue_collected") == sum((c.amount for c in month.revenue), Decimal(0))
    assert ordered > Decimal(2_000_000_000)


def test_the_benefit_run_travels_in_one_file(outcome: Any, month: DemoMonth) -> None:
    """All payouts sharing the batch_ref leave in a single pain.001, as the contract promises."""
    _, paths, _ = outcome
    file_of = dict(gateway_db(paths).query("SELECT order_id, msg_id FROM orders"))
    refs = {o["batch_ref"] for o in month.orders if o.get("batch_ref")}
    assert refs == {"BTXH-PL-2026-11"}
    for ref in refs:
        files = {file_of[o["order_id"]] for o in month.orders if o.get("batch_ref") == ref}
        assert len(files) == 1, f"batch {ref} went out in {len(files)} files"


def test_every_file_sent_validates_and_its_signature_verifies(outcome: Any) -> None:
    """Each pain.001 the gateway sent verifies with our certificate and passes its XSD."""
    result, paths, settings = outcome
    db = gateway_db(paths)
    files = db.query(
        "SELECT o.body, o.message_id FROM outbox o JOIN files f ON f.msg_id = o.message_id"
        " WHERE o.sent_at IS NOT NULL"
    )
    assert len(files) == result["files_sent"] >= 4
    cert = our_keypair(settings).cert_pem
    for body, msg_id in files:
        tree = verify(bytes(body), cert)
        xsd.validate(tree)
        assert msg_id.encode() in bytes(body)


def test_every_file_sent_verifies_with_xmlsec1(outcome: Any, xmlsec1: str, tmp_path: Path) -> None:
    """An independent implementation (xmlsec1, the reference C library) accepts every file."""
    _, paths, settings = outcome
    db = gateway_db(paths)
    files = db.query("SELECT o.body FROM outbox o JOIN files f ON f.msg_id = o.message_id")
    assert len(files) >= 4
    cert = tmp_path / "kbnn.cert.pem"
    cert.write_bytes(our_keypair(settings).cert_pem)
    for index, (body,) in enumerate(files):
        document = tmp_path / f"file-{index}.xml"
        document.write_bytes(bytes(body))
        checked = xmlsec1_verify(xmlsec1, document, cert)
        assert checked.returncode == 0, checked.stderr


def test_summary_is_json_with_the_documented_keys(outcome: Any) -> None:
    """The last line of `gateway demo --json` carries the keys docs/demo.md documents."""
    result, _, _ = outcome
    keys = {
        "orders_submitted",
        "by_state",
        "rejected_by_reason",
        "files_sent",
        "postings_by_kind",
        "settled_vnd",
        "rejected_vnd",
        "revenue_vnd",
        "duration_s",
        "database",
    }
    assert keys <= set(result)
    assert result["database"] == "sqlite"  # the default when GATEWAY_DB_URL is not set


def test_nothing_waits_for_an_admin(outcome: Any) -> None:
    """The month leaves no quarantined file, unmatched report line or parked message."""
    result, _, _ = outcome
    assert result["quarantined_inbound"] == 0
    assert result["unmatched_lines"] == 0
    assert result["outbox_parked"] == 0


BILLS = {"electricity", "water", "telecom"}


def test_the_bills_went_to_vietinbank_over_files(outcome: Any, month: DemoMonth) -> None:
    """Orders are routed by debtor account: the bills to the files partner, the rest by AMQP."""
    result, paths, _ = outcome
    db = gateway_db(paths)
    partner_of = dict(db.query("SELECT order_id, partner FROM orders"))
    for order in month.orders:
        expected = "vietinbank" if order["category"] in BILLS else "agribank"
        assert partner_of[order["order_id"]] == expected
    assert result["orders_by_partner"]["vietinbank"] == sum(
        1 for o in month.orders if o["category"] in BILLS
    )
    assert result["files_by_partner"]["vietinbank"] >= 5
    assert result["files_by_partner"]["agribank"] >= 1


def test_every_payment_file_reached_the_folder_once_and_every_report_was_read(
    outcome: Any,
) -> None:
    """Each file for VietinBank lies in the bank's folder as <MsgId>.xml, signed and valid; each
    report the bank wrote was read and moved to processed/; nothing failed or waits."""
    result, paths, settings = outcome
    db = gateway_db(paths)
    sent = {
        msg_id
        for (msg_id,) in db.query(
            "SELECT msg_id FROM files WHERE partner = 'vietinbank' AND sent_at IS NOT NULL"
        )
    }
    assert len(sent) >= 5
    taken = paths.exchange("vietinbank") / "to-bank" / "taken"
    names = sorted(p.name for p in taken.iterdir())
    assert names == sorted(f"{msg_id}.xml" for msg_id in sent)  # no file twice, none lost
    cert = our_keypair(settings).cert_pem
    for path in taken.iterdir():
        tree = verify(path.read_bytes(), cert)
        xsd.validate(tree)
        assert path.name.removesuffix(".xml").encode() in path.read_bytes()
    counts = result["file_exchange"]["vietinbank"]
    assert counts["payment_files_taken_by_bank"] == len(sent)
    assert counts["payment_files_waiting"] == 0
    assert counts["reports_failed"] == 0
    assert counts["reports_waiting"] == 0
    # A pain.002 and a camt.054 of debits per file (every bill there settles), and the bank's
    # end-of-day statements.
    [(statements,)] = db.query("SELECT COUNT(*) FROM statements WHERE partner = 'vietinbank'")
    assert statements >= 1
    assert counts["reports_processed"] == 2 * len(sent) + statements
    inbound = paths.exchange("vietinbank") / "from-bank"
    assert [p.name for p in inbound.iterdir() if p.is_file()] == []
    read = db.query("SELECT COUNT(*) FROM inbound_files WHERE partner = 'vietinbank'")
    assert read == [(counts["reports_processed"],)]


def test_files_partner_orders_are_all_settled_with_postings(outcome: Any, month: DemoMonth) -> None:
    """Every bill paid over files is settled and posted once to the ledger."""
    _, paths, _ = outcome
    db = gateway_db(paths)
    states = dict(
        db.query("SELECT state, COUNT(*) FROM orders WHERE partner = 'vietinbank' GROUP BY 1")
    )
    bills = {o["order_id"] for o in month.orders if o["category"] in BILLS}
    assert states == {"settled": len(bills)}
    posted = [
        p["order_id"]
        for p in LedgerSink(paths.ledger_db).postings()
        if p["kind"] == "payment_settled" and p["order_id"] in bills
    ]
    assert sorted(posted) == sorted(bills)


def test_every_statement_reconciles(outcome: Any) -> None:
    """Each bank's end-of-day camt.053 matches the gateway's settled payments, revenue and
    returns, and its balances add up; every partner account has one."""
    result, paths, _ = outcome
    db = gateway_db(paths)
    assert result["statements"] == result["statements_reconciled"] >= 2
    assert result["reconciliation_problems"] == []
    accounts = {row for row in db.query("SELECT DISTINCT partner, account FROM statements")}
    assert accounts == {("agribank", "7411058271001"), ("vietinbank", "108000271446")}
    [(entries,)] = db.query("SELECT COUNT(*) FROM statement_entries")
    [(debits,)] = db.query("SELECT COUNT(*) FROM orders WHERE state IN ('settled', 'returned')")
    assert entries == debits + RETURNS + result["postings_by_kind"]["revenue_collected"]
