"""File exchange on real folders: atomic writes, claims, partial files, duplicates, crashes."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.adapters.filedrop import Folder, LocalFolder
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.banksim.bank import AccountBook, BankSimulator, RevenueItem
from gateway.banksim.files import FileBank
from gateway.banksim.wiring import bank_keypair, build_bank
from gateway.bootstrap import Gateway, build_gateway, partner_folders
from gateway.config import Settings
from gateway.profile import FileExchange
from gateway.service.file_relay import FileRelay
from gateway.service.file_scanner import CLAIMED, FAILED, PROCESSED, Claim, FileScanner
from gateway.service.ports import OutboxMessage
from gateway.service.relay import RelayService
from gateway.signing.xmldsig import sign_detached
from tests.doubles import FakeClock, Msg, pass_quiet_time

# slow: whole flows with the bank simulator over folders.
pytestmark = pytest.mark.slow

DSIG = "http://www.w3.org/2000/09/xmldsig#"

PARTNER = "vietinbank"


def with_folders(settings: Settings, root: Path, **changes: Any) -> Settings:
    """Settings whose VietinBank folders are under `root` (settling instantly unless changed)."""
    profile = settings.partners[PARTNER]
    assert profile.files is not None
    exchange = replace(
        profile.files,
        outbound=str(root / "to-bank"),
        inbound=str(root / "from-bank"),
        settle_seconds=0.0,
        **changes,
    )
    return replace(
        settings, partners={**settings.partners, PARTNER: replace(profile, files=exchange)}
    )


@dataclass
class Exchange:
    """A gateway and the VietinBank simulator sharing a pair of real folders."""

    settings: Settings
    gateway: Gateway
    bank: BankSimulator
    outbound: Folder
    inbound: Folder

    @property
    def inbound_path(self) -> Path:
        """The inbound folder on disk."""
        files = self.settings.partners[PARTNER].files
        assert files is not None
        return Path(files.inbound)

    def scanner(self, **kwargs: Any) -> FileScanner:
        """A new scanner of the inbound folder (as another process would have)."""
        partner = self.settings.partners[PARTNER]
        _, folder = partner_folders(self.settings, partner)
        return FileScanner(
            partner, folder, self.gateway.inbound, self.gateway.storage.queries, **kwargs
        )

    def drop(self, name: str, body: bytes) -> Path:
        """The bank writes a report, atomically."""
        self.inbound.write_atomic(name, body)
        return self.inbound_path / name

    def revenue_report(self, ref: str, amount: str = "1500000") -> tuple[str, bytes]:
        """A signed camt.054 credit from the bank: one revenue collection."""
        item = RevenueItem(
            bank_ref=ref,
            payer_name="Trần Văn Bình",
            amount=amount,
            currency="VND",
            value_date=date(2026, 11, 12),
            remittance=f"Thuế thu nhập cá nhân {ref}",
        )
        msg_id, _, body = self.bank.revenue_notification([item])
        return msg_id, body

    def revenue_rows(self) -> list[str]:
        """Bank references of the revenue taken in."""
        return [r for (r,) in self.gateway.storage.query("SELECT bank_ref FROM revenue ORDER BY 1")]

    def listing(self, sub: str = "") -> list[str]:
        """Names in the inbound folder (or a sub-folder)."""
        folder = self.inbound_path / sub if sub else self.inbound_path
        return sorted(p.name for p in folder.iterdir() if p.is_file())


@pytest.fixture
def exchange(settings: Settings, tmp_path: Path) -> Exchange:
    """Gateway and bank on folders under tmp_path."""
    return make_exchange(settings, tmp_path)


def make_exchange(settings: Settings, tmp_path: Path) -> Exchange:
    """Gateway and bank on folders under tmp_path, with these settings."""
    settings = with_folders(settings, tmp_path / "exchange")
    gateway = build_gateway(settings, clock=FakeClock())
    partner = settings.partners[PARTNER]
    bank = build_bank(settings, partner, AccountBook(), tmp_path / "bank.db")
    outbound, inbound = partner_folders(settings, partner)
    return Exchange(settings, gateway, bank, outbound, inbound)


def bill(order_id: str, day: str = "2026-11-10") -> bytes:
    """An electricity bill paid from the treasury's VietinBank account."""
    return json.dumps(
        {
            "schema": "payment-order/1",
            "order_id": order_id,
            "category": "electricity",
            "debtor": {
                "name": "Kho bạc Nhà nước Phú Lương",
                "account": {"number": "108000271446", "scheme": "BBAN"},
                "agent_bic": "ICBVVNVX",
            },
            "creditor": {
                "name": "Công ty Điện lực Thái Nguyên",
                "account": {"number": "0391000458812", "scheme": "BBAN"},
                "agent_bic": "BFTVVNVX",
            },
            "amount": "2350000",
            "currency": "VND",
            "requested_execution_date": day,
            "remittance": "Thanh toán tiền điện tháng 10/2026 - UBND xã Yên Ninh",
        },
        ensure_ascii=False,
    ).encode()


