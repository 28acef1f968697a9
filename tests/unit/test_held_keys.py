"""A key held elsewhere (a `TokenKey`, as an HSM holds it) signs exactly as a key in a file:
the same bytes for RSA, enveloped and detached; certificates and requests made for it verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.errors import TransientError
from gateway.iso20022.pain001 import build_pain001
from gateway.profile.inbound import InboundPolicy
from gateway.profile.signature import SignaturePolicy
from gateway.signing import (
    KeyPair,
    KeyRing,
    TokenKey,
    generate_keypair,
    sign,
    sign_for_partner,
    trusted,
    verify_for_partner,
)
from gateway.signing.keys import private_key
from gateway.signing.requests import certificate_request, self_signed
from tests.unit.factories import benefits_batch

NOW = datetime(2026, 11, 26, tzinfo=UTC)
# The factories' files keep their 2025 date: their creation time is not what is tested here.
ANY_TIME = InboundPolicy(max_age=timedelta(days=36500), max_ahead=timedelta(days=36500))
SINCE = datetime(2024, 1, 1, tzinfo=UTC)
RSA_PAIR = KeyPair(*generate_keypair("held RSA", valid_from=SINCE))
EC_PAIR = KeyPair(*generate_keypair("held EC", curve=True, valid_from=SINCE))


def held(pair: KeyPair) -> TokenKey:
    """The pair's key as a token would hold it: it signs and is never handed over."""
    key = private_key(pair.key_pem)

    def signer(data: bytes) -> bytes:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    return TokenKey(pair.cert_pem, signer=signer, where="fake token")


def test_a_held_rsa_key_signs_the_same_bytes_as_the_file_key() -> None:
    """Enveloped and detached, the held key's output is the file key's, byte for byte."""
    key = held(RSA_PAIR)
    assert key.key_id == RSA_PAIR.key_id
    assert "signer" not in repr(key)
    assert sign(build_pain001(benefits_batch(5)), key) == sign(
        build_pain001(benefits_batch(5)), RSA_PAIR
    )
    policy = SignaturePolicy(mode="detached")
    by_file = sign_for_partner(
        build_pain001(benefits_batch(5)), KeyRing("k", RSA_PAIR), policy, "F-1.xml", NOW
    )
    by_held = sign_for_partner(
        build_pain001(benefits_batch(5)), KeyRing("k", key), policy, "F-1.xml", NOW
    )
    assert by_held == by_file


def test_a_held_ecdsa_key_signs_what_the_gateway_verifies() -> None:
    """ECDSA signatures differ each time; the held key's verify, enveloped and detached."""
    key = held(EC_PAIR)
    pins = [trusted(EC_PAIR.cert_pem)]
    verify_for_partner(
        sign(build_pain001(benefits_batch(5)), key), SignaturePolicy(), pins, NOW, inbound=ANY_TIME
    )
    policy = SignaturePolicy(mode="detached")
    signed = sign_for_partner(
        build_pain001(benefits_batch(5)), KeyRing("k", key), policy, "F-2.xml", NOW
    )
    assert signed.signature is not None
    verify_for_partner(signed.body, policy, pins, NOW, signed.signature, inbound=ANY_TIME)


def test_a_token_fault_while_signing_is_transient_not_the_orders_fault() -> None:
    """A holder that cannot sign raises TransientError, never a SignatureError (which would
    reject the orders)."""

    def unavailable(data: bytes) -> bytes:
        raise TransientError("HSM token 'kbnn' is gone")

    key = TokenKey(RSA_PAIR.cert_pem, signer=unavailable)
    with pytest.raises(TransientError, match="is gone"):
        sign(build_pain001(benefits_batch(2)), key)


@pytest.mark.parametrize("pair", [RSA_PAIR, EC_PAIR], ids=["rsa", "ec"])
def test_certificates_and_requests_for_a_held_key(pair: KeyPair) -> None:
    """The self-signed certificate and the PKCS#10 request name the held key and verify."""
    key = held(pair)
    public = pair.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    pem = self_signed(public, key.sign, "held", SINCE, NOW + timedelta(days=1))
    cert = x509.load_pem_x509_certificate(pem)
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == public
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    request = x509.load_pem_x509_csr(certificate_request(public, key.sign, "held"))
    assert request.is_signature_valid
    assert request.public_key() == public
