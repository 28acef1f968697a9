"""Inbound XML hardening: the parser, message types, XSD validation and signature refusals."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.namespaces import MessageType, message_type
from gateway.iso20022.pain001 import build_pain001
from gateway.iso20022.xml import parse_xml, to_bytes
from gateway.signing import (
    KeyPair,
    SignatureError,
    ensure_keypair,
    key_id_of,
    load_keypair,
    sign,
    verify,
)
from tests.unit.factories import batch, benefits_batch, group, order

PAIN001 = MessageType.PAIN_001_001_09.namespace
DSIG = "http://www.w3.org/2000/09/xmldsig#"


# --- Parser ------------------------------------------------------------------------------------


def test_a_plain_document_parses() -> None:
    """A well-formed document comes back as its root element."""
    root = parse_xml(b'<?xml version="1.0"?><Document xmlns="urn:x"><A>1</A></Document>')
    assert etree.QName(root).localname == "Document"


def test_a_doctype_is_refused_with_a_clear_message() -> None:
    """Any DOCTYPE is refused before parsing, even a harmless one."""
    with pytest.raises(InvalidMessage, match=r"DOCTYPE declaration; DTDs and entities are refused"):
        parse_xml(b"<!DOCTYPE Document><Document/>")


def test_an_external_entity_is_refused_and_nothing_is_read(tmp_path: Path) -> None:
    """XXE: an entity pointing at a local file is refused, the file never read into the tree."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret}">]><d>&xxe;</d>'
    ).encode()
    with pytest.raises(InvalidMessage, match=r"DOCTYPE") as refused:
        parse_xml(data)
    assert "top secret" not in str(refused.value)


def test_billion_laughs_is_refused() -> None:
    """Nested entity expansion is refused as a DOCTYPE, long before any expansion."""
    lol = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    data = f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{lol}]><l>&lol9;</l>'
    with pytest.raises(InvalidMessage, match=r"DOCTYPE"):
        parse_xml(data.encode())


def test_an_external_dtd_is_refused_without_network() -> None:
    """A DOCTYPE pointing at a remote DTD is refused before anything is fetched."""
    data = b'<!DOCTYPE d SYSTEM "http://example.invalid/evil.dtd"><d/>'
    with pytest.raises(InvalidMessage, match=r"DOCTYPE"):
        parse_xml(data)


def test_a_utf16_doctype_is_refused() -> None:
    """The DOCTYPE check does not depend on the document being UTF-8."""
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d><d/>'.encode("utf-16")
    with pytest.raises(InvalidMessage, match=r"DOCTYPE"):
        parse_xml(data)


def test_xinclude_is_not_processed() -> None:
    """An xi:include stays an inert element; nothing is fetched or inlined."""
    data = (
        b'<d xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="/etc/passwd" parse="text"/></d>'
    )
    root = parse_xml(data)
    assert root[0].tag == "{http://www.w3.org/2001/XInclude}include"
    assert "root:" not in etree.tostring(root, encoding="unicode")


def test_an_oversized_document_is_refused_before_parsing() -> None:
    """The size cap is checked first and named in the message."""
    data = b"<d>" + b"x" * 2000 + b"</d>"
    with pytest.raises(InvalidMessage, match=r"document is 2007 bytes; the limit is 1000"):
        parse_xml(data, max_bytes=1000)


def test_malformed_xml_names_the_line() -> None:
    """A syntax error says on which line it is."""
    with pytest.raises(InvalidMessage, match=r"malformed XML at line 3: "):
        parse_xml(b"<Document>\n  <A>1</A>\n  <B>2</C>\n</Document>")


def test_an_empty_document_is_refused() -> None:
    """Empty or blank input is refused as such."""
    with pytest.raises(InvalidMessage, match=r"empty"):
        parse_xml(b"  \n")


def test_text_instead_of_bytes_is_refused() -> None:
    """The parser takes bytes, so the declared encoding is the one used."""
    with pytest.raises(InvalidMessage, match=r"bytes"):
        parse_xml("<d/>")  # type: ignore[arg-type]


