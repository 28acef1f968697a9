"""Our signatures against independent implementations (xmlsec1, signxml), and theirs in ours."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml import XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration

from gateway.iso20022 import xsd
from gateway.iso20022.pain001 import build_pain001
from gateway.iso20022.xml import to_bytes
from gateway.profile.inbound import InboundPolicy
from gateway.profile.signature import SignaturePolicy
from gateway.signing import (
    KeyPair,
    KeyRing,
    generate_keypair,
    sign_for_partner,
    trusted,
    verify_for_partner,
)
from gateway.signing.xmldsig import SGNTR, SIGNATURE
from tests.conftest import xmlsec1_verify
from tests.interop.envelope import envelope
from tests.security.corpus import notification
from tests.unit.factories import benefits_batch

pytestmark = pytest.mark.interop
NOW = datetime(2026, 11, 26, tzinfo=UTC)
SINCE_2024 = datetime(2024, 1, 1, tzinfo=UTC)
# These files keep the dates they were built with: their creation time is not what is tested.
ANY_TIME = InboundPolicy(max_age=timedelta(days=36500), max_ahead=timedelta(days=36500))


@pytest.fixture(scope="module")
def ours() -> KeyPair:
    """The treasury's key."""
    return KeyPair(*generate_keypair("KBNN interop", valid_from=SINCE_2024))


@pytest.fixture(scope="module")
def bank_ec() -> KeyPair:
    """A bank's ECDSA P-256 key."""
    return KeyPair(*generate_keypair("Bank EC", curve=True, valid_from=SINCE_2024))


def _signxml_verify(data: bytes, pair: KeyPair) -> etree._Element:
    config = SignatureConfiguration(
        location=".//",
        signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    )
    result = XMLVerifier().verify(data, x509_cert=pair.cert_pem.decode(), expect_config=config)
    signed: etree._Element = result.signed_xml
    return signed


def _signxml_sign(root: etree._Element, pair: KeyPair) -> bytes:
    key = serialization.load_pem_private_key(pair.key_pem, None)
    curve = isinstance(key, ec.EllipticCurvePrivateKey)
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA256 if curve else SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(root, key=key, cert=pair.cert_pem.decode())
    data: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return data


def test_our_enveloped_file_verifies_with_xmlsec1_and_signxml(
    ours: KeyPair, xmlsec1: str, tmp_path: Path
) -> None:
    """A pain.001 we sign at the root passes xmlsec1 and signxml with our certificate."""
    signed = sign_for_partner(
        build_pain001(benefits_batch(5)), KeyRing("kbnn", ours), SignaturePolicy(), "f.xml", NOW
    )
    (tmp_path / "f.xml").write_bytes(signed.body)
    (tmp_path / "c.pem").write_bytes(ours.cert_pem)
    result = xmlsec1_verify(xmlsec1, tmp_path / "f.xml", tmp_path / "c.pem")
    assert result.returncode == 0, result.stderr
    xsd.validate(_signxml_verify(signed.body, ours))


def test_our_signature_in_the_app_header_verifies_everywhere(
    ours: KeyPair, xmlsec1: str, tmp_path: Path
) -> None:
    """In a BizMsg envelope the signature sits in AppHdr/Sgntr before Rltd, covering everything."""
    root = envelope(build_pain001(benefits_batch(3)), "pain.001.001.09", "KBNN-1")
    signed = sign_for_partner(root, KeyRing("kbnn", ours), SignaturePolicy(), "f.xml", NOW)
    tree = etree.fromstring(signed.body)
    signature = next(tree.iter(SIGNATURE))
    holder = signature.getparent()
    assert holder is not None and holder.tag == SGNTR
    assert etree.QName(holder.getnext()).localname == "Rltd"
    (tmp_path / "env.xml").write_bytes(signed.body)
    (tmp_path / "c.pem").write_bytes(ours.cert_pem)
    result = xmlsec1_verify(xmlsec1, tmp_path / "env.xml", tmp_path / "c.pem")
    assert result.returncode == 0, result.stderr
    _signxml_verify(signed.body, ours)
    verified = verify_for_partner(
        signed.body, SignaturePolicy(), [trusted(ours.cert_pem)], NOW, inbound=ANY_TIME
    )
    assert verified.header is not None and verified.key_id == ours.key_id
    xsd.validate(verified.document)
    tampered = signed.body.replace(b"<BizMsgIdr>KBNN-1<", b"<BizMsgIdr>KBNN-2<")
    with pytest.raises(Exception, match="digest mismatch"):
        verify_for_partner(
            tampered, SignaturePolicy(), [trusted(ours.cert_pem)], NOW, inbound=ANY_TIME
        )


def test_our_detached_signature_verifies_with_xmlsec1(
    ours: KeyPair, xmlsec1: str, tmp_path: Path
) -> None:
    """The .sig beside the file verifies with xmlsec1, and fails once the file changes."""
    policy = SignaturePolicy(mode="detached")
    signed = sign_for_partner(
        build_pain001(benefits_batch(4)), KeyRing("kbnn", ours), policy, "KBNN-7.xml", NOW
    )
    assert signed.signature is not None and b"<ds:Signature" in signed.signature
    assert signed.headers == {"signature": signed.signature.decode()}
    (tmp_path / "KBNN-7.xml").write_bytes(signed.body)
    (tmp_path / "KBNN-7.xml.sig").write_bytes(signed.signature)
    (tmp_path / "c.pem").write_bytes(ours.cert_pem)
    command = [xmlsec1, "--verify", "--trusted-pem", "c.pem", "KBNN-7.xml.sig"]
    ok = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "KBNN-7.xml").write_bytes(signed.body.replace(b"606000", b"906000", 1))
    bad = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    verified = verify_for_partner(
        signed.body, policy, [trusted(ours.cert_pem)], NOW, signed.signature, inbound=ANY_TIME
    )
    assert verified.key_id == ours.key_id


@pytest.mark.parametrize("curve", [False, True], ids=["rsa", "ecdsa"])
def test_a_file_signed_by_signxml_as_a_bank_would_verifies_in_the_gateway(
    curve: bool, ours: KeyPair, bank_ec: KeyPair
) -> None:
    """signxml's enveloped RSA and ECDSA signatures are accepted from the pinned certificate."""
    bank = bank_ec if curve else ours
    data = _signxml_sign(notification(1), bank)
    verified = verify_for_partner(
        data, SignaturePolicy(), [trusted(bank.cert_pem)], NOW, inbound=ANY_TIME
    )
    assert verified.document.find(f".//{SIGNATURE}") is None
    xsd.validate(verified.document)


def test_mode_none_sends_unsigned_and_refuses_a_signed_file(ours: KeyPair) -> None:
    """With mode none nothing is signed, and a signed inbound file is not silently accepted."""
    policy = SignaturePolicy(mode="none")
    signed = sign_for_partner(build_pain001(benefits_batch(1)), KeyRing("k", ours), policy, "", NOW)
    assert b"Signature" not in signed.body and signed.signature is None
    assert (
        verify_for_partner(to_bytes(notification(2)), policy, [], NOW, inbound=ANY_TIME).key_id
        is None
    )
    with pytest.raises(Exception, match="signature mode is none"):
        verify_for_partner(_signxml_sign(notification(3), ours), policy, [], NOW, inbound=ANY_TIME)
