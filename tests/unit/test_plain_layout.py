"""Plain canonical layout: its digest against libxml2's canonical form, every irregularity sent to
the general pass, the limits refused by name as the streaming pass refuses them."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pytest
from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.limits import DEFAULT_LIMITS, InboundLimits, LimitExceeded, check_limits
from gateway.iso20022.pain001 import build_pain001
from gateway.iso20022.plain import (
    CHUNK,
    MAX_DISTINCT_TAGS,
    Plain,
    check_general_bound,
    plain_layout,
)
from gateway.signing import KeyPair, generate_keypair, sign
from gateway.signing.policy import _placed
from gateway.signing.stream import _Enveloped, scan_enveloped, scan_plain
from tests.unit.factories import benefits_batch
from tests.unit.test_c14n_stream import _samples
from tests.unit.test_camt054 import notification, returned, revenue, settlement

DSIG = "http://www.w3.org/2000/09/xmldsig#"
SIGNATURE = (
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
    b'<ds:SignatureMethod Algorithm="x"/></ds:SignedInfo>'
    b"<ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature>"
)

# Documents in plain layout, each exercising a rule: canonical attributes, the escapes C14N
# writes, characters beyond ASCII, a root declaring prefixes it does not use, default namespaces
# on the root's children (a BizMsg envelope), text around the signature.
PLAIN = [
    b'<?xml version="1.0" encoding="UTF-8"?>\n<a xmlns="urn:x"><b c="1" d="2&amp;&lt;">t&amp;'
    b"&lt;&gt;\n\t x</b><e></e></a>\n",
    b'<?xml version=\'1.0\' encoding=\'UTF-8\'?>\n<a xmlns="urn:x" xmlns:p="urn:p" z="1" '
    b'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><b>\n</b>' + SIGNATURE + b"\n<c></c></a>",
    '<a b="Tiếng Việt">€ 𝄞 Nguyễn<c d="Ê" e="é"></c></a>'.encode(),
    b'<BizMsg xmlns="urn:kbnn:gateway:bizmsg:1"><AppHdr xmlns="urn:iso:std:iso:20022:tech:'
    b'xsd:head.001.001.02"><Fr>x</Fr><Sgntr>' + SIGNATURE + b"</Sgntr></AppHdr>\n"
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><A></A></Document>'
    b"</BizMsg>",
    b"<a>" + b"<b>1</b>" * 3000 + b"</a>",
    b'<a xmlns="urn:x">' + b"".join(b'<b c="%d"></b>' % i for i in range(200)) + b"</a>",
]


def _libxml2(data: bytes, exclusive: bool) -> bytes:
    """libxml2's canonical form of `data` without its ds:Signature (its tail text kept)."""
    root = etree.fromstring(data)
    for signature in root.iter(f"{{{DSIG}}}Signature"):
        parent = signature.getparent()
        assert parent is not None
        previous = signature.getprevious()
        if signature.tail:
            if previous is not None:
                previous.tail = (previous.tail or "") + signature.tail
            else:
                parent.text = (parent.text or "") + signature.tail
        parent.remove(signature)
    out = io.BytesIO()
    etree.ElementTree(root).write_c14n(out, exclusive=exclusive, with_comments=False)
    return out.getvalue()


def _general(data: bytes, exclusive: bool) -> bytes:
    observer = _Enveloped(exclusive)
    check_limits(data, DEFAULT_LIMITS, observer)
    return observer.canon.digest()


@pytest.fixture(scope="module")
def bank() -> KeyPair:
    return KeyPair(*generate_keypair("Plain bank", valid_from=datetime(2024, 1, 1, tzinfo=UTC)))


@pytest.mark.parametrize("exclusive", [True, False], ids=["exclusive", "inclusive"])
def test_the_plain_digest_is_libxml2s(exclusive: bool, bank: KeyPair) -> None:
    """Every plain document, sample and signed file digests as libxml2 canonicalises it, and as
    the streaming pass does."""
    signed = [
        sign(build_pain001(benefits_batch(3)), bank),
        sign(build_camt054_file(), bank),
    ]
    plain = 0
    for data in PLAIN + _samples() + signed:
        layout = plain_layout(data, DEFAULT_LIMITS)
        if not isinstance(layout, Plain):
            continue
        plain += 1
        scanned = scan_plain(data, layout, DEFAULT_LIMITS, exclusive=exclusive)
        expected = hashlib.sha256(_libxml2(data, exclusive)).digest()
        assert scanned.digest == expected, data[:80]
        assert scanned.digest == _general(data, exclusive), data[:80]
    assert plain >= len(PLAIN) + len(signed)


def build_camt054_file() -> etree._Element:
    """A small genuine camt.054, for signing."""
    return build_camt054(notification(settlement(), revenue(), returned()))


def test_every_document_listed_as_plain_is_plain() -> None:
    for data in PLAIN:
        assert isinstance(plain_layout(data, DEFAULT_LIMITS), Plain), data[:80]


