"""Certificates and certificate requests for a key held elsewhere (an HSM), signed by its holder.

cryptography builds X.509 only with a private key in memory, so the structure is built with a
throwaway key of the same algorithm, and its to-be-signed part (which already names the held
key's public key and the signature algorithm) is signed by the holder and put back together.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gateway.errors import ConfigError
from gateway.signing.keys import PrivateKey, certificate_builder, subject_name

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
# Signs bytes as XMLDSig wants: RSA PKCS#1 v1.5 over SHA-256, or ECDSA P-256 raw r||s.
Signer = Callable[[bytes], bytes]


def self_signed(
    public_key: PublicKey,
    signer: Signer,
    common_name: str,
    valid_from: datetime,
    valid_until: datetime,
) -> bytes:
    """A self-signed certificate (PEM) of a held key, for tests and the demo."""
    template = certificate_builder(public_key, common_name, valid_from, valid_until).sign(
        _throwaway(public_key), hashes.SHA256()
    )
    der = template.public_bytes(serialization.Encoding.DER)
    signed = _rebuild(der, template.tbs_certificate_bytes, _x509_signature(public_key, signer))
    cert = x509.load_der_x509_certificate(signed)
    _check(public_key, cert.signature, cert.tbs_certificate_bytes)
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_request(public_key: PublicKey, signer: Signer, common_name: str) -> bytes:
    """A PKCS#10 certificate request (PEM) of a held key, for the treasury's CA."""
    throwaway = _throwaway(public_key)
    template = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_name(common_name))
        .sign(throwaway, hashes.SHA256())
    )
    # CertificationRequestInfo: version, subject, subjectPKInfo, attributes: swap in our key.
    info = _children(template.tbs_certrequest_bytes)
    info[2] = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tbs = _tlv(0x30, b"".join(info))
    der = template.public_bytes(serialization.Encoding.DER)
    request = x509.load_der_x509_csr(_rebuild(der, tbs, _x509_signature(public_key, signer)))
    if not request.is_signature_valid:
        raise ConfigError("the token's signature of the certificate request does not verify")
    return request.public_bytes(serialization.Encoding.PEM)


def _throwaway(public_key: PublicKey) -> PrivateKey:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _x509_signature(public_key: PublicKey, signer: Signer) -> Callable[[bytes], bytes]:
    """The holder's signature as X.509 wants it: ECDSA as DER, not XMLDSig's raw r||s."""

    def sign(tbs: bytes) -> bytes:
        value = signer(tbs)
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            half = len(value) // 2
            r, s = int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big")
            return encode_dss_signature(r, s)
        return value

    return sign


def _check(public_key: PublicKey, signature: bytes, tbs: bytes) -> None:
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, tbs, ec.ECDSA(hashes.SHA256()))
        else:
            public_key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ConfigError("the token's signature of the certificate does not verify") from None


def _rebuild(template_der: bytes, tbs: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """SEQUENCE { tbs, the template's signature algorithm, BIT STRING signature }."""
    algorithm = _children(template_der)[1]
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\0" + sign(tbs)))


def _children(der: bytes) -> list[bytes]:
    """The encoded elements inside one DER SEQUENCE."""
    start, end = _header(der, 0)
    items = []
    position = start
    while position < end:
        _, stop = _header(der, position)
        items.append(der[position:stop])
        position = stop
    return items


def _header(der: bytes, position: int) -> tuple[int, int]:
    """Where the content of the element at `position` starts and where the element ends."""
    length = der[position + 1]
    start = position + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    return start, start + length


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content
