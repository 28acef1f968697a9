"""The gateway's enveloped signing (digest from lxml's exclusive C14N, or from the builder's
canonical text; SignedInfo signed by libxmlsec1) against libxmlsec1's own enveloped signing,
python-xmlsec's verification, the xmlsec1 command line and signxml; and the XSD check that runs
beside it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import xmlsec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import XMLVerifier
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration

from gateway.errors import InvalidMessage
from gateway.iso20022 import apphdr, xsd
from gateway.iso20022.camt054 import camt054_debits_document
from gateway.iso20022.model import OutboundBatch
from gateway.iso20022.pain001 import build_pain001, write_pain001
from gateway.iso20022.pain002 import pain002_statuses_document
from gateway.iso20022.xml import file_of
from gateway.profile.signature import SignaturePolicy
from gateway.signing import KeyPair, KeyRing, generate_keypair, sign_for_partner
from gateway.signing.xmldsig import (
    SGNTR,
    SIGNATURE,
    SignatureError,
    sign_enveloped,
    sign_enveloped_by_library,
    sign_enveloped_text,
)
from tests.conftest import xmlsec1_verify
from tests.property.test_iso_properties import batches
from tests.unit.factories import batch, benefits_batch, group, order

pytestmark = pytest.mark.interop
NOW = datetime(2026, 11, 26, tzinfo=UTC)
SINCE_2024 = datetime(2024, 1, 1, tzinfo=UTC)
RSA = KeyPair(*generate_keypair("KBNN fast signing", valid_from=SINCE_2024))
ECDSA = KeyPair(*generate_keypair("KBNN fast signing EC", curve=True, valid_from=SINCE_2024))


def in_envelope(document: etree._Element, msg_id: str) -> etree._Element:
    """The document in a BizMsg envelope with the AppHdr the batcher builds."""
    header = apphdr.build_app_header(
        apphdr.AppHeader(
            sender_name="Kho bạc Nhà nước",
            receiver_bic="BFTVVNVX",
            business_msg_id=msg_id,
            message_definition="pain.001.001.09",
            created_at=NOW,
        )
    )
    return apphdr.wrap(header, document)


def xmlsec_verifies(data: bytes, pair: KeyPair) -> bool:
    """python-xmlsec's own verification of the one enveloped signature, with our certificate."""
    root = etree.fromstring(data, etree.XMLParser(huge_tree=True))
    signature = next(root.iter(SIGNATURE))
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(pair.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    try:
        context.verify(signature)
    except xmlsec.Error:
        return False
    return True


def signxml_verify(data: bytes, pair: KeyPair) -> None:
    """signxml's verification with our certificate (RSA or ECDSA, SHA-256)."""
    config = SignatureConfiguration(
        location=".//",
        signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    )
    XMLVerifier().verify(
        data,
        x509_cert=pair.cert_pem.decode(),
        expect_config=config,
        parser=etree.XMLParser(huge_tree=True),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=batches(),
    version=st.sampled_from(["pain.001.001.09", "pain.001.001.03"]),
    charset=st.sampled_from(["utf8", "latin"]),
    envelope=st.booleans(),
)
def test_fast_signatures_equal_the_librarys_and_verify_in_python_xmlsec(
    batch: OutboundBatch, version: str, charset: str, envelope: bool
) -> None:
    """On generated files (diacritics, NFD text, & < > quotes): with RSA the bytes are the ones
    libxmlsec1's own enveloped signing writes; RSA and ECDSA verify in python-xmlsec; the tree is
    left as it was."""
    root = build_pain001(batch, version, charset=charset)
    if envelope:
        root = in_envelope(root, batch.msg_id)
    before = etree.tostring(root)
    fast = sign_enveloped(root, RSA)
    assert etree.tostring(root) == before
    assert fast == sign_enveloped_by_library(root, RSA)
    assert xmlsec_verifies(fast, RSA)
    curve = sign_enveloped(root, ECDSA)
    assert etree.tostring(root) == before
    assert xmlsec_verifies(curve, ECDSA)
    assert not xmlsec_verifies(curve.replace(b"</MsgId>", b"1</MsgId>", 1), ECDSA)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), version=st.sampled_from(["pain.001.001.09", "pain.001.001.03"]))
def test_signing_the_canonical_text_writes_the_trees_signed_file(
    batch: OutboundBatch, version: str
) -> None:
    """Signed from the builder's canonical text, the file is byte for byte the one signed from
    the tree (RSA), and an ECDSA signature of it verifies; a changed byte does not."""
    written = write_pain001(batch, version)
    fast = sign_enveloped_text(written.canonical, RSA)
    assert fast == sign_enveloped(written.parse(), RSA)
    assert xmlsec_verifies(fast, RSA)
    curve = sign_enveloped_text(written.canonical, ECDSA)
    assert xmlsec_verifies(curve, ECDSA)
    assert not xmlsec_verifies(curve.replace(b"</MsgId>", b"1</MsgId>", 1), ECDSA)


