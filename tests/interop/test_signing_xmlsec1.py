"""Our enveloped signatures against an independent implementation: the xmlsec1 command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.iso20022 import xsd
from gateway.iso20022.pain001 import build_pain001
from gateway.signing import KeyPair, SignatureError, ensure_keypair, sign, verify
from tests.conftest import xmlsec1_verify
from tests.unit.factories import batch, benefits_batch, group, order

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key folder for this module."""
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def treasury(keys: Path) -> KeyPair:
    """The treasury's signing key pair."""
    return ensure_keypair(keys, "kbnn", "KBNN gateway interop")


@pytest.fixture(scope="module")
def stranger(keys: Path) -> KeyPair:
    """Someone else's key pair."""
    return ensure_keypair(keys, "stranger", "Not the treasury")


def write(directory: Path, name: str, data: bytes) -> Path:
    """Write bytes to a file and return its path."""
    path = directory / name
    path.write_bytes(data)
    return path


def signed_pain001(keypair: KeyPair) -> bytes:
    """A validated and signed pain.001 with Vietnamese names and VND amounts."""
    root = build_pain001(batch(group([order(1), order(2, amount="1250000"), order(3)])))
    xsd.validate(root)
    return sign(root, keypair)


def test_xmlsec1_verifies_our_signature(xmlsec1: str, treasury: KeyPair, tmp_path: Path) -> None:
    """A file signed by sign() verifies in xmlsec1 against our certificate."""
    document = write(tmp_path, "signed.xml", signed_pain001(treasury))
    cert = write(tmp_path, "cert.pem", treasury.cert_pem)
    result = xmlsec1_verify(xmlsec1, document, cert)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout + result.stderr


def test_xmlsec1_verifies_a_large_file(xmlsec1: str, treasury: KeyPair, tmp_path: Path) -> None:
    """A 2,000-transaction file, one line per transaction, verifies in xmlsec1 and here."""
    root = build_pain001(benefits_batch(2000))
    xsd.validate(root)
    data = sign(root, treasury)
    result = xmlsec1_verify(
        xmlsec1, write(tmp_path, "big.xml", data), write(tmp_path, "cert.pem", treasury.cert_pem)
    )
    assert result.returncode == 0, result.stderr
    xsd.validate(verify(data, treasury.cert_pem))


def test_a_tampered_amount_fails_in_both(xmlsec1: str, treasury: KeyPair, tmp_path: Path) -> None:
    """Raising one amount is caught by xmlsec1 and by verify()."""
    data = signed_pain001(treasury)
    tampered = data.replace(b">1250000<", b">9250000<", 1)
    assert tampered != data
    document = write(tmp_path, "tampered.xml", tampered)
    result = xmlsec1_verify(xmlsec1, document, write(tmp_path, "cert.pem", treasury.cert_pem))
    assert result.returncode != 0
    assert "FAIL" in result.stdout + result.stderr
    with pytest.raises(SignatureError, match=r"digest mismatch"):
        verify(tampered, treasury.cert_pem)


def test_a_wrong_certificate_is_refused_by_both(
    xmlsec1: str, treasury: KeyPair, stranger: KeyPair, tmp_path: Path
) -> None:
    """A file signed by a stranger is refused when our certificate is the pinned one."""
    data = signed_pain001(stranger)
    document = write(tmp_path, "stranger.xml", data)
    result = xmlsec1_verify(xmlsec1, document, write(tmp_path, "ours.pem", treasury.cert_pem))
    assert result.returncode != 0
    with pytest.raises(
        SignatureError, match=r"certificate [0-9a-f]{16} is not pinned for this partner"
    ):
        verify(data, treasury.cert_pem)
    theirs = xmlsec1_verify(xmlsec1, document, write(tmp_path, "theirs.pem", stranger.cert_pem))
    assert theirs.returncode == 0, theirs.stderr
