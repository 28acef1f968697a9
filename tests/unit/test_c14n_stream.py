"""The streaming canonical form against libxml2's, and an enveloped signature checked before any
tree of the file is built."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.c14n import Canonicaliser
from gateway.iso20022.limits import DEFAULT_LIMITS, check_limits
from gateway.iso20022.pain001 import build_pain001
from gateway.iso20022.xml import to_bytes
from gateway.profile.signature import SignaturePolicy
from gateway.signing import KeyPair, generate_keypair, sign, trusted, verify_for_partner
from gateway.signing import policy as signing_policy
from gateway.signing.stream import scan_enveloped
from gateway.signing.xmldsig import sign_detached
from tests.unit.factories import benefits_batch

SHARED = Path(__file__).resolve().parents[3] / "shared" / "iso20022"
HERE = Path(__file__).resolve().parents[1]

# Each exercises a rule of C14N: namespace rendering (exclusive and inclusive, defaults undeclared
# and redeclared, unused and reused prefixes), attribute order, escaping, CDATA, empty elements,
# characters beyond ASCII.
DOCUMENTS = [
    b'<a xmlns="urn:x" xmlns:p="urn:p"><b p:c="1" d="2&amp;&lt;&gt;&quot;\t\n x&#9;&#10;&#13;">'
    b't&amp;&lt;&gt;\r\n&#13;</b><c xmlns=""><d xmlns="urn:x"/></c><p:e><f/></p:e>'
    b'<p:g xmlns:p="urn:q"/></a>',
    b'<?xml version="1.0"?>\n<p:a xmlns:p="urn:p" xmlns:q="urn:q" xmlns="urn:d">'
    b'<b q:z="1" a="2" p:y="3" xml:lang="vi"/><![CDATA[<&>]]><q:c xmlns:q="urn:q">'
    b'<q:d xmlns:q="urn:q2"/></q:c><e xmlns="urn:d"/></p:a>\n',
    b'<a><b xmlns="urn:x"><c xmlns=""/><c/></b><d xmlns=""/></a>',
    b'<a xmlns:unused="urn:u" xmlns:z="urn:z" xmlns:a="urn:a"><z:b a:x="1" z:x="2" b="3"/></a>',
    '<a b="Tiếng Việt">€ 𝄞 Nguyễn</a>'.encode(),
    b'<a xmlns="urn:x"><b xmlns="urn:y"><c xmlns="urn:x"/></b></a>',
    b"<a>\n  <b/>\n  <!-- dropped -->\n</a>\n<!-- after -->",
    # One start tag repeated under other namespace contexts (a remembered tag must not leak).
    b'<r xmlns="urn:x"><a C="V"/><a C="V"/><b xmlns="urn:y"><a C="V"/></b><c xmlns="">'
    b'<a C="V"/><p:a xmlns:p="urn:p"/></c><p:a xmlns:p="urn:p"/><d xmlns:p="urn:p">'
    b'<p:a xmlns:p="urn:p"/><p:a xmlns:p="urn:q"/></d><a C="V"/></r>',
]


def _samples() -> list[bytes]:
    files = sorted(SHARED.rglob("*.xml")) + sorted(HERE.rglob("*.xml"))
    return [path.read_bytes() for path in files]


def _streamed(data: bytes, exclusive: bool) -> bytes:
    canonical = Canonicaliser(exclusive=exclusive, keep=True)
    check_limits(data, DEFAULT_LIMITS, canonical)
    return canonical.kept()


def _libxml2(data: bytes, exclusive: bool) -> bytes:
    out = io.BytesIO()
    tree = etree.ElementTree(etree.fromstring(data))
    tree.write_c14n(out, exclusive=exclusive, with_comments=False)
    return out.getvalue()


@pytest.mark.parametrize("exclusive", [True, False], ids=["exclusive", "inclusive"])
def test_streamed_canonical_form_is_libxml2s(exclusive: bool) -> None:
    """Every crafted document and every sample canonicalises byte for byte as libxml2 does."""
    documents = DOCUMENTS + _samples()
    assert len(documents) > len(DOCUMENTS)
    for data in documents:
        assert _streamed(data, exclusive) == _libxml2(data, exclusive), data[:80]


def test_unbound_prefix_is_refused() -> None:
    """A prefix without a declaration is refused by the pass, as libxml2 refuses it."""
    with pytest.raises(InvalidMessage, match="undeclared prefix 'p'"):
        _streamed(b"<a><p:b/></a>", True)


@pytest.fixture(scope="module")
def bank() -> KeyPair:
    """The bank's key."""
    return KeyPair(*generate_keypair("Stream bank", valid_from=datetime(2024, 1, 1, tzinfo=UTC)))