def batch_bills(exchange: Exchange, *ids: str) -> str:
    """Orders taken in and cut into one file in the outbox; returns its MsgId."""
    exchange.gateway.intake.handle([Msg(bill(i)) for i in ids])
    pass_quiet_time(exchange.gateway)
    assert exchange.gateway.batcher.tick() == 1
    [(msg_id,)] = exchange.gateway.storage.query("SELECT msg_id FROM files")
    return str(msg_id)


def relay(exchange: Exchange) -> FileRelay:
    """The file relay on the exchange's outbound folder."""
    return FileRelay(exchange.gateway.storage, {PARTNER: exchange.outbound})


# --- outbound ----------------------------------------------------------------------------------


def test_outbox_file_is_written_whole_under_its_msg_id(exchange: Exchange) -> None:
    """The relay writes <MsgId>.xml, leaves no temporary file, and marks file and orders sent."""
    msg_id = batch_bills(exchange, "DV2611-0001", "DV2611-0002")
    assert relay(exchange).drain() == 1
    out = Path(exchange.settings.partners[PARTNER].files.outbound)  # type: ignore[union-attr]
    assert sorted(p.name for p in out.iterdir()) == [f"{msg_id}.xml"]
    [(body,)] = exchange.gateway.storage.query(
        "SELECT body FROM outbox WHERE message_id = ?", (msg_id,)
    )
    assert (out / f"{msg_id}.xml").read_bytes() == bytes(body)
    storage = exchange.gateway.storage
    assert storage.query("SELECT state FROM files") == [("sent",)]
    assert {s for (s,) in storage.query("SELECT state FROM orders")} == {"sent"}
    assert relay(exchange).drain() == 0  # sent once