def test_awkward_text_signed_from_its_canonical_form_verifies_in_both_verifiers() -> None:
    """A carriage return, a tab, quotes and markup characters in names: the text signed as
    written verifies in python-xmlsec and signxml (the tree's file writes the carriage return
    as another character reference, so the two files differ there and only there)."""
    awkward = 'Nguyễn "Hồng"\r\n\tNhung & <Co>'
    written = write_pain001(batch(group([order(1, name=awkward, remittance=awkward)])))
    for pair in (RSA, ECDSA):
        signed = sign_enveloped_text(written.canonical, pair)
        assert xmlsec_verifies(signed, pair)
        signxml_verify(signed, pair)
    tree = sign_enveloped(written.parse(), RSA)
    assert sign_enveloped_text(written.canonical, RSA) == tree.replace(b"&#13;", b"&#xD;")


@pytest.mark.slow  # a 10,000-transaction file through two other implementations
@pytest.mark.parametrize("pair", [RSA, ECDSA], ids=["rsa", "ecdsa"])
def test_a_10000_transaction_file_verifies_with_xmlsec1_and_signxml(
    pair: KeyPair, xmlsec1: str, tmp_path: Path
) -> None:
    """A 10,000-transaction pain.001 signed as the batcher signs it (from the builder's canonical
    text) passes both independent verifiers."""
    written = write_pain001(benefits_batch(10_000))
    checked: list[bool] = []

    def check() -> None:
        xsd.validate(written.parse())
        checked.append(True)

    signed = sign_for_partner(
        None,
        KeyRing("kbnn", pair),
        SignaturePolicy(),
        "f.xml",
        NOW,
        check=check,
        canonical=written.canonical,
    )
    assert checked == [True]
    (tmp_path / "f.xml").write_bytes(signed.body)
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    result = xmlsec1_verify(xmlsec1, tmp_path / "f.xml", tmp_path / "c.pem")
    assert result.returncode == 0, result.stderr
    signxml_verify(signed.body, pair)
    tampered = signed.body.replace(b">606000<", b">606001<", 1)
    (tmp_path / "f.xml").write_bytes(tampered)
    assert xmlsec1_verify(xmlsec1, tmp_path / "f.xml", tmp_path / "c.pem").returncode != 0


@pytest.mark.parametrize("pair", [RSA, ECDSA], ids=["rsa", "ecdsa"])
def test_bank_replies_signed_from_their_text_verify_with_xmlsec1_and_signxml(
    pair: KeyPair, xmlsec1: str, tmp_path: Path
) -> None:
    """The bank simulator's camt.054 and pain.002, written as canonical text and signed as
    that text (awkward names and reasons included), pass both independent verifiers."""
    awkward = 'Nguyễn "Hồng"\r\n\t& <Nhung>'
    debits = [
        (
            Decimal("606000"),
            "VND",
            f"VBA{n:08d}",
            "KBNN-1",
            "PMT-1",
            f"E2E-{n}",
            awkward,
            "8613000000001",
            awkward,
        )
        for n in range(3)
    ]
    documents = [
        camt054_debits_document("VBA-DBT-1", NOW, "7411058271001", NOW.date(), debits),
        pain002_statuses_document(
            "VBA-STS-1",
            NOW,
            "KBNN-1",
            "PART",
            [
                ("E2E-1", "ACCP", "E2E-1", "PMT-1", None, None),
                ("E2E-2", "RJCT", "E2E-2", "PMT-1", "AC04", awkward),
            ],
        ),
    ]
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    for document in documents:
        assert document.canonical is not None
        xsd.validate(document.root)
        signed = sign_enveloped_text(document.canonical, pair)
        (tmp_path / "r.xml").write_bytes(signed)
        result = xmlsec1_verify(xmlsec1, tmp_path / "r.xml", tmp_path / "c.pem")
        assert result.returncode == 0, result.stderr
        signxml_verify(signed, pair)


