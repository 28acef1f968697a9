"""XML signatures, trust in partners' certificates, and our own keys.

- `keys`: our key pairs (encrypted PEM or PKCS#12, or held in an HSM token), key ids and
  rotation by date;
- `requests`: certificates and certificate requests of a key held in a token;
- `xmldsig`: signing and checking XMLDSig with libxmlsec1, refusing every other shape by name;
- `trust`: partners' pinned certificates and their windows;
- `policy`: what each partner's [signature] mode means, outbound and inbound.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lxml import etree

from gateway.profile.inbound import InboundPolicy
from gateway.profile.signature import SignaturePolicy
from gateway.signing.keys import (
    KeyPair,
    KeyRing,
    KeySource,
    KeyStore,
    SigningKey,
    TokenKey,
    ensure_keypair,
    generate_keypair,
    key_id_of,
    load_keypair,
    load_keyring,
    passphrase_from_env,
)
from gateway.signing.policy import (
    SIGNATURE_HEADER,
    SignedFile,
    VerifiedFile,
    file_bytes,
    sign,
    sign_for_partner,
    verify_for_partner,
)
from gateway.signing.trust import TrustedCertificate, load_pinned, trusted
from gateway.signing.xmldsig import SignatureError

__all__ = [
    "SIGNATURE_HEADER",
    "KeyPair",
    "KeyRing",
    "KeySource",
    "KeyStore",
    "SignatureError",
    "SignedFile",
    "SigningKey",
    "TokenKey",
    "TrustedCertificate",
    "VerifiedFile",
    "ensure_keypair",
    "file_bytes",
    "generate_keypair",
    "key_id_of",
    "load_keypair",
    "load_keyring",
    "load_pinned",
    "passphrase_from_env",
    "sign",
    "sign_for_partner",
    "trusted",
    "verify",
    "verify_for_partner",
]


# `verify` checks a signature and its certificate now, whatever date the document states.
_ANY_CREATION_TIME = InboundPolicy(max_age=timedelta.max, max_ahead=timedelta.max)


def verify(data: bytes, trusted_cert_pem: bytes) -> etree._Element:
    """Verify a document signed enveloped by one certificate trusted now; return the signed
    message. (The inbound path is `verify_for_partner`, with the partner's limits and tolerance.)"""
    return verify_for_partner(
        data,
        SignaturePolicy(mode="enveloped"),
        [trusted(trusted_cert_pem)],
        datetime.now(UTC),
        inbound=_ANY_CREATION_TIME,
    ).document
