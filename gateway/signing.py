"""XMLDSig enveloped signatures with signxml: keys, signing, and verification against a pinned cert.

Signatures are RSA-SHA256 (or ECDSA-SHA256 for EC keys), SHA-256 digests, exclusive C14N, one
reference with URI "" covering the whole document, enveloped at the document root. Verification
accepts nothing else and returns only the signed content.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import (
    InvalidCertificate,
    InvalidDigest,
    InvalidSignature,
    SignXMLException,
)
from signxml.signer import SignatureReference, XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022.namespaces import DSIG_NS, DsigAlgorithm
from gateway.iso20022.xml import PARSER, parse_xml, to_bytes

RSA_KEY_BITS = 3072
CERT_VALIDITY = timedelta(days=730)
ORGANISATION = "Kho bạc Nhà nước"

_SIGNATURE = f"{{{DSIG_NS}}}Signature"
_SIGNATURE_METHODS = {DsigAlgorithm.RSA_SHA256, DsigAlgorithm.ECDSA_SHA256}
_TRANSFORMS = frozenset({DsigAlgorithm.ENVELOPED.value, DsigAlgorithm.EXC_C14N.value})
_X509_CERTIFICATE = "/".join(
    f"{{{DSIG_NS}}}{step}" for step in ("KeyInfo", "X509Data", "X509Certificate")
)
_EXPECT = SignatureConfiguration(
    require_x509=True,
    location=".//",
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


class SignatureError(InvalidMessage):
    """A signature that is missing, malformed, made otherwise than agreed, or does not verify."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private key and its certificate (PEM); key_id is the cert's SHA-256, 16 hex digits."""

    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id_of(self.cert_pem))


def key_id_of(certificate_pem: bytes) -> str:
    """The first 16 hex digits of the certificate's SHA-256 fingerprint."""
    return _certificate(certificate_pem).fingerprint(hashes.SHA256()).hex()[:16]


# --- Keys --------------------------------------------------------------------------------------


def ensure_keypair(directory: Path, name: str, common_name: str) -> KeyPair:
    """Load `<name>.key.pem` and `<name>.cert.pem` from directory, or generate them once."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, cert_path = directory / f"{name}.key.pem", directory / f"{name}.cert.pem"
    with _lock(directory / f".{name}.lock"):
        if not key_path.exists() and not cert_path.exists():
            key_pem, cert_pem = generate_keypair(common_name)
            _write_atomically(key_path, key_pem, 0o600)
            _write_atomically(cert_path, cert_pem, 0o644)
        return load_keypair(key_path, cert_path)


def load_keypair(key_path: Path, cert_path: Path) -> KeyPair:
    """Read a key and its certificate, refusing a pair that does not belong together."""
    for path in (key_path, cert_path):
        if not path.is_file():
            raise ConfigError(f"{path} is missing (its key pair is incomplete)")
    pair = KeyPair(key_path.read_bytes(), cert_path.read_bytes())
    public = _private_key(pair.key_pem).public_key()
    if _spki(public) != _spki(_certificate(pair.cert_pem).public_key()):
        raise ConfigError(f"{key_path} does not match the certificate {cert_path}")
    return pair


def generate_keypair(common_name: str) -> tuple[bytes, bytes]:
    """A new RSA 3072 key and a self-signed certificate (CN, O, C=VN) valid two years, as PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNING_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


_SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=True,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock between threads and processes generating the same key."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@lru_cache(maxsize=32)
def _private_key(pem: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A private key loaded once per PEM (loading checks an RSA key, which is slow)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"private key cannot be loaded: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"private key type {type(key).__name__} is not RSA or EC")
    return key


@lru_cache(maxsize=64)
def _certificate(pem: bytes) -> x509.Certificate:
    """A certificate loaded once per PEM."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ConfigError(f"certificate cannot be loaded: {exc}") from None


def _spki(public_key: Any) -> bytes:
    """A public key as DER SubjectPublicKeyInfo, for comparisons."""
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


# --- Signing -----------------------------------------------------------------------------------


class _RootSigner(XMLSigner):
    """signxml's enveloped signer, digesting the caller's document in place.

    signxml copies the document twice (serialise and reparse) before signing, so it can append
    the signature without touching the digested tree. Our documents are parentless roots, so we
    digest the document itself and append the finished signature afterwards: at 100,000
    transactions that saves two full copies.
    """

    signature: etree._Element | None = None

    def _unpack(self, data: Any, references: Any) -> tuple[Any, Any, list[Any], list[Any]]:
        sig_root = etree.Element(_SIGNATURE, nsmap={"ds": DSIG_NS})
        self.signature = sig_root
        return sig_root, data, [data], [SignatureReference(URI="")]


class _ParsedVerifier(XMLVerifier):
    """signxml's verifier, spared one serialise-and-reparse of a tree our parser just built."""

    def get_root(self, data: Any) -> Any:
        """The tree itself: `verify` only passes roots the hardened parser has just built."""
        return data


def sign(root: etree._Element, keypair: KeyPair) -> bytes:
    """Sign a whole document (enveloped at its root) and return it serialised."""
    if root.getparent() is not None:
        raise SignatureError("only a whole document can be signed, not an element inside one")
    if next(root.iter(_SIGNATURE), None) is not None:
        raise SignatureError("document is already signed")
    key = _private_key(keypair.key_pem)
    signer = _RootSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=(
            SignatureMethod.RSA_SHA256
            if isinstance(key, rsa.RSAPrivateKey)
            else SignatureMethod.ECDSA_SHA256
        ),
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signer.sign(root, key=key, cert=[_certificate(keypair.cert_pem)], key_name=keypair.key_id)
    signature = signer.signature
    assert signature is not None
    root.append(signature)
    try:
        return to_bytes(root)
    finally:
        root.remove(signature)


# --- Verifying ---------------------------------------------------------------------------------


def verify(data: bytes, trusted_cert_pem: bytes) -> etree._Element:
    """Verify a document signed at its root by the pinned cert; return only the signed content."""
    root = parse_xml(data)
    signature = _only_signature(root)
    _check_algorithms(signature)
    pinned = _pinned(trusted_cert_pem)
    _check_embedded_certificate(signature, pinned)
    try:
        result = _ParsedVerifier().verify(
            root, x509_cert=pinned, parser=PARSER, expect_config=_EXPECT
        )
    except InvalidDigest:
        raise SignatureError(
            "signature does not verify: digest mismatch (the signed content was changed)"
        ) from None
    except InvalidCertificate as exc:
        raise SignatureError(f"certificate is not acceptable: {exc}") from None
    except InvalidSignature as exc:
        raise SignatureError(f"signature does not verify: {exc}") from None
    except (SignXMLException, etree.LxmlError, ValueError) as exc:
        raise SignatureError(f"signature is not acceptable: {exc}") from None
    if not isinstance(result, VerifyResult) or result.signed_xml is None:
        raise SignatureError("the signed content is not one XML document")
    signed: etree._Element = result.signed_xml
    return signed


def _only_signature(root: etree._Element) -> etree._Element:
    """The one ds:Signature of the document, which must sit directly under the root."""
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        raise SignatureError("no signature: the document has no ds:Signature")
    if len(signatures) > 1:
        raise SignatureError(f"{len(signatures)} signatures: exactly one ds:Signature is accepted")
    signature = signatures[0]
    if signature.getparent() is not root:
        raise SignatureError("the ds:Signature must be enveloped directly under the document root")
    return signature


def _check_algorithms(signature: etree._Element) -> None:
    """Refuse, by name, anything but the agreed algorithms and one reference to the whole doc."""
    info = signature.find(f"{{{DSIG_NS}}}SignedInfo")
    if info is None:
        raise SignatureError("the signature has no SignedInfo")
    _require(info, "CanonicalizationMethod", {DsigAlgorithm.EXC_C14N}, "canonicalisation")
    _require(info, "SignatureMethod", _SIGNATURE_METHODS, "signature method")
    references = info.findall(f"{{{DSIG_NS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        raise SignatureError(
            'the signature must have exactly one reference, URI="", covering the whole document'
        )
    _require(references[0], "DigestMethod", {DsigAlgorithm.SHA256}, "digest")
    for transform in references[0].iterfind(f"{{{DSIG_NS}}}Transforms/{{{DSIG_NS}}}Transform"):
        if transform.get("Algorithm") not in _TRANSFORMS:
            raise SignatureError(f"transform {transform.get('Algorithm')!r} is refused")


def _require(parent: etree._Element, child: str, allowed: set[DsigAlgorithm], what: str) -> None:
    """The Algorithm of `child` must be one of `allowed`."""
    element = parent.find(f"{{{DSIG_NS}}}{child}")
    algorithm = element.get("Algorithm") if element is not None else None
    if algorithm not in {a.value for a in allowed}:
        names = ", ".join(sorted(a.name for a in allowed))
        raise SignatureError(f"{what} {algorithm!r} is refused; accepted: {names}")


def _pinned(trusted_cert_pem: bytes) -> x509.Certificate:
    """The pinned certificate, refusing one outside its validity dates."""
    certificate = _certificate(trusted_cert_pem)
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not start <= datetime.now(UTC) <= end:
        raise SignatureError(
            f"the pinned certificate {key_id_of(trusted_cert_pem)} is not valid now "
            f"(valid {start:%Y-%m-%d} to {end:%Y-%m-%d})"
        )
    return certificate


def _check_embedded_certificate(signature: etree._Element, pinned: x509.Certificate) -> None:
    """When the signature carries certificates, they must all be the pinned one."""
    pinned_der = pinned.public_bytes(serialization.Encoding.DER)
    for element in signature.iterfind(_X509_CERTIFICATE):
        embedded = _base64(element.text or "")
        if embedded != pinned_der:
            raise SignatureError(
                "certificate is not the pinned one: signed with "
                f"{hashlib.sha256(embedded).hexdigest()[:16]}, "
                f"pinned {hashlib.sha256(pinned_der).hexdigest()[:16]}"
            )


def _base64(value: str) -> bytes:
    """Decode base64 text that may be wrapped over several lines."""
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except binascii.Error:
        raise SignatureError("the signature's X509Certificate is not base64") from None