def test_to_bytes_writes_utf8_with_a_declaration() -> None:
    """Serialisation is UTF-8 with an XML declaration; Vietnamese survives."""
    root = etree.Element("{urn:x}Nm", nsmap={None: "urn:x"})
    root.text = "Nguyễn Thị Hồng Nhung"
    data = to_bytes(root)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "Nguyễn Thị Hồng Nhung".encode() in data
    assert parse_xml(data).text == "Nguyễn Thị Hồng Nhung"


# --- Message types -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MessageType))
def test_message_type_is_told_by_the_root_namespace(kind: MessageType) -> None:
    """Every supported namespace maps to its type and message name id."""
    root = etree.Element(f"{{{kind.value}}}Document")
    assert message_type(root) is kind
    assert kind.value.endswith(kind.name_id)
    assert MessageType.from_name_id(kind.name_id) is kind


def test_message_name_id_of_pain001() -> None:
    """The name id is the short ISO form."""
    assert MessageType.PAIN_001_001_09.name_id == "pain.001.001.09"
    assert MessageType.PAIN_001_001_09.family == "pain.001"


def test_an_unknown_namespace_is_named() -> None:
    """An unsupported namespace is refused and quoted."""
    with pytest.raises(InvalidMessage, match=r"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"):
        message_type(etree.Element("{urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08}Document"))


def test_a_document_without_namespace_is_refused() -> None:
    """No namespace, no message type."""
    with pytest.raises(InvalidMessage, match=r"has no namespace"):
        message_type(etree.Element("Document"))


def test_the_swiss_variant_reads_as_its_iso_base() -> None:
    """The SIX .ch.02 namespace of pain.002 is the ISO pain.002.001.03 structure."""
    swiss = "http://www.six-interbank-clearing.com/de/pain.002.001.03.ch.02.xsd"
    assert message_type(etree.Element(f"{{{swiss}}}Document")) is MessageType.PAIN_002_001_03


# --- XSD ---------------------------------------------------------------------------------------


def test_validation_error_names_line_and_element() -> None:
    """A parsed document failing its XSD names the line, element path and libxml2 message."""
    data = (
        f'<Document xmlns="{PAIN001}">\n<CstmrCdtTrfInitn>\n<GrpHdr>\n'
        "<MsgId>M1</MsgId>\n<Bogus/>\n</GrpHdr>\n</CstmrCdtTrfInitn>\n</Document>"
    ).encode()
    with pytest.raises(InvalidMessage) as refused:
        xsd.validate(parse_xml(data))
    message = str(refused.value)
    assert message.startswith("pain.001.001.09 fails its XSD: line 5: ")
    assert "CstmrCdtTrfInitn/GrpHdr/Bogus" in message
    assert "This element is not expected" in message
    assert "{urn:" not in message


def test_validation_of_an_unknown_namespace_is_refused() -> None:
    """No XSD is guessed for an unknown namespace."""
    with pytest.raises(InvalidMessage, match=r"not a supported message"):
        xsd.validate(etree.Element("{urn:example:other}Document"))


def test_a_missing_schema_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GATEWAY_SCHEMAS_DIR overrides the folder; a missing XSD names the file."""
    monkeypatch.setenv(xsd.SCHEMAS_ENV, str(tmp_path))
    assert not xsd.has_schema(MessageType.PAIN_001_001_09)
    with pytest.raises(ConfigError, match=r"no XSD for pain.001.001.09: .*pain.001.001.09.xsd"):
        xsd.validate(build_pain001(benefits_batch(1)))


def test_every_read_message_version_ships_its_xsd_but_two_pacs004() -> None:
    """Every version the gateway reads or writes has its XSD in schemas/ (pain.002.001.10 and
    pacs.004.001.09 included) except pacs.004.001.02 and .11, read by the rules of the reader."""
    missing = {kind.name_id for kind in MessageType if not xsd.has_schema(kind)}
    assert missing == {"pacs.004.001.02", "pacs.004.001.11"}
    for kind in (MessageType.PAIN_002_001_10, MessageType.PACS_004_001_09):
        assert xsd.schema_for(kind) is not None


def test_schemas_are_compiled_once_even_from_many_threads() -> None:
    """Concurrent first use compiles one schema; later calls reuse it."""
    kind = MessageType.CAMT_053_001_04
    seen: list[etree.XMLSchema] = []
    threads = [threading.Thread(target=lambda: seen.append(xsd.schema_for(kind))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(schema) for schema in seen}) == 1
    assert xsd.schema_for(kind) is seen[0]


# --- Signatures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """The treasury's RSA 3072 key pair, generated once for this module."""
    return ensure_keypair(tmp_path_factory.mktemp("keys"), "kbnn", "KBNN gateway test")


