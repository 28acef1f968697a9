"""Signature modes wired through the gateway: the batcher's files and inbound, per partner."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from gateway.banksim.wiring import bank_keypair
from gateway.bootstrap import build_gateway, our_keypair
from gateway.cli import cli
from gateway.config import Settings
from gateway.iso20022.xml import to_bytes
from gateway.profile.signature import SignaturePolicy
from gateway.signing import sign, trusted, verify_for_partner
from gateway.signing.xmldsig import sign_detached
from tests.doubles import FakeClock, Msg, pass_quiet_time
from tests.security.corpus import notification
from tests.unit.test_intake import order


def with_mode(settings: Settings, mode: str) -> Settings:
    """Settings whose agribank profile signs in `mode`."""
    partner = settings.partners["agribank"]
    policy = replace(partner.signature, mode=mode)
    return replace(settings, partners={"agribank": replace(partner, signature=policy)})


def built_file(settings: Settings) -> tuple[bytes, dict[str, Any]]:
    """One order through intake and the batcher: the file's body and headers in the outbox."""
    gateway = build_gateway(settings, clock=FakeClock())
    gateway.intake.handle([Msg(json.dumps(order(), ensure_ascii=False).encode())])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(body, headers)] = gateway.storage.query(
        "SELECT body, headers FROM outbox WHERE exchange = 'gateway.to-bank'"
    )
    return bytes(body), json.loads(headers)


def test_a_detached_partner_gets_the_signature_in_the_header(settings: Settings) -> None:
    """The file goes unsigned; the `signature` header verifies it with our certificate."""
    detached = with_mode(settings, "detached")
    body, headers = built_file(detached)
    assert b"Signature" not in body
    signature = headers["signature"].encode()
    ours = our_keypair(detached)
    assert f"<ds:KeyName>{ours.key_id}</ds:KeyName>".encode() in signature
    policy = SignaturePolicy(mode="detached")
    # Received now: the batcher built the file now.
    received = datetime.now(UTC)
    verified = verify_for_partner(body, policy, [trusted(ours.cert_pem)], received, signature)
    assert verified.key_id == ours.key_id


def test_an_enveloped_partner_gets_a_signed_file_and_no_header(settings: Settings) -> None:
    """Enveloped: the signature is in the file, no `signature` header."""
    body, headers = built_file(with_mode(settings, "enveloped"))
    assert "signature" not in headers
    assert b"<ds:Signature" in body


def test_a_partner_without_signatures_gets_a_plain_file(settings: Settings) -> None:
    """Mode none: neither a signature in the file nor a header."""
    body, headers = built_file(with_mode(settings, "none"))
    assert "signature" not in headers and b"Signature" not in body


def test_inbound_reads_a_detached_signature_from_the_header(settings: Settings) -> None:
    """Over AMQP the `signature` header carries the .sig; without it the file is quarantined."""
    detached = with_mode(settings, "detached")
    gateway = build_gateway(detached)
    bank = bank_keypair(detached, detached.partners["agribank"])
    ok = to_bytes(notification(700))
    missing = to_bytes(notification(701))
    signature = sign_detached(ok, "SEC-700.xml", bank).decode()
    gateway.inbound.handle(
        [
            Msg(ok, {"partner": "agribank", "signature": signature}),
            Msg(missing, {"partner": "agribank"}),
        ]
    )
    reasons = [r for (r,) in gateway.storage.query("SELECT reason FROM quarantine ORDER BY id")]
    assert len(reasons) == 1 and reasons[0].startswith("no detached signature")
    # The signed one passed verification and reached the notification rules.
    assert gateway.storage.query("SELECT count(*) FROM inbound_files")[0][0] == 1


def test_gateway_verify_says_valid_or_exactly_why_not(settings: Settings, tmp_path: Path) -> None:
    """Exit 0 with `valid` for the bank's file; exit 1 naming the digest mismatch when changed."""
    home = tmp_path / "home"
    shutil.copytree(settings.home / "conf", home / "conf")
    (home / "schemas").symlink_to(settings.home / "schemas")
    bank = bank_keypair(settings, settings.partners["agribank"])
    (home / "keys").mkdir()
    (home / "keys" / "banksim-agribank.cert.pem").write_bytes(bank.cert_pem)
    good = tmp_path / "good.xml"
    good.write_bytes(sign(notification(702), bank))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(good.read_bytes().replace(b">540000<", b">940000<", 1))
    runner = CliRunner()
    env = {"GATEWAY_HOME": str(home)}
    result = runner.invoke(cli, ["verify", str(good), "--partner", "agribank"], env=env)
    assert result.exit_code == 0, result.output
    assert "valid camt.054.001.08 from agribank, signed by key " + bank.key_id in result.output
    result = runner.invoke(cli, ["verify", str(bad), "--partner", "agribank"], env=env)
    assert result.exit_code == 1
    assert "NOT valid: signature does not verify: digest mismatch" in result.output