def _digest_value(data: bytes) -> bytes:
    match = re.search(rb"<ds:DigestValue>([^<]+)</ds:DigestValue>", data)
    assert match is not None
    return base64.b64decode(b"".join(match.group(1).split()))


def test_scan_digest_is_the_signed_digest(bank: KeyPair) -> None:
    """The pass's digest of a signed file is the DigestValue the signer computed."""
    data = sign(build_pain001(benefits_batch(3)), bank)
    scanned = scan_enveloped(data, DEFAULT_LIMITS)
    assert scanned.signatures == 1
    assert scanned.signature is not None
    assert scanned.digest == _digest_value(data)
    changed = data.replace(b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>", 1)
    assert changed != data
    assert scan_enveloped(changed, DEFAULT_LIMITS).digest != _digest_value(data)
    assert hashlib.sha256(b"").digest() != scanned.digest


def test_copied_signature_is_refused_before_any_tree(
    bank: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file carrying a genuine file's signature is refused by its digest without a tree of it
    ever being built."""
    data = sign(build_pain001(benefits_batch(3)), bank)
    forged = data.replace(b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>", 1)
    built: list[bytes] = []

    def no_tree(raw: bytes) -> etree._Element:
        built.append(raw)
        raise AssertionError("a tree was built")

    monkeypatch.setattr(signing_policy, "parse_checked", no_tree)
    with pytest.raises(InvalidMessage, match="digest mismatch"):
        verify_for_partner(
            forged, SignaturePolicy(mode="enveloped"), [trusted(bank.cert_pem)], _now(data)
        )
    assert built == []


def _now(data: bytes) -> datetime:
    match = re.search(rb"<CreDtTm>([^<]+)</CreDtTm>", data)
    assert match is not None
    return datetime.fromisoformat(match.group(1).decode())


@pytest.mark.parametrize(
    ("declaration", "reason"),
    [
        (b'<?xml version="1.1" encoding="UTF-8"?>', "declares version '1.1'"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?>', "declares encoding 'ISO-8859-1'"),
    ],
)
def test_signed_files_are_xml_1_0_in_utf8(bank: KeyPair, declaration: bytes, reason: str) -> None:
    """The digest (expat's reading) and the content (libxml2's) are read from UTF-8 XML 1.0
    only: a genuine file re-declared otherwise is refused by name."""
    data = sign(build_pain001(benefits_batch(2)), bank)
    head, _, body = data.partition(b"?>")
    assert head.startswith(b"<?xml")
    with pytest.raises(InvalidMessage, match=reason):
        verify_for_partner(
            declaration + body,
            SignaturePolicy(mode="enveloped"),
            [trusted(bank.cert_pem)],
            _now(data),
        )


def test_detached_forgery_is_refused_before_any_tree(
    bank: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed after its detached signature was made is refused by the digest of its
    bytes (the only work on it before trust), before any tree of it is built."""
    data = to_bytes(build_pain001(benefits_batch(3)))
    signature = sign_detached(data, "batch.xml", bank)
    forged = data.replace(b"<NbOfTxs>3</NbOfTxs>", b"<NbOfTxs>4</NbOfTxs>", 1)
    assert forged != data

    def no_tree(raw: bytes) -> etree._Element:
        raise AssertionError("a tree was built")

    monkeypatch.setattr(signing_policy, "parse_checked", no_tree)
    with pytest.raises(InvalidMessage, match="digest mismatch"):
        verify_for_partner(
            forged,
            SignaturePolicy(mode="detached"),
            [trusted(bank.cert_pem)],
            _now(data),
            signature,
        )
