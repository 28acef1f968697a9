"""The bank simulator's wiring: builds a simulated partner bank from Settings and runs it.

The product's composition root (gateway/bootstrap.py) knows nothing of the simulator; the demo,
`gateway bank-sim`, the fault harness and the tests wire the bank here, beside the gateway.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from gateway.adapters import topology
from gateway.adapters.rabbitmq import Delivery, Publisher, consume
from gateway.banksim.bank import AccountBook, BankSimulator, Reply
from gateway.banksim.faults import FaultPlan, ReplyFaults
from gateway.banksim.files import FileBank
from gateway.banksim.record import BankRecord
from gateway.bootstrap import partner_folders
from gateway.config import PartnerProfile, Settings
from gateway.errors import ConfigError, GatewayError
from gateway.profile.signature import PinnedCertificate
from gateway.runtime import Runtime, every
from gateway.signing import (
    SIGNATURE_HEADER,
    KeyPair,
    TrustedCertificate,
    ensure_keypair,
    passphrase_from_env,
    trusted,
)
from gateway.signing.keys import pair_files, read_activation

log = structlog.get_logger("gateway.banksim")


def bank_keypair(settings: Settings, partner: PartnerProfile) -> KeyPair | None:
    """The simulated bank's key pair; its certificate is the one the partner profile pins.

    None for a partner that pins no certificate (signature mode `none`): that bank signs nothing.
    """
    pinned = partner.signature.current
    if pinned is None:
        return None
    cert = settings.path(pinned.path)
    name = cert.name.removesuffix(".cert.pem")
    return ensure_keypair(
        cert.parent, name, f"{partner.name} bank simulator", passphrase_from_env()
    )


def our_certificate(settings: Settings) -> bytes:
    """Our certificate as a bank holds it: read, never generated, by anyone but the gateway."""
    path = settings.keys_path / f"{settings.signing_key}.cert.pem"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"no treasury certificate at {path}: start `gateway run` once (it generates the key"
            " pair) or copy the treasury's certificate there"
        ) from None


def our_certificates(settings: Settings) -> tuple[TrustedCertificate, ...]:
    """Our certificates as a bank pins them: the current one, and after `gateway keys rotate`
    the next one too, trusted from its activation date (certificates only, never our keys)."""
    current = settings.keys_path / f"{settings.signing_key}.cert.pem"
    pinned = [trusted(our_certificate(settings), source=str(current))]
    _, next_cert, _ = pair_files(settings.keys_path, f"{settings.signing_key}.next")
    if next_cert.is_file():
        activates = read_activation(settings.keys_path, settings.signing_key)
        pin = PinnedCertificate(str(next_cert), not_before=activates)
        pinned.append(trusted(next_cert.read_bytes(), pin, str(next_cert)))
    return tuple(pinned)


def file_bank(settings: Settings, partner: PartnerProfile, bank: BankSimulator) -> FileBank:
    """The bank simulator on the partner's folders: reads outbound, writes inbound."""
    outbound, inbound = partner_folders(settings, partner)
    return FileBank(bank, outbound, inbound)


def start_file_bank(
    settings: Settings, partner: PartnerProfile, bank: BankSimulator, runtime: Runtime
) -> None:
    """Run the bank simulator over the partner's folders."""
    poll = partner.files.poll_seconds if partner.files else 1.0

    def serve(stop: threading.Event) -> None:
        side = file_bank(settings, partner, bank)
        try:
            while not stop.is_set():
                try:
                    side.poll()
                except (GatewayError, OSError) as exc:
                    log.warning("bank.poll_failed", partner=partner.name, error=str(exc))
                stop.wait(min(poll, 0.5))
        finally:
            side.close()

    runtime.add(f"bank-sim-{partner.name}", serve)