def test_the_signature_is_found_and_placed_as_the_streaming_pass_places_it(bank: KeyPair) -> None:
    """The same signature, count, root and span as the full pass, in a signed file and in a
    BizMsg envelope."""
    for data in (sign(build_pain001(benefits_batch(2)), bank), PLAIN[1], PLAIN[3]):
        layout = plain_layout(data, DEFAULT_LIMITS)
        assert isinstance(layout, Plain)
        fast = scan_plain(data, layout, DEFAULT_LIMITS, exclusive=True)
        observer = _Enveloped(True)
        check_limits(data, DEFAULT_LIMITS, observer)
        assert (fast.signatures, fast.root) == (observer.signatures, observer.root)
        assert fast.signature is not None and observer.kept is not None
        assert etree.tostring(fast.signature, method="c14n") == observer.kept
        assert fast.span is not None
        assert data[fast.span[0] : fast.span[1]].endswith(b"Signature>")


def test_a_signature_at_depth_three_is_found_but_not_placed() -> None:
    data = b"<a><b>" + SIGNATURE + b"</b></a>"
    layout = plain_layout(data, DEFAULT_LIMITS)
    assert isinstance(layout, Plain)
    scanned = scan_plain(data, layout, DEFAULT_LIMITS, exclusive=True)
    assert scanned.signatures == 1
    assert scanned.signature is None


BASE = b'<a xmlns="urn:x"><b c="1">t</b>' + SIGNATURE + b"</a>"

# Each irregularity: the file is not plain and says why.
IRREGULAR = {
    "comment": (b"<b ", b"<!--x--><b ", "comment"),
    "cdata": (b">t<", b"><![CDATA[t]]><", "CDATA"),
    "processing instruction": (b"<b ", b"<?p x?><b ", "processing instruction"),
    "carriage return": (b">t<", b">t\r\n<", "carriage return"),
    "empty-element tag": (b"<b ", b"<e/><b ", "empty-element tag"),
    "raw > in text": (b">t<", b">t>u<", "'>' outside markup"),
    "raw > in attribute": (b'c="1"', b'c="1>"', "'>' outside markup"),
    "single quotes": (b'c="1"', b"c='1'", "not as C14N writes it"),
    "two spaces": (b'c="1"', b'c="1"  d="2"', "not as C14N writes it"),
    "unsorted attributes": (b'c="1"', b'd="2" c="1"', "canonical order"),
    "space before >": (b'c="1"', b'c="1" ', "not as C14N writes it"),
    "end tag with space": (b"</b>", b"</b >", "end tag"),
    "start tag with space": (b'<b c="1">', b"<b >", "not as C14N writes it"),
    "prefixed element": (b"<b ", b"<p:e></p:e><b ", "prefix"),
    "prefixed element declaring": (b"<b ", b'<p:e xmlns:p="urn:p">1</p:e><b ', "prefix"),
    "prefixed attribute": (b'c="1"', b'c="1" xml:lang="vi"', "not as C14N writes it"),
    "tab in attribute": (b'c="1"', b'c="1\t2"', "not as C14N writes it"),
    "entity in attribute": (b'c="1"', b'c="&quot;"', "reference"),
    "character reference": (b">t<", b">&#10;<", "reference"),
    "quot in text": (b">t<", b">&quot;<", "reference"),
    "declaration below": (b"<b ", b'<e><f xmlns="urn:y"></f></e><b ', "namespace declaration"),
    "redundant declaration": (b"<b ", b'<e xmlns="urn:x"></e><b ', "namespace declaration"),
    "undeclaring": (b"<b ", b'<e xmlns=""></e><b ', "namespace declaration"),
    "second signature": (b"</a>", SIGNATURE + b"</a>", "more than one Signature"),
    "signature too deep": (
        b"<b c",
        b"<e><f><g><h>" + SIGNATURE + b"</h></g></f></e><b c",
        "more than one Signature",
    ),
    "text after the root": (b"</a>", b"</a>x", "after the root"),
    "comment after the root": (b"</a>", b"</a><!--x-->", "after the root"),
    "prefixed root": (b'<a xmlns="urn:x">', b'<q:a xmlns:q="urn:x">', "root"),
    "byte order mark": (b'<a xmlns="urn:x">', b'\xef\xbb\xbf<a xmlns="urn:x">', "root"),
    "not UTF-8": (b">t<", b">\xff<", "UTF-8"),
    "control character": (b">t<", b">\x00<", "control character"),
}


@pytest.mark.parametrize("case", sorted(IRREGULAR))
def test_each_irregularity_sends_the_file_to_the_general_pass(case: str) -> None:
    old, new, why = IRREGULAR[case]
    assert isinstance(plain_layout(BASE, DEFAULT_LIMITS), Plain)
    data = BASE.replace(old, new, 1) if not old.startswith(b"<a xmlns") else new + BASE[len(old) :]
    assert data != BASE
    layout = plain_layout(data, DEFAULT_LIMITS)
    assert isinstance(layout, str), case
    assert why in layout