def test_the_broker_relay_leaves_files_partners_alone(exchange: Exchange) -> None:
    """A file for a files partner is never published on the broker."""
    batch_bills(exchange, "DV2611-0001")

    class Refuse:
        def publish(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError(f"published {args[:2]}")

        def keepalive(self) -> None:
            """Nothing to keep alive."""

    files = ("vietinbank",)
    assert RelayService(exchange.gateway.storage, Refuse(), file_partners=files).drain() == 0
    assert relay(exchange).drain() == 1


def test_a_detached_signature_is_written_beside_its_file(exchange: Exchange) -> None:
    """An outbox row carrying a `signature` header gets `<name>.sig` beside the XML."""
    with exchange.gateway.storage.unit_of_work() as uow:
        uow.outbox.enqueue(
            OutboxMessage(
                "KBNN-TEST-0001",
                "gateway.to-bank",
                PARTNER,
                b"<Document/>",
                {"partner": PARTNER, "signature": "<ds:Signature>…</ds:Signature>"},
            ),
            datetime(2026, 11, 10, 1, 0, tzinfo=UTC),
        )
    assert relay(exchange).drain() == 1
    out = Path(exchange.settings.partners[PARTNER].files.outbound)  # type: ignore[union-attr]
    assert (out / "KBNN-TEST-0001.xml").read_bytes() == b"<Document/>"
    assert (out / "KBNN-TEST-0001.xml.sig").read_text("utf-8") == "<ds:Signature>…</ds:Signature>"


def test_an_unwritable_outbound_folder_keeps_the_file_pending(exchange: Exchange) -> None:
    """When the folder cannot be written, nothing is marked sent; the next drain delivers."""
    msg_id = batch_bills(exchange, "DV2611-0001")
    out = Path(exchange.settings.partners[PARTNER].files.outbound)  # type: ignore[union-attr]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("not a folder")  # stands in for a folder we may not write (root ignores modes)
    assert relay(exchange).drain() == 0
    assert exchange.gateway.storage.query("SELECT state FROM files") == [("built",)]
    out.unlink()
    assert relay(exchange).drain() == 1
    assert (out / f"{msg_id}.xml").exists()


# --- inbound ----------------------------------------------------------------------------------


def test_partial_and_fresh_files_are_left_alone(exchange: Exchange) -> None:
    """.tmp, .part and hidden names, and a file modified a moment ago, wait for a later scan."""
    _, body = exchange.revenue_report("VTB2611R000001")
    inbound = exchange.inbound_path
    inbound.mkdir(parents=True, exist_ok=True)
    for name in ("a.xml.tmp", "b.xml.part", ".c.xml", "d.XML.PART"):
        (inbound / name).write_bytes(body[: len(body) // 2])
    (inbound / "fresh.xml").write_bytes(body)
    settling = exchange.scanner()
    settling._exchange = replace(settling._exchange, settle_seconds=30.0)
    assert settling.scan() == Counter(settling=1)
    assert exchange.revenue_rows() == []
    assert exchange.listing() == sorted(
        [".c.xml", "a.xml.tmp", "b.xml.part", "d.XML.PART", "fresh.xml"]
    )
    later = exchange.scanner(clock=lambda: time.time() + 60)
    assert later.scan() == Counter(applied=1)
    assert exchange.revenue_rows() == ["VTB2611R000001"]
    assert exchange.listing(PROCESSED) == ["fresh.xml"]
    assert "fresh.xml" not in exchange.listing()


def test_a_file_dropped_twice_is_taken_in_once(exchange: Exchange) -> None:
    """The same report under two names, and again under its first name: one revenue, one posting."""
    msg_id, body = exchange.revenue_report("VTB2611R000002")
    exchange.drop(f"{msg_id}.xml", body)
    exchange.drop(f"{msg_id}-copy.xml", body)
    scanner = exchange.scanner()
    assert scanner.scan() == Counter(applied=1, duplicate=1)
    exchange.drop(f"{msg_id}.xml", body)  # once more, after the first was processed
    assert scanner.scan() == Counter(duplicate=1)
    assert exchange.revenue_rows() == ["VTB2611R000002"]
    postings = exchange.gateway.storage.query(
        "SELECT COUNT(*) FROM outbox WHERE exchange = 'treasury.ledger'"
    )
    assert postings == [(1,)]
    processed = exchange.listing(PROCESSED)
    assert len(processed) == 3  # every copy kept, none replaced
    assert f"{msg_id}.xml" in processed and f"{msg_id}-copy.xml" in processed
    assert exchange.listing() == []


def test_a_detached_signature_travels_with_its_report(settings: Settings, tmp_path: Path) -> None:
    """For a detached partner, `<name>.sig` is claimed with its file, verified, kept beside it."""
    profile = settings.partners[PARTNER]
    detached = replace(profile, signature=replace(profile.signature, mode="detached"))
    exchange = make_exchange(
        replace(settings, partners={**settings.partners, PARTNER: detached}), tmp_path
    )
    msg_id, signed = exchange.revenue_report("VTB2611R000009")
    root = etree.fromstring(signed)
    for signature in root.findall(f"{{{DSIG}}}Signature"):
        root.remove(signature)
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    bank_key = bank_keypair(exchange.settings, detached)
    exchange.drop(f"{msg_id}.xml.sig", sign_detached(body, f"{msg_id}.xml", bank_key))
    exchange.drop(f"{msg_id}.xml", body)
    assert exchange.scanner().scan() == Counter(applied=1)
    assert exchange.listing(PROCESSED) == [f"{msg_id}.xml", f"{msg_id}.xml.sig"]
    assert exchange.listing() == []
    assert exchange.listing(CLAIMED) == []
    assert exchange.revenue_rows() == ["VTB2611R000009"]


def test_a_detached_report_without_its_signature_fails(settings: Settings, tmp_path: Path) -> None:
    """A detached partner's report arriving with a bogus `.sig` is refused, kept in failed/."""
    profile = settings.partners[PARTNER]
    detached = replace(profile, signature=replace(profile.signature, mode="detached"))
    exchange = make_exchange(
        replace(settings, partners={**settings.partners, PARTNER: detached}), tmp_path
    )
    msg_id, signed = exchange.revenue_report("VTB2611R000010")
    exchange.drop(f"{msg_id}.xml.sig", b"<ds:Signature/>")
    exchange.drop(f"{msg_id}.xml", signed)
    assert exchange.scanner().scan() == Counter(quarantined=1)
    assert f"{msg_id}.xml" in exchange.listing(FAILED)
    assert exchange.revenue_rows() == []


def test_a_refused_report_goes_to_failed_with_its_reason(exchange: Exchange) -> None:
    """A report whose signature does not verify is quarantined, moved to failed/, reason beside."""
    _, body = exchange.revenue_report("VTB2611R000003", amount="1500000")
    exchange.drop("tampered.xml", body.replace(b"1500000", b"9500000"))
    assert exchange.scanner().scan() == Counter(quarantined=1)
    assert exchange.listing(FAILED) == ["tampered.xml", "tampered.xml.reason.txt"]
    reason = (exchange.inbound_path / FAILED / "tampered.xml.reason.txt").read_text("utf-8")
    assert "signature" in reason.lower()
    assert exchange.revenue_rows() == []
    assert exchange.gateway.storage.query("SELECT COUNT(*) FROM quarantine") == [(1,)]


def test_two_scanners_at_once_read_each_file_once(exchange: Exchange) -> None:
    """Two scanners racing over 40 reports: each file is claimed by one, applied once."""
    refs = [f"VTB2611R{n:06d}" for n in range(100, 140)]
    for ref in refs:
        msg_id, body = exchange.revenue_report(ref)
        exchange.drop(f"{msg_id}.xml", body)
    scanners = [exchange.scanner(), exchange.scanner()]
    start = threading.Barrier(2)
    results: list[Counter[str]] = []

    def run(scanner: FileScanner) -> None:
        start.wait()
        results.append(scanner.scan())

    threads = [threading.Thread(target=run, args=(s,)) for s in scanners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    total = results[0] + results[1]
    assert total["applied"] == len(refs)
    assert total["duplicate"] == 0
    assert total["applied"] + total["taken_by_another"] >= len(refs)
    assert exchange.revenue_rows() == refs
    assert len(exchange.listing(PROCESSED)) == len(refs)
    assert exchange.listing(CLAIMED) == []
    assert exchange.listing() == []


def test_an_unwritable_processed_folder_loses_nothing(exchange: Exchange) -> None:
    """The report is taken in, stays claimed while processed/ cannot take it, then moves once."""
    msg_id, body = exchange.revenue_report("VTB2611R000004")
    scanner = exchange.scanner()
    scanner.scan()  # creates the sub-folders
    processed = exchange.inbound_path / PROCESSED
    processed.rmdir()
    processed.write_text("not a folder")  # as root, permission bits would not stop the move
    exchange.drop(f"{msg_id}.xml", body)
    assert scanner.scan() == Counter(left_claimed=1)
    assert exchange.revenue_rows() == ["VTB2611R000004"]
    assert len(exchange.listing(CLAIMED)) == 1
    assert scanner.scan() == Counter(left_claimed=1)  # still in the way: retried, not re-applied
    processed.unlink()
    processed.mkdir()
    assert scanner.scan() == Counter(duplicate=1)
    assert exchange.listing(PROCESSED) == [f"{msg_id}.xml"]
    assert exchange.listing(CLAIMED) == []
    assert exchange.revenue_rows() == ["VTB2611R000004"]
    postings = exchange.gateway.storage.query(
        "SELECT COUNT(*) FROM outbox WHERE exchange = 'treasury.ledger'"
    )
    assert postings == [(1,)]


CRASHING_SCAN = """
import os, pickle, sys
from gateway.bootstrap import open_database, partner_folders
from gateway.service import file_scanner
from gateway.service.inbound import InboundService

settings = pickle.loads(open(sys.argv[1], "rb").read())
where = sys.argv[2]
if where == "after_apply":
    file_scanner.FileScanner._set_aside = lambda *a, **k: os._exit(9)
else:
    InboundService.apply = lambda *a, **k: os._exit(9)
partner = settings.partners["vietinbank"]
storage = open_database(settings)
_, folder = partner_folders(settings, partner)
file_scanner.FileScanner(partner, folder, InboundService(storage, settings), storage.queries).scan()
"""


@pytest.mark.parametrize("where", ["before_apply", "after_apply"])
def test_a_scanner_killed_mid_scan_is_finished_by_the_next(
    exchange: Exchange, tmp_path: Path, where: str
) -> None:
    """A scanner process dies holding a claim; the next scan takes it over and applies it once."""
    msg_id, body = exchange.revenue_report("VTB2611R000005")
    exchange.drop(f"{msg_id}.xml", body)
    pickled = tmp_path / "settings.pickle"
    pickled.write_bytes(pickle.dumps(exchange.settings))
    died = subprocess.run(
        [sys.executable, "-c", CRASHING_SCAN, str(pickled), where],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert died.returncode == 9, died.stderr
    [claimed] = exchange.listing(CLAIMED)
    assert claimed.startswith(f"{msg_id}.xml@")
    expected = ["VTB2611R000005"] if where == "after_apply" else []
    assert exchange.revenue_rows() == expected
    outcome = exchange.scanner().scan()
    assert outcome == Counter(duplicate=1) if where == "after_apply" else Counter(applied=1)
    assert exchange.revenue_rows() == ["VTB2611R000005"]
    assert exchange.listing(PROCESSED) == [f"{msg_id}.xml"]
    assert exchange.listing(CLAIMED) == []


def test_a_live_scanner_claim_is_respected_until_stale(exchange: Exchange) -> None:
    """A claim by a scanner on another host is left alone, then taken over once it is stale."""
    msg_id, body = exchange.revenue_report("VTB2611R000006")
    exchange.scanner().scan()  # the sub-folders
    now = time.time()
    claim = Claim(f"{msg_id}.xml", "other-host~4242-abcdef01", now - 60)
    (exchange.inbound_path / claim.path).write_bytes(body)
    assert exchange.scanner().scan() == Counter()
    assert exchange.revenue_rows() == []
    later = exchange.scanner(clock=lambda: now + 3600)
    assert later.scan() == Counter(applied=1)
    assert exchange.revenue_rows() == ["VTB2611R000006"]
    assert exchange.listing(CLAIMED) == []


def test_payment_files_go_round_trip_through_the_bank(exchange: Exchange) -> None:
    """Relay → bank's folder → bank simulator → reports in our folder → scan: bills settled."""
    msg_id = batch_bills(exchange, "DV2611-0001", "DV2611-0002")
    assert relay(exchange).drain() == 1
    bank_side = FileBank(exchange.bank, exchange.outbound, exchange.inbound)
    assert bank_side.poll() == 1
    assert bank_side.poll() == 0  # the file was taken
    assert exchange.scanner().scan() == Counter(applied=2)  # pain.002 and camt.054
    states = dict(exchange.gateway.storage.query("SELECT order_id, state FROM orders"))
    assert states == {"DV2611-0001": "settled", "DV2611-0002": "settled"}
    assert exchange.gateway.storage.query(
        "SELECT state FROM files WHERE msg_id = ?", (msg_id,)
    ) == [("acknowledged",)]


def test_files_scan_command_reads_the_folder(exchange: Exchange, tmp_path: Path) -> None:
    """`gateway files scan --json` in a gateway home reads what waits, once."""
    home = tmp_path / "home"
    (home / "conf" / "partners").mkdir(parents=True)
    root = Path(__file__).resolve().parents[2]
    (home / "conf" / "partners" / "vietinbank.toml").write_text(
        (root / "conf" / "partners" / "vietinbank.toml").read_text("utf-8"), "utf-8"
    )
    keys = Path(exchange.settings.keys_path)
    (home / "keys").symlink_to(keys)
    exchange_dir = home / "var" / "exchange" / "vietinbank"
    folder = LocalFolder(exchange_dir / "from-bank")
    msg_id, body = exchange.revenue_report("VTB2611R000007")
    folder.write_atomic(f"{msg_id}.xml", body)
    os.utime(exchange_dir / "from-bank" / f"{msg_id}.xml", (time.time() - 60, time.time() - 60))
    env = {**os.environ, "GATEWAY_HOME": str(home)}
    command = [str(Path(sys.executable).parent / "gateway"), "files", "scan", "--json"]
    # No database yet: the scan refuses instead of applying the report to a new, empty one.
    early = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert early.returncode == 1
    assert "no gateway database at" in early.stderr and "Traceback" not in early.stderr
    assert (exchange_dir / "from-bank" / f"{msg_id}.xml").is_file()
    SqliteStorage(home / "var" / "gateway.db").close()  # the gateway has run here once
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"vietinbank": {"applied": 1}}
    second = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert json.loads(second.stdout) == {"vietinbank": {}}
    bad = subprocess.run(
        [*command, "--partner", "agribank"], capture_output=True, text=True, env=env, check=False
    )
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "error: no partner profile named 'agribank' in conf/partners/ (known: vietinbank)"
    )


def test_an_exchange_profile_round_trips(exchange: Exchange) -> None:
    """The fixture's folders are what the scanner and relay use."""
    files = exchange.settings.partners[PARTNER].files
    assert isinstance(files, FileExchange)
    assert exchange.outbound.describe() == files.outbound
    assert exchange.inbound.describe() == files.inbound