def load_book(path: Path | None) -> AccountBook:
    """The bank's closed and unknown accounts from a JSON file {"closed": [], "unknown": []};
    without a file (None), a bank that refuses no account. A file named but missing or
    unreadable is an error: a bank silently refusing nothing would hide a typo in --book."""
    if path is None:
        return AccountBook()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"bank book {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"bank book {path}: not UTF-8 ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"bank book {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f'bank book {path}: expected {{"closed": [...], "unknown": [...]}}')
    return AccountBook(
        closed=frozenset(data.get("closed", [])), unknown=frozenset(data.get("unknown", []))
    )


def build_bank(
    settings: Settings,
    partner: PartnerProfile,
    book: AccountBook,
    record_path: Path,
    resend_answer: str = "replay",
) -> BankSimulator:
    """A bank simulator for one partner, trusting our current and next certificates and
    signing as the partner's profile says; `resend_answer` is how it answers a file it already
    has (see `gateway.banksim.bank.RESEND_ANSWERS`)."""
    account = partner.accounts[0] if partner.accounts else "BBAN:0"
    return BankSimulator(
        bic=partner.bic,
        account=account.split(":")[-1],
        keypair=bank_keypair(settings, partner),
        # A partner without signatures checks none of ours: it needs no certificate of ours.
        trusted=our_certificates(settings) if partner.signature.mode != "none" else (),
        record=BankRecord(record_path),
        book=book,
        policy=partner.signature,
        resend_answer=resend_answer,
    )


def publish_reply(publisher: Publisher, partner: str, bank: BankSimulator, reply: Reply) -> None:
    """Publish one bank file to `gateway.from-bank`, with its detached signature header if any."""
    reply_id, kind, _ = reply
    signed = bank.wire(reply)
    publisher.publish(
        topology.FROM_BANK_EXCHANGE,
        partner,
        signed.body,
        message_id=reply_id,
        headers={"partner": partner, "message_type": kind, **signed.headers},
        content_type="application/xml",
    )


def detached_signature(message: Delivery) -> bytes | None:
    """The detached signature a message carries in its `signature` header, if any."""
    value = message.headers.get(SIGNATURE_HEADER)
    if isinstance(value, str):
        return value.encode()
    return value if isinstance(value, bytes) else None


def start_bank(
    settings: Settings, partner: PartnerProfile, bank: BankSimulator, runtime: Runtime
) -> None:
    """Run the bank simulator on the partner's inbox; replies go to `gateway.from-bank`.

    A partner reached by file exchange is served over its folders instead. With
    `settings.banksim_faults` the bank misbehaves (see gateway.banksim.faults).
    """
    if partner.transport == "files":
        start_file_bank(settings, partner, bank, runtime)
        return
    plan = FaultPlan.parse(settings.banksim_faults)

    def sender(publisher: Publisher) -> Callable[[Reply], None]:
        def send(reply: Reply) -> None:
            publish_reply(publisher, partner.name, bank, reply)

        return send

    def serve(stop: threading.Event) -> None:
        publisher = Publisher(settings.amqp_url)
        send = sender(publisher)
        faults = ReplyFaults(plan, bank.record.path, send) if plan.active else None

        def handle(messages: Sequence[Delivery]) -> None:
            for message in messages:
                replies = bank.receive(message.body, detached_signature(message))
                if faults is not None:
                    faults.deliver(replies)
                    continue
                for reply in replies:
                    send(reply)

        try:
            consume(
                settings.amqp_url,
                topology.bank_inbox(partner.name),
                handle,
                stop,
                prefetch=4,
                chunk=1,
            )
        finally:
            publisher.close()

    def resend(stop: threading.Event) -> None:
        publisher = Publisher(settings.amqp_url)
        faults = ReplyFaults(plan, bank.record.path, sender(publisher))
        try:
            every(0.25, faults.flush_due)(stop)
        finally:
            faults.close()
            publisher.close()

    runtime.add(f"bank-sim-{partner.name}", serve)
    if plan.active:
        runtime.add(f"bank-sim-{partner.name}-resend", resend)