@pytest.fixture(scope="module")
def signed(keypair: KeyPair) -> bytes:
    """A small signed pain.001."""
    root = build_pain001(batch(group([order(1), order(2, amount="1250000")])))
    xsd.validate(root)
    return sign(root, keypair)


def ec_keypair(common_name: str = "Other signer") -> KeyPair:
    """A quick EC P-256 key pair with a self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1000))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyPair(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def test_generated_key_is_private_and_reloaded(keypair: KeyPair, tmp_path: Path) -> None:
    """The key file is 0600, the key id is the cert fingerprint, and a second call reloads."""
    directory = tmp_path / "new" / "keys"
    first = ensure_keypair(directory, "bank", "Bank simulator")
    assert (directory / "bank.key.pem").stat().st_mode & 0o777 == 0o600
    assert first.key_id == key_id_of(first.cert_pem) and len(first.key_id) == 16
    assert ensure_keypair(directory, "bank", "ignored") == first
    cert = x509.load_pem_x509_certificate(first.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Bank simulator"
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "VN"
    assert cert.public_key().key_size == 3072  # type: ignore[union-attr]


def test_a_key_that_does_not_match_its_certificate_is_refused(
    keypair: KeyPair, tmp_path: Path
) -> None:
    """A key file beside someone else's certificate is a configuration error."""
    (tmp_path / "x.key.pem").write_bytes(keypair.key_pem)
    (tmp_path / "x.cert.pem").write_bytes(ec_keypair().cert_pem)
    with pytest.raises(ConfigError, match=r"does not match"):
        load_keypair(tmp_path / "x.key.pem", tmp_path / "x.cert.pem")


def test_a_half_key_pair_is_refused(keypair: KeyPair, tmp_path: Path) -> None:
    """A lone certificate is not silently replaced by a new key."""
    (tmp_path / "y.cert.pem").write_bytes(keypair.cert_pem)
    with pytest.raises(ConfigError, match=r"y.key.pem is missing"):
        ensure_keypair(tmp_path, "y", "Y")


def test_signature_uses_the_agreed_algorithms(signed: bytes, keypair: KeyPair) -> None:
    """RSA-SHA256, SHA-256, exclusive C14N, one reference URI="", KeyName = key id."""
    root = parse_xml(signed)
    signature = root[-1]
    assert signature.tag == f"{{{DSIG}}}Signature"
    ns = {"ds": DSIG}
    algorithms = signature.xpath("ds:SignedInfo//@Algorithm", namespaces=ns)
    assert "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" in algorithms
    assert "http://www.w3.org/2001/04/xmlenc#sha256" in algorithms
    assert "http://www.w3.org/2001/10/xml-exc-c14n#" in algorithms
    assert signature.xpath("ds:SignedInfo/ds:Reference/@URI", namespaces=ns) == [""]
    assert signature.findtext("ds:KeyInfo/ds:KeyName", namespaces=ns) == keypair.key_id


def test_verify_returns_only_the_signed_document(signed: bytes, keypair: KeyPair) -> None:
    """The verified tree has no signature and is valid against its XSD again."""
    tree = verify(signed, keypair.cert_pem)
    assert tree.find(f".//{{{DSIG}}}Signature") is None
    xsd.validate(tree)


def test_signing_leaves_the_callers_tree_unchanged(keypair: KeyPair) -> None:
    """The tree passed to sign() is the same before and after."""
    root = build_pain001(benefits_batch(2))
    before = to_bytes(root)
    sign(root, keypair)
    assert to_bytes(root) == before


def test_a_signed_document_with_its_signature_fails_the_xsd(signed: bytes) -> None:
    """Document allows only its message element: XSD runs before signing and after verifying."""
    with pytest.raises(InvalidMessage, match=r"Signature: This element is not expected"):
        xsd.validate(parse_xml(signed))


def test_a_tampered_amount_fails_the_digest(signed: bytes, keypair: KeyPair) -> None:
    """Changing one amount breaks the digest."""
    tampered = signed.replace(b">1250000<", b">9250000<", 1)
    assert tampered != signed
    with pytest.raises(SignatureError, match=r"signature does not verify: digest mismatch"):
        verify(tampered, keypair.cert_pem)


