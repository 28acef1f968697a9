"""Refused files are kept in the quarantine folder by their hash, the database keeping the row;
`gateway quarantine` lists them and gives a file's bytes back."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from gateway.banksim.wiring import bank_keypair
from gateway.bootstrap import build_gateway
from gateway.config import Settings

GATEWAY = str(Path(sys.executable).parent / "gateway")


def _gateway(settings: Settings, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "GATEWAY_DB_PATH": settings.db_path,
        "GATEWAY_DB_URL": "",
        "GATEWAY_QUARANTINE_DIR": settings.quarantine_dir,
    }
    return subprocess.run([GATEWAY, *args], capture_output=True, env=env, timeout=60, check=False)


def test_refused_file_is_kept_on_disk_not_in_the_database(settings: Settings) -> None:
    """A refused file's bytes go to the folder under their SHA-256, once however often it comes;
    its row holds the hash and size, and no bytes."""
    gateway = build_gateway(settings)
    bank_keypair(settings, settings.partners["agribank"])  # the bank's certificate, pinned
    raw = b"<Document>" + b"x" * 5000 + b"<not well-formed"
    sha256 = hashlib.sha256(raw).hexdigest()
    assert gateway.inbound.apply("agribank", raw) == "quarantined"
    assert gateway.inbound.apply("agribank", raw) == "quarantined"
    kept = settings.quarantine_path / sha256[:2] / sha256
    assert kept.read_bytes() == raw
    assert [p.name for p in settings.quarantine_path.rglob("*") if p.is_file()] == [sha256]
    rows = gateway.storage.query("SELECT partner, sha256, size, raw, reason FROM quarantine")
    assert len(rows) == 1
    partner, row_hash, size, stored, reason = rows[0]
    assert (partner, row_hash, size, stored) == ("agribank", sha256, len(raw), None)
    assert reason.startswith("malformed XML")


def test_quarantine_commands_list_and_show_from_the_folder(settings: Settings) -> None:
    """`gateway quarantine list` shows the row; `show` reads the bytes from the folder."""
    gateway = build_gateway(settings)
    raw = b"\x00\x01 binary garbage"
    sha256 = hashlib.sha256(raw).hexdigest()
    assert gateway.inbound.apply("agribank", raw) == "quarantined"
    listed = _gateway(settings, "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert sha256[:16].encode() in listed.stdout
    assert b"agribank" in listed.stdout
    shown = _gateway(settings, "quarantine", "show", sha256[:12])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == raw
    (settings.quarantine_path / sha256[:2] / sha256).unlink()
    gone = _gateway(settings, "quarantine", "show", sha256)
    assert gone.returncode == 1
    assert b"Traceback" not in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1
