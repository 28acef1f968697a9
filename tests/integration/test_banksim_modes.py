"""The bank simulator signs and verifies as the partner's [signature] mode says, over the broker
and over folders, and trusts our next key from its activation date."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.adapters import topology
from gateway.adapters.rabbitmq import Publisher, connect
from gateway.banksim.bank import AccountBook
from gateway.banksim.files import FileBank
from gateway.banksim.wiring import build_bank, start_bank
from gateway.bootstrap import build_gateway, declare_topology, start_gateway
from gateway.config import Settings
from gateway.iso20022.pain002 import read_pain002
from gateway.iso20022.xml import parse_xml
from gateway.runtime import Runtime
from gateway.service.clock import utcnow
from gateway.signing import load_keyring, passphrase_from_env, sign
from gateway.signing.keys import generate_keypair, store_pair
from tests.doubles import FakeClock, Msg, pass_quiet_time
from tests.integration.test_files import PARTNER, batch_bills, make_exchange, relay
from tests.unit.test_intake import order

# slow: whole flows with the bank simulator.
pytestmark = pytest.mark.slow

DSIG = "http://www.w3.org/2000/09/xmldsig#"


def detached(settings: Settings, partner: str) -> Settings:
    """The settings with one partner signing detached, both ways."""
    profile = settings.partners[partner]
    changed = replace(profile, signature=replace(profile.signature, mode="detached"))
    return replace(settings, partners={**settings.partners, partner: changed})


def publish_orders(settings: Settings, orders: list[dict[str, Any]], prefix: str) -> None:
    """Orders published as the treasury core publishes them, message ids `<prefix><n>`."""
    publisher = Publisher(settings.amqp_url)
    try:
        for n, body in enumerate(orders):
            publisher.publish(
                topology.ORDERS_EXCHANGE,
                "order.social_benefit",
                json.dumps(body, ensure_ascii=False).encode(),
                message_id=f"{prefix}{n}",
            )
    finally:
        publisher.close()


def _purge(settings: Settings) -> None:
    conn = connect(settings.amqp_url)
    try:
        channel = conn.channel()
        for queue in (
            topology.ORDERS_QUEUE,
            topology.LEDGER_QUEUE,
            topology.FROM_BANK_QUEUE,
            topology.bank_inbox("agribank"),
        ):
            channel.queue_purge(queue)
    finally:
        conn.close()


@pytest.mark.broker
def test_a_detached_partner_end_to_end_over_amqp(
    settings: Settings, broker_url: str, tmp_path: Path
) -> None:
    """Orders → detached pain.001 (`signature` header) → simulator → detached pain.002 and
    camt.054 → settled postings; nothing quarantined on either side."""
    settings = detached(
        replace(settings, partners={"agribank": settings.partners["agribank"]}), "agribank"
    )
    gateway = build_gateway(settings)
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    orders = [order(order_id="DT-1"), order(order_id="DT-2", amount="606000")]
    runtime = Runtime()
    try:
        declare_topology(settings)
        _purge(settings)
        start_gateway(gateway, runtime)
        start_bank(settings, settings.partners["agribank"], bank, runtime)
        publish_orders(settings, orders, "dt")
        deadline = time.monotonic() + 30
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = dict(gateway.storage.query("SELECT order_id, state FROM orders"))
            if set(states.values()) == {"settled"} and len(states) == 2:
                break
            time.sleep(0.2)
    finally:
        runtime.stop()
    assert states == {"DT-1": "settled", "DT-2": "settled"}
    [(headers,)] = gateway.storage.query(
        "SELECT headers FROM outbox WHERE exchange = 'gateway.to-bank'"
    )
    assert json.loads(headers)["signature"].startswith("<?xml")
    assert gateway.storage.query("SELECT COUNT(*) FROM quarantine") == [(0,)]
    kinds = gateway.storage.query("SELECT message_type FROM inbound_files ORDER BY 1")
    assert [k[:8] for (k,) in kinds] == ["camt.054", "pain.002"]
    postings = gateway.storage.query(
        "SELECT COUNT(*) FROM outbox WHERE routing_key = 'posting.payment_settled'"
    )
    assert postings == [(2,)]


def test_a_detached_partner_end_to_end_over_files(settings: Settings, tmp_path: Path) -> None:
    """Relay writes `<file>.sig` → the simulator verifies it and writes its reports with their
    own `.sig` → the scanner verifies them: bills settled, signatures kept beside the files."""
    exchange = make_exchange(detached(settings, PARTNER), tmp_path)
    msg_id = batch_bills(exchange, "DV2611-0101", "DV2611-0102")
    assert relay(exchange).drain() == 1
    bank_side = FileBank(exchange.bank, exchange.outbound, exchange.inbound)
    assert bank_side.poll() == 1
    written = exchange.listing()
    assert len(written) == 4 and sum(name.endswith(".xml.sig") for name in written) == 2
    for name in written:
        if name.endswith(".xml"):
            body = (exchange.inbound_path / name).read_bytes()
            assert parse_xml(body).find(f".//{{{DSIG}}}Signature") is None
    assert exchange.scanner().scan() == Counter(applied=2)
    states = dict(exchange.gateway.storage.query("SELECT order_id, state FROM orders"))
    assert states == {"DV2611-0101": "settled", "DV2611-0102": "settled"}
    assert exchange.gateway.storage.query(
        "SELECT state FROM files WHERE msg_id = ?", (msg_id,)
    ) == [("acknowledged",)]
    files = exchange.settings.partners[PARTNER].files
    assert files is not None
    taken = sorted(p.name for p in (Path(files.outbound) / "taken").iterdir())
    assert taken == [f"{msg_id}.xml", f"{msg_id}.xml.sig"]


def test_an_unsigned_file_to_a_detached_bank_is_refused(settings: Settings, tmp_path: Path) -> None:
    """A payment file without its `.sig` for a detached partner: the bank rejects it (DS0A)."""
    settings = detached(settings, "agribank")
    gateway = build_gateway(settings, clock=FakeClock())
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    gateway.intake.handle([Msg(json.dumps(order(order_id="DT-9")).encode())])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(body,)] = gateway.storage.query("SELECT body FROM outbox WHERE exchange = 'gateway.to-bank'")
    [(_, kind, reply)] = bank.receive(bytes(body))
    report = read_pain002(parse_xml(reply))
    assert (kind, report.group_status, report.group_reason_code) == ("pain.002", "RJCT", "DS0A")
    assert "no detached signature" in (report.group_reason_text or "")


def _rotate(settings: Settings, activation_hours: float) -> None:
    """Prepare our next key as `gateway keys rotate` does, signing from now + the hours given."""
    now = utcnow()
    key_pem, cert_pem = generate_keypair("KBNN - gateway", valid_from=now - timedelta(hours=2))
    name = settings.signing_key
    store_pair(settings.keys_path, f"{name}.next", key_pem, cert_pem, passphrase_from_env())
    activates = now + timedelta(hours=activation_hours)
    (settings.keys_path / f"{name}.next.activates").write_text(activates.isoformat() + "\n")


def _built_file(settings: Settings, order_id: str) -> tuple[bytes, str]:
    """One order taken in and batched: the signed file and the KeyName that signed it."""
    gateway = build_gateway(settings, clock=FakeClock())
    gateway.intake.handle([Msg(json.dumps(order(order_id=order_id)).encode())])
    pass_quiet_time(gateway)
    assert gateway.batcher.tick() == 1
    [(body,)] = gateway.storage.query("SELECT body FROM outbox WHERE exchange = 'gateway.to-bank'")
    [key_name] = parse_xml(bytes(body)).xpath("//ds:KeyName/text()", namespaces={"ds": DSIG})
    return bytes(body), str(key_name)


def test_a_file_signed_by_our_next_key_after_activation_is_accepted(
    settings: Settings, tmp_path: Path
) -> None:
    """After the activation date the gateway signs with the next key; the simulator, pinning
    current and next, settles the file."""
    build_gateway(settings)  # our current key exists
    _rotate(settings, activation_hours=-1)
    ring = load_keyring(settings.keys_path, settings.signing_key, passphrase_from_env())
    assert ring.next is not None
    body, key_name = _built_file(settings, "NK-1")
    assert key_name == ring.next.key_id
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    [status, notification] = bank.receive(body)
    assert read_pain002(parse_xml(status[2])).group_status != "RJCT"
    assert notification[1] == "camt.054"


def test_our_next_key_before_its_activation_is_refused(settings: Settings, tmp_path: Path) -> None:
    """Before the activation date a file signed by the next key is refused (DS0A); the current
    key still signs and is accepted."""
    build_gateway(settings)
    _rotate(settings, activation_hours=24)
    ring = load_keyring(settings.keys_path, settings.signing_key, passphrase_from_env())
    assert ring.next is not None
    body, key_name = _built_file(settings, "NK-2")
    assert key_name == ring.current.key_id
    bank = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "b.db")
    assert read_pain002(parse_xml(bank.receive(body)[0][2])).group_status != "RJCT"
    root = parse_xml(body)
    for signature in root.iter(f"{{{DSIG}}}Signature"):
        signature.getparent().remove(signature)
        break
    early = sign(etree.fromstring(etree.tostring(root)), ring.next)
    other = build_bank(settings, settings.partners["agribank"], AccountBook(), tmp_path / "c.db")
    [(_, _, reply)] = other.receive(early)
    report = read_pain002(parse_xml(reply))
    assert (report.group_status, report.group_reason_code) == ("RJCT", "DS0A")
    assert "not yet valid" in (report.group_reason_text or "")
