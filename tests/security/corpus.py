"""The hostile-input corpus, generated at test time: what attackers send, and why each is refused.

Each case is a file (and, for detached partners, a signature) from a partner, with the reason
the gateway must give. `tests/security/test_hostile_corpus.py` drives every case through the real
inbound path; `scripts/security_table.py` prints the table of docs/security.md from the same list.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.iso20022.namespaces import DSIG_NS
from gateway.iso20022.xml import to_bytes
from gateway.signing import KeyPair, generate_keypair, sign
from gateway.signing.xmldsig import sign_detached
from tests.security.corpus_inbound import build_more

# Files are dated half an hour before the corpus runs: within every partner's tolerance.
AT = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
ACCOUNT = "7411058271001"
DS = f"{{{DSIG_NS}}}"
MAX_BYTES = 200 * 1024 * 1024

# Partners of the corpus: name -> (signature mode, which key its profile pins).
PARTNERS = {
    "bank-a": "enveloped",
    "bank-d": "detached",
    "bank-old": "enveloped",  # pins a certificate that expired in 2025
    "bank-weak": "enveloped",  # pins an RSA-1024 certificate
    "bank-window": "enveloped",  # pins bank-a's key, but only until 2026-06-30
    "bank-next": "enveloped",  # pins bank-a's key, but only from next month
}


@dataclass(frozen=True)
class Keys:
    """Every key the corpus signs with."""

    bank: KeyPair
    stranger: KeyPair
    expired: KeyPair
    weak: KeyPair


@dataclass(frozen=True)
class Case:
    """One hostile input, the partner it claims to come from, and the reason expected."""

    name: str
    group: str
    attack: str
    partner: str
    raw: bytes
    expect: str  # a regular expression the quarantine reason must match
    signature: bytes | None = None
    # "quarantined" (the file is refused), or "unmatched" (applied, the line kept aside)
    outcome: str = "quarantined"


def make_keys() -> Keys:
    """The bank's key, a stranger's, an expired one and a weak one."""
    bank = KeyPair(*generate_keypair("bank-a", valid_from=datetime(2024, 1, 1, tzinfo=UTC)))
    stranger = KeyPair(*generate_keypair("stranger", valid_from=datetime(2024, 1, 1, tzinfo=UTC)))
    expired = KeyPair(
        *generate_keypair(
            "bank-old",
            valid_from=datetime(2023, 1, 1, tzinfo=UTC),
            valid_until=datetime(2025, 1, 1, tzinfo=UTC),
        )
    )
    return Keys(bank, stranger, expired, _weak_pair())


def _weak_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the case
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank-weak")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime.now(UTC) + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def notification(n: int, amount: str = "540000", created: datetime = AT) -> etree._Element:
    """A camt.054 with one debit, unique by `n` (so no two cases share a file)."""
    return build_camt054(
        Notification(
            msg_id=f"SEC-{n:03d}",
            created_at=created,
            account=ACCOUNT,
            entries=(
                Entry(
                    amount=Decimal(amount),
                    currency="VND",
                    credit_debit="DBIT",
                    status="BOOK",
                    booking_date=created.date(),
                    value_date=created.date(),
                    account_servicer_ref=f"SEC-REF-{n}",
                    details=(
                        EntryDetail(
                            amount=Decimal(amount),
                            currency="VND",
                            end_to_end_id=f"SEC-E2E-{n}",
                        ),
                    ),
                ),
            ),
        )
    )


def _first(root: etree._Element, local: str) -> etree._Element:
    found = next(root.iter(f"{{*}}{local}"))
    return found


def _signed_tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def _edit(data: bytes, change: Callable[[etree._Element], object]) -> bytes:
    root = _signed_tree(data)
    change(root)
    return to_bytes(root)


def _replace(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), 1)


def _doctype(n: int, dtd: str, body: str = "&x;") -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE Document [\n{dtd}\n]>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">'
        f"<Id>SEC-{n:03d}</Id><Nm>{body}</Nm></Document>"
    ).encode()


def build(keys: Keys, canary_file: Path, canary_url: str) -> list[Case]:
    """Every case of the corpus; `canary_*` must never be read or contacted."""
    cases: list[Case] = []
    counter = iter(range(1, 1000))

    def add(name: str, group: str, attack: str, raw: bytes, expect: str, **kw: object) -> None:
        cases.append(
            Case(
                name,
                group,
                attack,
                str(kw.get("partner", "bank-a")),
                raw,
                expect,
                kw.get("signature"),  # type: ignore[arg-type]
                str(kw.get("outcome", "quarantined")),
            )
        )

    def signed(amount: str = "540000", pair: KeyPair | None = None, **kw: object) -> bytes:
        return sign(notification(next(counter), amount, **kw), pair or keys.bank)  # type: ignore[arg-type]

    doctype = r"DOCTYPE declaration; DTDs and entities are refused"
    file_uri = canary_file.as_uri()

    # --- XML parser attacks ----------------------------------------------------------------------
    add(
        "xxe-file",
        "parser",
        "external entity reading a local file",
        _doctype(next(counter), f'<!ENTITY x SYSTEM "{file_uri}">'),
        doctype,
    )
    add(
        "xxe-network",
        "parser",
        "external entity fetching a URL",
        _doctype(next(counter), f'<!ENTITY x SYSTEM "{canary_url}/xxe">'),
        doctype,
    )
    add(
        "xxe-parameter-entity",
        "parser",
        "parameter entity loading a remote DTD",
        _doctype(next(counter), f'<!ENTITY % p SYSTEM "{canary_url}/p.dtd"> %p;', "x"),
        doctype,
    )
    add(
        "xxe-utf16",
        "parser",
        "external entity in a UTF-16 document",
        _doctype(next(counter), f'<!ENTITY x SYSTEM "{file_uri}">')
        .replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
        .decode()
        .encode("utf-16"),
        doctype,
    )
    laughs = '<!ENTITY l0 "ha">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    ).replace("&x;", "")
    add(
        "billion-laughs",
        "parser",
        "nested entities expanding to 10^9 characters",
        _doctype(next(counter), laughs, "&l9;"),
        doctype,
    )
    add(
        "quadratic-blowup",
        "parser",
        "one 100 kB entity referenced 20,000 times",
        _doctype(next(counter), f'<!ENTITY x "{"A" * 100_000}">', "&x;" * 20_000),
        doctype,
    )
    add(
        "external-dtd",
        "parser",
        "DOCTYPE pointing at a remote DTD",
        f'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "{canary_url}/x.dtd"><Document/>'.encode(),
        doctype,
    )
    add(
        "external-dtd-file",
        "parser",
        "DOCTYPE pointing at a local file",
        f'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "{file_uri}"><Document/>'.encode(),
        doctype,
    )
    xinclude = notification(next(counter))
    include = etree.SubElement(
        _first(xinclude, "GrpHdr"),
        "{http://www.w3.org/2001/XInclude}include",
        href=file_uri,
        parse="text",
    )
    assert include is not None
    add(
        "xinclude",
        "parser",
        "XInclude of a local file, validly signed by the bank",
        sign(xinclude, keys.bank),
        r"XInclude element at line \d+ is refused",
    )
    add(
        "deep-nesting",
        "parser",
        "100,000 nested elements",
        b"<a>" * 100_000 + b"</a>" * 100_000,
        r"elements nested deeper than 48 \(limit max_depth\)",
    )
    add(
        "oversized",
        "parser",
        "a 200 MiB file, over the partner's 128 MiB limit",
        b"<" + b"a" * MAX_BYTES + b">",
        r"document is 209715202 bytes; the limit is 134217728 \(limit max_bytes\)",
    )
    add("empty", "parser", "an empty file", b"", r"document is empty")
    add(
        "not-xml",
        "parser",
        "binary garbage",
        b"\x00\x01PK\x03\x04garbage",
        r"malformed XML at line 1",
    )
    add(
        "processing-instruction",
        "parser",
        "a processing instruction inside a signed amount",
        _replace(signed("540000"), ">540000<", "><?x y?>540000<"),
        r"line \d+: a processing instruction; payment files have none",
    )

    # --- Signature presence and wrapping ---------------------------------------------------------
    add(
        "unsigned",
        "wrapping",
        "no signature at all",
        to_bytes(notification(next(counter))),
        r"no signature: the document has no ds:Signature",
    )

    def second_signature(root: etree._Element) -> None:
        root.append(copy.deepcopy(root.find(f"{DS}Signature")))

    add(
        "two-signatures",
        "wrapping",
        "a second ds:Signature at the root",
        _edit(signed(), second_signature),
        r"2 signatures: exactly one ds:Signature is accepted",
    )

    def signature_in_header(root: etree._Element) -> None:
        _first(root, "GrpHdr").append(copy.deepcopy(root.find(f"{DS}Signature")))

    add(
        "signature-copy-in-header",
        "wrapping",
        "a copy of the signature hidden in GrpHdr",
        _edit(signed(), signature_in_header),
        r"2 signatures",
    )

    def moved(root: etree._Element) -> None:
        signature = root.find(f"{DS}Signature")
        _first(root, "GrpHdr").append(signature)

    add(
        "moved-signature",
        "wrapping",
        "the signature moved into GrpHdr",
        _edit(signed(), moved),
        r"must be enveloped directly under the document root",
    )

    def wrapped(root: etree._Element) -> None:
        signature = root.find(f"{DS}Signature")
        evil = copy.deepcopy(root[0])
        _first(evil, "Amt").text = "999999999"
        root.insert(0, evil)
        assert signature is not None

    add(
        "wrapped-forged-message",
        "wrapping",
        "a forged message inserted before the signed one",
        _edit(signed(), wrapped),
        r"digest mismatch \(the signed content was changed\)",
    )

    def second_group_header(root: etree._Element) -> None:
        header = _first(root, "GrpHdr")
        forged = copy.deepcopy(header)
        _first(forged, "MsgId").text = "FORGED-1"
        header.addprevious(forged)

    add(
        "second-group-header",
        "wrapping",
        "a second GrpHdr ahead of the signed one",
        _edit(signed(), second_group_header),
        r"digest mismatch",
    )

    def id_reference(root: etree._Element) -> None:
        _first(root, "GrpHdr").set("Id", "signed")
        next(root.iter(f"{DS}Reference")).set("URI", "#signed")

    add(
        "reference-to-id",
        "wrapping",
        "a reference covering only one element by Id",
        _edit(signed(), id_reference),
        r'reference is URI=\'#signed\'; only URI="" .* accepted',
    )

    def duplicate_ids(root: etree._Element) -> None:
        id_reference(root)
        forged = copy.deepcopy(_first(root, "GrpHdr"))
        _first(root, "GrpHdr").addprevious(forged)

    add(
        "duplicate-ids",
        "wrapping",
        "two elements with the Id the reference names",
        _edit(signed(), duplicate_ids),
        r"reference is URI='#signed'",
    )

    def two_references(root: etree._Element) -> None:
        reference = next(root.iter(f"{DS}Reference"))
        reference.addnext(copy.deepcopy(reference))

    add(
        "two-references",
        "wrapping",
        "a second Reference in SignedInfo",
        _edit(signed(), two_references),
        r"2 references; exactly one is accepted",
    )

    def object_element(root: etree._Element) -> None:
        signature = root.find(f"{DS}Signature")
        etree.SubElement(signature, f"{DS}Object").append(copy.deepcopy(root[0]))

    add(
        "signature-object",
        "wrapping",
        "a ds:Object carrying a copy of the message",
        _edit(signed(), object_element),
        r"SignedInfo, SignatureValue and KeyInfo, once each, in that order; it holds Object",
    )

    def second_signed_info(root: etree._Element) -> None:
        info = next(root.iter(f"{DS}SignedInfo"))
        info.addnext(copy.deepcopy(info))

    add(
        "second-signed-info",
        "wrapping",
        "a second SignedInfo inside the signature",
        _edit(signed(), second_signed_info),
        r"SignedInfo, SignatureValue and KeyInfo, once each, in that order",
    )
    add(
        "foreign-bizmsg",
        "wrapping",
        "signature outside AppHdr/Sgntr in a BizMsg envelope",
        _bizmsg_signed_wrongly(keys.bank, next(counter)),
        r"must sit in BizMsg/AppHdr/Sgntr",
    )

    # --- Content changed after signing -----------------------------------------------------------
    add(
        "tampered-amount",
        "content",
        "an amount raised after signing",
        _replace(signed("540000"), ">540000<", ">940000<"),
        r"digest mismatch",
    )
    add(
        "comment-in-amount",
        "content",
        "a comment splitting a signed amount (<!---->)",
        _replace(signed("540000"), ">540000<", ">54<!---->0000<"),
        r"comment inside <Amt> at line \d+",
    )
    commented = notification(next(counter), "9540000")
    amount = _first(commented, "Amt")
    amount.text = "9"
    amount.append(etree.Comment(" the bank "))
    amount[-1].tail = "540000"
    add(
        "signed-comment-in-amount",
        "content",
        "a comment inside an amount, signed: C14N drops it, a reader would see 9",
        sign(commented, keys.bank),
        r"comment inside <Amt>",
    )
    add(
        "tampered-digest-value",
        "content",
        "DigestValue replaced to match a changed file (SignedInfo then fails its value)",
        _edit(
            signed(),
            lambda r: setattr(
                next(r.iter(f"{DS}DigestValue")), "text", base64.b64encode(b"x" * 32).decode()
            ),
        ),
        r"signature value does not match the pinned key",
    )
    add(
        "tampered-signature-value",
        "content",
        "SignatureValue altered",
        _edit(signed(), _flip_signature_value),
        r"signature value does not match the pinned key",
    )

    # --- Algorithms ------------------------------------------------------------------------------
    def algorithm(old: str, new: str) -> bytes:
        return _replace(signed(), old, new)

    rsa256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    sha256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    exc = 'CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"'
    add(
        "rsa-sha1",
        "algorithm",
        "signature method RSA-SHA1",
        algorithm(rsa256, "http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
        r"signature method '.*#rsa-sha1' is refused",
    )
    add(
        "sha1-digest",
        "algorithm",
        "SHA-1 digest",
        algorithm(sha256, "http://www.w3.org/2000/09/xmldsig#sha1"),
        r"digest '.*#sha1' is refused",
    )
    add(
        "hmac-sha256",
        "algorithm",
        "HMAC-SHA256 (a shared secret, not a signature)",
        algorithm(rsa256, "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"),
        r"signature method '.*#hmac-sha256' is refused",
    )
    add(
        "hmac-sha1",
        "algorithm",
        "HMAC-SHA1",
        algorithm(rsa256, "http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
        r"signature method '.*#hmac-sha1' is refused",
    )
    add(
        "md5-digest",
        "algorithm",
        "MD5 digest",
        algorithm(sha256, "http://www.w3.org/2001/04/xmldsig-more#md5"),
        r"digest '.*md5' is refused",
    )
    add(
        "inclusive-c14n",
        "algorithm",
        "inclusive C14N for SignedInfo",
        algorithm(
            exc,
            'CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"',
        ),
        r"canonicalisation '.*REC-xml-c14n-20010315' is refused",
    )
    add(
        "c14n-with-comments",
        "algorithm",
        "exclusive C14N with comments",
        algorithm(
            exc,
            'CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#WithComments"',
        ),
        r"canonicalisation '.*#WithComments' is refused",
    )

    def xslt_transform(root: etree._Element) -> None:
        transforms = next(root.iter(f"{DS}Transforms"))
        etree.SubElement(
            transforms, f"{DS}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"
        )

    add(
        "xslt-transform",
        "algorithm",
        "an XSLT transform in the reference",
        _edit(signed(), xslt_transform),
        r"transforms .*REC-xslt-19991116.* refused",
    )

    def xpath_transform(root: etree._Element) -> None:
        transforms = next(root.iter(f"{DS}Transforms"))
        for transform in list(transforms):
            transforms.remove(transform)
        etree.SubElement(
            transforms, f"{DS}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"
        )

    add(
        "xpath-transform",
        "algorithm",
        "an XPath filter instead of the enveloped transform",
        _edit(signed(), xpath_transform),
        r"transforms .*REC-xpath-19991116 refused",
    )

    # --- Keys and certificates -------------------------------------------------------------------
    add(
        "wrong-certificate",
        "trust",
        "signed by a stranger's key and certificate",
        signed(pair=keys.stranger),
        r"certificate [0-9a-f]{16} is not pinned for this partner",
    )

    def key_name_only(root: etree._Element) -> None:
        info = next(root.iter(f"{DS}KeyInfo"))
        info.remove(info.find(f"{DS}X509Data"))

    add(
        "unpinned-key-name",
        "trust",
        "a stranger's signature naming only its key id",
        _edit(signed(pair=keys.stranger), key_name_only),
        r"key '[0-9a-f]{16}' is not pinned",
    )
    add(
        "key-mismatch",
        "trust",
        "a stranger's signature carrying the bank's certificate",
        _swap_certificate(signed(pair=keys.stranger), keys.bank),
        r"signature value does not match the pinned key",
    )
    add(
        "another-partners-key",
        "trust",
        "a file signed with another partner's key",
        signed(pair=keys.expired),
        r"is not pinned for this partner",
    )
    add(
        "expired-certificate",
        "trust",
        "the pinned certificate expired before the file",
        signed(pair=keys.expired),
        r"certificate [0-9a-f]{16} is expired at receipt",
        partner="bank-old",
    )
    add(
        "not-yet-valid",
        "trust",
        "a file signed by a certificate whose pin window has not opened",
        signed(),
        r"is not yet valid at receipt",
        partner="bank-next",
    )
    add(
        "outside-pin-window",
        "trust",
        "a file after the pin's not_after (the next cert took over)",
        signed(),
        r"is expired at receipt .* UTC \(trusted 2024-01-01 00:00 to 2026-06-30 00:00 UTC\)",
        partner="bank-window",
    )
    add(
        "weak-rsa-key",
        "trust",
        "an RSA-1024 certificate, even though pinned",
        signed(pair=keys.weak),
        r"RSA key of 1024 bits is refused",
        partner="bank-weak",
    )
    add(
        "detached-for-enveloped",
        "trust",
        "a detached signature for an enveloped partner",
        to_bytes(notification(next(counter))),
        r"this partner signs enveloped",
        signature=b"<x/>",
    )

    # --- Detached signatures ---------------------------------------------------------------------
    plain = to_bytes(notification(next(counter)))
    add(
        "detached-missing",
        "detached",
        "a file without its .sig",
        plain,
        r"no detached signature",
        partner="bank-d",
    )
    body = to_bytes(notification(next(counter)))
    add(
        "detached-tampered",
        "detached",
        "the file changed after its .sig was made",
        body.replace(b">540000<", b">940000<", 1),
        r"digest mismatch",
        partner="bank-d",
        signature=sign_detached(body, "SEC.xml", keys.bank),
    )
    body = to_bytes(notification(next(counter)))
    add(
        "detached-file-uri",
        "detached",
        "a .sig whose reference is file:///etc/passwd",
        body,
        r"reference 'file:///etc/passwd' must name the file",
        partner="bank-d",
        signature=sign_detached(body, "SEC.xml", keys.bank).replace(
            b'URI="SEC.xml"', b'URI="file:///etc/passwd"'
        ),
    )
    body = to_bytes(notification(next(counter)))
    add(
        "detached-other-signer",
        "detached",
        "a .sig made with a stranger's key",
        body,
        r"is not pinned for this partner",
        partner="bank-d",
        signature=sign_detached(body, "SEC.xml", keys.stranger),
    )
    body = to_bytes(notification(next(counter)))
    add(
        "detached-with-doctype",
        "detached",
        "a .sig carrying a DOCTYPE with an entity",
        body,
        doctype,
        partner="bank-d",
        signature=b'<!DOCTYPE s [<!ENTITY x SYSTEM "' + file_uri.encode() + b'">]><s>&x;</s>',
    )
    build_more(add, keys, counter, notification, AT)
    return cases


def _flip_signature_value(root: etree._Element) -> None:
    element = next(root.iter(f"{DS}SignatureValue"))
    raw = bytearray(base64.b64decode("".join((element.text or "").split())))
    raw[10] ^= 0x01
    element.text = base64.b64encode(bytes(raw)).decode()


def _swap_certificate(data: bytes, pinned: KeyPair) -> bytes:
    root = etree.fromstring(data)
    element = next(root.iter(f"{DS}X509Certificate"))
    der = x509.load_pem_x509_certificate(pinned.cert_pem).public_bytes(serialization.Encoding.DER)
    element.text = base64.b64encode(der).decode()
    return to_bytes(root)


def _bizmsg_signed_wrongly(pair: KeyPair, n: int) -> bytes:
    """A BizMsg envelope whose signature sits at the envelope root instead of AppHdr/Sgntr."""
    from tests.interop.envelope import envelope  # noqa: PLC0415

    root = envelope(notification(n), "camt.054.001.08", f"SEC-{n:03d}")
    signed = sign(root, pair)
    tree = etree.fromstring(signed)
    signature = next(tree.iter(f"{DS}Signature"))
    sgntr = signature.getparent()
    tree.append(signature)
    sgntr.getparent().remove(sgntr)
    return to_bytes(tree)


def reason_is(case: Case, reason: str) -> bool:
    """Whether a quarantine reason is the one the case expects."""
    return re.search(case.expect, reason) is not None
