"""Files signed by a key in a SoftHSM2 token verify with the gateway, the xmlsec1 command line
and signxml, enveloped and detached, RSA-SHA256 and ECDSA-SHA256; the key never leaves it."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from lxml import etree
from pkcs11 import Attribute, ObjectClass
from signxml import XMLVerifier
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration

from gateway.adapters.pkcs11 import token_for
from gateway.bootstrap import our_keyring, our_keys
from gateway.config import Settings
from gateway.iso20022.pain001 import build_pain001
from gateway.profile.inbound import InboundPolicy
from gateway.profile.signature import SignaturePolicy
from gateway.signing import (
    TokenKey,
    sign,
    sign_for_partner,
    trusted,
    verify,
    verify_for_partner,
)
from tests.conftest import xmlsec1_verify
from tests.hsm.support import token_key
from tests.unit.factories import benefits_batch

pytestmark = pytest.mark.interop
NOW = datetime(2026, 11, 26, tzinfo=UTC)
# The factories' files keep their 2025 date: their creation time is not what is tested here.
ANY_TIME = InboundPolicy(max_age=timedelta(days=36500), max_ahead=timedelta(days=36500))


def _document(count: int = 20) -> etree._Element:
    return build_pain001(benefits_batch(count), "pain.001.001.09")


def _signxml_verify(data: bytes, cert_pem: bytes) -> None:
    config = SignatureConfiguration(
        location=".//",
        signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    )
    XMLVerifier().verify(data, x509_cert=cert_pem.decode(), expect_config=config)


@pytest.mark.parametrize("curve", [False, True], ids=["rsa-sha256", "ecdsa-p256"])
def test_a_file_signed_in_the_token_verifies_everywhere(
    curve: bool, token_settings: Settings, xmlsec1: str, tmp_path: Path
) -> None:
    """The gateway, xmlsec1 and signxml accept a pain.001 signed by the token's key."""
    created = token_key(token_settings, curve=curve)
    key = our_keyring(token_settings).current
    assert isinstance(key, TokenKey)
    assert key.cert_pem == created.cert_pem
    data = sign(_document(), key)
    method = "ecdsa-sha256" if curve else "rsa-sha256"
    assert f'Algorithm="http://www.w3.org/2001/04/xmldsig-more#{method}"'.encode() in data
    verify_for_partner(data, SignaturePolicy(), [trusted(key.cert_pem)], NOW, inbound=ANY_TIME)
    (tmp_path / "signed.xml").write_bytes(data)
    (tmp_path / "cert.pem").write_bytes(key.cert_pem)
    result = xmlsec1_verify(xmlsec1, tmp_path / "signed.xml", tmp_path / "cert.pem")
    assert result.returncode == 0, result.stderr
    _signxml_verify(data, key.cert_pem)


def test_a_detached_signature_made_in_the_token_verifies(
    token_settings: Settings, xmlsec1: str, tmp_path: Path
) -> None:
    """A detached .sig made with the token verifies with the gateway and with xmlsec1."""
    token_key(token_settings)
    ring = our_keyring(token_settings)
    policy = SignaturePolicy(mode="detached")
    signed = sign_for_partner(_document(), ring, policy, "KBNN-1.xml", NOW)
    assert signed.signature is not None
    verify_for_partner(
        signed.body,
        policy,
        [trusted(ring.current.cert_pem)],
        NOW,
        signed.signature,
        inbound=ANY_TIME,
    )
    (tmp_path / "KBNN-1.xml").write_bytes(signed.body)
    (tmp_path / "KBNN-1.xml.sig").write_bytes(signed.signature)
    (tmp_path / "cert.pem").write_bytes(ring.current.cert_pem)
    result = xmlsec1_verify_detached(xmlsec1, tmp_path)
    assert result.returncode == 0, result.stderr


def xmlsec1_verify_detached(xmlsec1: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """xmlsec1's verification of KBNN-1.xml.sig, reading KBNN-1.xml beside it."""
    return subprocess.run(
        [
            xmlsec1,
            "--verify",
            "--trusted-pem",
            str(folder / "cert.pem"),
            "--enabled-reference-uris",
            "local,remote",
            "KBNN-1.xml.sig",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("curve", [False, True], ids=["rsa", "ec"])
def test_the_private_key_is_sensitive_and_never_extractable(
    curve: bool, token_settings: Settings
) -> None:
    """The token marks the key sensitive and not extractable, and refuses to give its value."""
    created = token_key(token_settings, curve=curve)
    token = token_for(token_settings)

    def check(session: pkcs11.Session) -> None:
        key = next(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: created.id}
            )
        )
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.ALWAYS_SENSITIVE] is True
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.PKCS11Error):
            key[Attribute.PRIVATE_EXPONENT if not curve else Attribute.VALUE]

    token.run("checking", check)


def test_the_batcher_key_source_is_the_token(token_settings: Settings) -> None:
    """With key_source pkcs11 the gateway's key source reads the token, not keys/."""
    token_key(token_settings)
    ring = our_keys(token_settings).ring()
    assert isinstance(ring.current, TokenKey)
    assert "pkcs11 token" in ring.current.where
    assert not (Path(token_settings.keys_path) / "kbnn-gateway.key.pem").exists()


def test_a_key_may_be_named_by_its_id(token_settings: Settings) -> None:
    """signing_key "id:<hex>" finds the key by CKA_ID, as an HSM officer may have made it."""
    created = token_key(token_settings, "made-by-the-hsm-officer")
    by_id = replace(token_settings, signing_key=f"id:{created.id.hex()}")
    ring = our_keyring(by_id)
    assert ring.next is None
    assert ring.current.cert_pem == created.cert_pem
    verify(sign(_document(3), ring.current), ring.current.cert_pem)