@pytest.mark.parametrize("pair", [RSA, ECDSA], ids=["rsa", "ecdsa"])
def test_an_app_header_envelope_verifies_with_xmlsec1_and_signxml(
    pair: KeyPair, xmlsec1: str, tmp_path: Path
) -> None:
    """The signature in AppHdr/Sgntr covers the header and the Document, for both verifiers."""
    root = in_envelope(build_pain001(benefits_batch(500)), "KBNN-ENV-1")
    signed = sign_for_partner(root, KeyRing("kbnn", pair), SignaturePolicy(), "e.xml", NOW)
    holder = next(etree.fromstring(signed.body).iter(SIGNATURE)).getparent()
    assert holder is not None and holder.tag == SGNTR
    (tmp_path / "e.xml").write_bytes(signed.body)
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    result = xmlsec1_verify(xmlsec1, tmp_path / "e.xml", tmp_path / "c.pem")
    assert result.returncode == 0, result.stderr
    signxml_verify(signed.body, pair)
    tampered = signed.body.replace(b"<BizMsgIdr>KBNN-ENV-1<", b"<BizMsgIdr>KBNN-ENV-2<", 1)
    assert tampered != signed.body
    (tmp_path / "e.xml").write_bytes(tampered)
    assert xmlsec1_verify(xmlsec1, tmp_path / "e.xml", tmp_path / "c.pem").returncode != 0


def test_the_check_runs_beside_the_digest_on_the_unsigned_tree() -> None:
    """The XSD check runs in a second thread and sees no signature; the file is then signed."""
    root = build_pain001(benefits_batch(200))
    seen: list[tuple[int, bool]] = []

    def check() -> None:
        xsd.validate(root)
        seen.append((threading.get_ident(), next(root.iter(SIGNATURE), None) is None))

    data = sign_enveloped(root, RSA, alongside=check)
    assert seen == [(seen[0][0], True)] and seen[0][0] != threading.get_ident()
    assert xmlsec_verifies(data, RSA)


def test_in_an_envelope_the_check_runs_first_without_the_sgntr_holder() -> None:
    """An envelope is checked part by part before the Sgntr holder goes into its AppHdr."""
    root = in_envelope(build_pain001(benefits_batch(3)), "KBNN-ENV-3")
    seen: list[bool] = []

    def check() -> None:
        xsd.validate(root)
        seen.append(next(root.iter(SGNTR), None) is None)

    assert xmlsec_verifies(sign_enveloped(root, RSA, alongside=check), RSA)
    assert seen == [True]


@pytest.mark.parametrize("from_text", [False, True], ids=["tree", "canonical-text"])
@pytest.mark.parametrize("mode", ["enveloped", "detached", "none"])
def test_a_failing_check_signs_nothing_and_leaves_the_tree(mode: str, from_text: bool) -> None:
    """When the XSD check fails its error comes out, nothing is signed, and a tree given is as
    it was."""
    written = write_pain001(benefits_batch(50))
    root = written.parse()
    before = etree.tostring(root)

    def check() -> None:
        raise InvalidMessage("pain.001.001.09 fails its XSD: line 3: MsgId: too long")

    with pytest.raises(InvalidMessage, match="fails its XSD"):
        sign_for_partner(
            None if from_text else root,
            KeyRing("k", RSA),
            SignaturePolicy(mode=mode),
            "f.xml",
            NOW,
            check=check,
            canonical=written.canonical if from_text else None,
        )
    assert etree.tostring(root) == before


@pytest.mark.parametrize("mode", ["enveloped", "detached", "none"])
def test_every_mode_makes_the_same_file_from_the_canonical_text(mode: str) -> None:
    """Given the canonical text and no tree, unsigned and detached files are the declaration and
    the text: the bytes the tree serialises to; an enveloped file is the tree's signed file. The
    check runs once."""
    written = write_pain001(benefits_batch(20))
    ring, policy = KeyRing("k", RSA), SignaturePolicy(mode=mode)
    checks: list[str] = []
    from_tree = sign_for_partner(written.parse(), ring, policy, "f.xml", NOW)
    from_text = sign_for_partner(
        None,
        ring,
        policy,
        "f.xml",
        NOW,
        check=lambda: checks.append("xsd"),
        canonical=written.canonical,
    )
    assert checks == ["xsd"]
    assert from_text == from_tree
    if mode != "enveloped":
        assert from_text.body == file_of(written.canonical)
    else:
        assert xmlsec_verifies(from_text.body, RSA)
    for root, canonical in ((None, None), (written.parse(), written.canonical)):
        with pytest.raises(ValueError, match="tree or its canonical text"):
            sign_for_partner(root, ring, policy, "f.xml", NOW, canonical=canonical)


def test_text_that_is_not_a_document_is_refused_before_signing() -> None:
    """Only a document ending with its root's end tag can take the signature before it."""
    for text in (b"", b"plain", b"<Document/>", b"<Document>open"):
        with pytest.raises(SignatureError, match="not a document ending with its root's end tag"):
            sign_enveloped_text(text, RSA)


def test_a_document_with_content_outside_its_root_is_refused() -> None:
    """A comment beside the root would be outside what the digest covers: refused by name."""
    root = build_pain001(benefits_batch(1))
    root.addprevious(etree.Comment("not ours"))
    with pytest.raises(Exception, match="outside its root element"):
        sign_enveloped(root, RSA)