def test_a_signature_deeper_than_four_is_not_plain() -> None:
    data = b"<a><b><c><d><e>" + SIGNATURE + b"</e></d></c></b></a>"
    layout = plain_layout(data, DEFAULT_LIMITS)
    assert isinstance(layout, str)
    assert "depth 6" in layout


def test_too_many_distinct_attributed_tags_are_not_plain() -> None:
    body = b"".join(b'<b c="%d"></b>' % i for i in range(MAX_DISTINCT_TAGS + 1))
    layout = plain_layout(b"<a>" + body + b"</a>", DEFAULT_LIMITS)
    assert isinstance(layout, str)
    assert "distinct start tags" in layout


NARROW = InboundLimits(
    max_elements=50, max_depth=8, max_attributes=4, max_text=4096, max_attribute_length=256
)

# Files in plain layout over one limit, refused by the same words (and line) as the streaming pass.
OVER = {
    "max_elements": b"<a>\n" + b"<b>x</b>\n" * 60 + b"</a>",
    "max_depth": b"<a>\n" + b"<b>" * 9 + b"</b>" * 9 + b"</a>",
    "max_attributes": b'<a>\n<b c="1" d="1" e="1" f="1" g="1"></b></a>',
    "max_text": b"<a>\n<b>" + "ê".encode() * 4097 + b"</b></a>",
    "max_attribute_length": b'<a>\n\n<b c="' + b"&amp;" * 257 + b'"></b></a>',
    "max_text at the end": b"<a>\n<b></b>" + b"x" * 4097 + b"</a>",
}


@pytest.mark.parametrize("case", sorted(OVER))
def test_plain_limits_are_refused_as_the_streaming_pass_refuses_them(case: str) -> None:
    data = OVER[case]
    with pytest.raises(LimitExceeded) as streamed:
        check_limits(data, NARROW)
    with pytest.raises(LimitExceeded) as plain:
        plain_layout(data, NARROW)
    assert str(plain.value) == str(streamed.value)
    assert f"(limit {case.split(maxsplit=1)[0]})" in str(plain.value)


def test_a_text_longer_than_a_chunk_is_refused_by_max_text() -> None:
    data = b"<a>\n<b>x</b>\n<c>" + b"y" * (3 * CHUNK) + b"</c></a>"
    with pytest.raises(LimitExceeded, match=r"^line 3: a text of more than 65536 characters"):
        plain_layout(data, DEFAULT_LIMITS)


def test_texts_within_the_limit_in_characters_pass() -> None:
    """The text limit counts characters, as the streaming pass does: 4,000 three-byte
    characters (12,000 bytes) and escapes counted as one."""
    data = b"<a><b>" + "ê".encode() * 4000 + b"</b><c>" + b"&amp;" * 4000 + b"</c></a>"
    assert isinstance(plain_layout(data, NARROW), Plain)


def test_a_limit_inside_the_signature_names_the_files_line(bank: KeyPair) -> None:
    data = sign(build_pain001(benefits_batch(1)), bank)
    deep = data.replace(b"<ds:KeyInfo>", b"<ds:X>" * 60 + b"</ds:X>" * 60 + b"<ds:KeyInfo>")
    with pytest.raises(LimitExceeded) as streamed:
        check_limits(deep, DEFAULT_LIMITS)
    with pytest.raises(LimitExceeded) as plain:
        scan_enveloped(deep, DEFAULT_LIMITS)
    assert str(plain.value) == str(streamed.value)


def test_the_general_pass_is_bounded_before_it_starts() -> None:
    """A file not in plain layout is refused at C speed when too large for the general pass."""
    limits = InboundLimits(max_nodes_general=1000, max_bytes_general=64 * 1024)
    empties = b"<a>" + b"<b/>" * 1200 + b"</a>"
    with pytest.raises(LimitExceeded, match=r"\(limit max_nodes_general\)"):
        scan_enveloped(empties, limits)
    with pytest.raises(LimitExceeded, match=r"empty-element tag"):
        scan_enveloped(empties, limits)
    large = b"<a><!--c-->" + b"<b>" + b"x" * 40_000 + b"</b>" * 2 + b"</a>"
    with pytest.raises(LimitExceeded, match=r"\(limit max_bytes_general\)"):
        scan_enveloped(b"<a>" + large * 2 + b"</a>", limits)
    with pytest.raises(LimitExceeded, match=r"more than 50 elements \(limit max_elements\)"):
        check_general_bound(b"<a>" + b"<b/>" * 60 + b"</a>", NARROW, "test")
    # Within both bounds, the general pass reads it and names the first limit it breaks.
    with pytest.raises(InvalidMessage, match=r"no signature: the document has no ds:Signature"):
        _placed(scan_enveloped(b"<a><!--c--><b/></a>", limits))