def test_an_unsigned_document_is_refused(keypair: KeyPair) -> None:
    """No ds:Signature, no trust."""
    with pytest.raises(SignatureError, match=r"no signature"):
        verify(to_bytes(build_pain001(benefits_batch(1))), keypair.cert_pem)


def test_two_signatures_are_refused(signed: bytes, keypair: KeyPair) -> None:
    """A second Signature element (signature wrapping) is refused."""
    root = parse_xml(signed)
    root[0].append(etree.fromstring(etree.tostring(root[-1])))
    with pytest.raises(SignatureError, match=r"2 signatures"):
        verify(to_bytes(root), keypair.cert_pem)


def test_a_document_signed_by_another_key_is_refused(keypair: KeyPair) -> None:
    """A valid signature by a cert that is not the pinned one is refused, naming both."""
    other = ec_keypair()
    data = sign(build_pain001(benefits_batch(1)), other)
    assert verify(data, other.cert_pem) is not None
    with pytest.raises(
        SignatureError, match=r"certificate [0-9a-f]{16} is not pinned for this partner"
    ):
        verify(data, keypair.cert_pem)


def test_a_swapped_certificate_does_not_fool_the_pinned_key(keypair: KeyPair) -> None:
    """Embedding the pinned cert in a signature made by another key still fails."""
    other = ec_keypair()
    data = sign(build_pain001(benefits_batch(1)), other)
    ours = b"".join(keypair.cert_pem.split(b"\n")[1:-2])
    theirs = b"".join(other.cert_pem.split(b"\n")[1:-2])
    root = parse_xml(data)
    cert_el = root.find(f".//{{{DSIG}}}X509Certificate")
    assert cert_el is not None and cert_el.text is not None
    assert "".join(cert_el.text.split()).encode() == theirs
    cert_el.text = ours.decode()
    # An ECDSA signature value checked against the pinned RSA key: refused either way.
    with pytest.raises(SignatureError, match=r"key mismatch: the signature is ECDSA_SHA256"):
        verify(to_bytes(root), keypair.cert_pem)


def test_sha1_and_inclusive_c14n_are_refused(signed: bytes, keypair: KeyPair) -> None:
    """Weaker or other algorithms are refused by name, before any cryptography."""
    exc_c14n = b"http://www.w3.org/2001/10/xml-exc-c14n#"
    inclusive = signed.replace(exc_c14n, b"http://www.w3.org/TR/2001/REC-xml-c14n-20010315", 1)
    with pytest.raises(SignatureError, match=r"canonicalisation .* is refused; accepted: EXC_C14N"):
        verify(inclusive, keypair.cert_pem)
    sha1 = signed.replace(
        b"http://www.w3.org/2001/04/xmlenc#sha256", b"http://www.w3.org/2000/09/xmldsig#sha1"
    )
    with pytest.raises(SignatureError, match=r"digest '.*#sha1' is refused; accepted: SHA256"):
        verify(sha1, keypair.cert_pem)
    rsa_sha1 = signed.replace(
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        b"http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )
    with pytest.raises(SignatureError, match=r"signature method .* is refused"):
        verify(rsa_sha1, keypair.cert_pem)


def test_a_signature_covering_part_of_the_document_is_refused(
    signed: bytes, keypair: KeyPair
) -> None:
    """Only URI="" (the whole document) is accepted."""
    partial = signed.replace(b'URI=""', b'URI="#part"', 1)
    with pytest.raises(SignatureError, match=r'only URI="" \(the whole document\) is accepted'):
        verify(partial, keypair.cert_pem)


def test_an_ecdsa_signature_verifies() -> None:
    """EC keys sign with ECDSA-SHA256, which verify() accepts."""
    other = ec_keypair()
    data = sign(build_pain001(benefits_batch(3)), other)
    assert b"xmldsig-more#ecdsa-sha256" in data
    xsd.validate(verify(data, other.cert_pem))


def test_an_already_signed_document_is_not_signed_again(signed: bytes, keypair: KeyPair) -> None:
    """Signing twice is refused rather than producing two signatures."""
    with pytest.raises(SignatureError, match=r"already signed"):
        sign(parse_xml(signed), keypair)
