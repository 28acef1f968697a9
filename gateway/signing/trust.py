"""Trust in a partner: its pinned certificates (current and next), each within its window.

A bank rotates its key without downtime by having its next certificate pinned beside the current
one before it starts signing with it. A signature is accepted only from a pinned certificate
whose key is strong enough and which is trusted when the file is received: never at the time the
file claims for itself, so expiry and rotation retire a key from whoever holds it. The creation
time the file states (CreDtTm, or the AppHdr's CreDt) only has to lie within the partner's
tolerance of that moment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gateway.errors import ConfigError
from gateway.iso20022.namespaces import DsigAlgorithm
from gateway.iso20022.xml import parse_datetime
from gateway.profile.signature import PinnedCertificate
from gateway.signing.keys import certificate, key_id_of
from gateway.signing.xmldsig import HEAD_NS, SignatureError, SignatureShape

MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class TrustedCertificate:
    """A pinned certificate and the window in which it is trusted."""

    cert_pem: bytes
    key_id: str
    der: bytes
    not_before: datetime
    not_after: datetime
    source: str


def trusted(
    cert_pem: bytes, pin: PinnedCertificate | None = None, source: str = ""
) -> TrustedCertificate:
    """A certificate as trusted: its own validity narrowed by the pin's window."""
    cert = certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if pin is not None and pin.not_before is not None:
        start = max(start, pin.not_before)
    if pin is not None and pin.not_after is not None:
        end = min(end, pin.not_after)
    return TrustedCertificate(
        cert_pem=cert_pem,
        key_id=key_id_of(cert_pem),
        der=cert.public_bytes(serialization.Encoding.DER),
        not_before=start,
        not_after=end,
        source=source or (pin.path if pin else ""),
    )


def load_pinned(
    pins: Sequence[PinnedCertificate], resolve: Callable[[str], Path], partner: str
) -> tuple[TrustedCertificate, ...]:
    """Read a partner's pinned certificates, naming the file that cannot be used."""
    loaded = []
    for pin in pins:
        path = resolve(pin.path)
        try:
            loaded.append(trusted(path.read_bytes(), pin, str(path)))
        except OSError as exc:
            raise ConfigError(
                f"pinned certificate of {partner} unreadable: {path}: {exc.strerror}"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"pinned certificate of {partner} at {path}: {exc}") from None
    return tuple(loaded)


def choose(shape: SignatureShape, pinned: Sequence[TrustedCertificate]) -> list[TrustedCertificate]:
    """The pinned certificates the signature can have been made with, or why there are none."""
    if not pinned:
        raise SignatureError("no certificate is pinned for this partner")
    if shape.certificates:
        by_der = {p.der: p for p in pinned}
        chosen = []
        for der in shape.certificates:
            match = by_der.get(der)
            if match is None:
                raise SignatureError(
                    f"certificate {hashlib.sha256(der).hexdigest()[:16]} is not pinned for this"
                    f" partner; pinned: {', '.join(p.key_id for p in pinned)}"
                )
            chosen.append(match)
        return chosen[:1]
    if shape.key_name:
        named = [p for p in pinned if p.key_id == shape.key_name]
        if not named:
            raise SignatureError(
                f"key {shape.key_name!r} is not pinned for this partner;"
                f" pinned: {', '.join(p.key_id for p in pinned)}"
            )
        return named
    return list(pinned)


def check_strength(cert_pem: bytes, method: DsigAlgorithm) -> None:
    """RSA of 2048 bits or more, or ECDSA on P-256, used with its own signature method."""
    key = certificate(cert_pem).public_key()
    expected = DsigAlgorithm.RSA_SHA256 if isinstance(key, rsa.RSAPublicKey) else None
    if isinstance(key, ec.EllipticCurvePublicKey):
        expected = DsigAlgorithm.ECDSA_SHA256
    if expected is not None and method is not expected:
        raise SignatureError(
            f"key mismatch: the signature is {method.name} but pinned certificate"
            f" {key_id_of(cert_pem)} holds a {expected.name.split('_')[0]} key"
        )
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise SignatureError(
                f"RSA key of {key.key_size} bits is refused; at least {MIN_RSA_BITS} are required"
            )
        return
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return
    raise SignatureError(f"{type(key).__name__} keys are refused: RSA ≥ 2048 or ECDSA P-256 only")


def check_time(chosen: TrustedCertificate, received: datetime) -> None:
    """The certificate must be trusted at the moment the file is received."""
    if not chosen.not_before <= received <= chosen.not_after:
        state = "expired" if received > chosen.not_after else "not yet valid"
        raise SignatureError(
            f"certificate {chosen.key_id} is {state} at receipt"
            f" {received.astimezone(UTC):%Y-%m-%d %H:%M} UTC (trusted"
            f" {chosen.not_before:%Y-%m-%d %H:%M} to {chosen.not_after:%Y-%m-%d %H:%M} UTC)"
        )


def check_created(
    stated: datetime | None, received: datetime, max_age: timedelta, max_ahead: timedelta
) -> None:
    """The creation time a file states must lie within the partner's tolerance of its receipt."""
    if stated is None:
        return
    if received - stated > max_age:
        raise SignatureError(
            f"the file states it was created {stated.astimezone(UTC):%Y-%m-%d %H:%M} UTC,"
            f" more than {_span(max_age)} before its receipt"
            f" {received.astimezone(UTC):%Y-%m-%d %H:%M} UTC (limit max_age_hours)"
        )
    if stated - received > max_ahead:
        raise SignatureError(
            f"the file states it was created {stated.astimezone(UTC):%Y-%m-%d %H:%M} UTC,"
            f" more than {_span(max_ahead)} after its receipt"
            f" {received.astimezone(UTC):%Y-%m-%d %H:%M} UTC (limit max_ahead_minutes)"
        )


def _span(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} minutes"
    return f"{minutes // 60} hours"


def message_time(document: etree._Element, header: etree._Element | None) -> datetime | None:
    """The creation time the message states (AppHdr CreDt, else the first CreDtTm), or None."""
    stated = None
    if header is not None:
        stated = header.findtext(f"{{{HEAD_NS}}}CreDt")
    if stated is None:
        for element in document.iter("{*}CreDtTm"):
            stated = element.text
            break
    if not stated:
        return None
    moment = parse_datetime(stated, "CreDtTm")
    if moment.tzinfo is None:
        # ISO 20022 allows a local time; Vietnam is UTC+7 all year.
        moment = moment.replace(tzinfo=timezone(timedelta(hours=7)))
    return moment
