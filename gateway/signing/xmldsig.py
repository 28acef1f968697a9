"""XMLDSig with the reference C library (libxmlsec1, through python-xmlsec): sign and check.

Signatures are RSA-SHA256 (or ECDSA-SHA256 for P-256 keys), SHA-256 digests, exclusive C14N,
with the key id as KeyName and the certificate in X509Data. Two shapes:

- enveloped: one reference URI="" with the enveloped-signature transform, covering the whole
  document; the ds:Signature sits at the document root, or in AppHdr/Sgntr inside a BizMsg
  envelope;
- detached: a separate ds:Signature document with one reference to the file by name, digesting
  its exact bytes (no transforms).

Before any cryptography, `inspect` refuses, by name, every other algorithm and shape. Checking
takes the signature value over SignedInfo first (libxmlsec1, the pinned key), then the digest
once: inbound, the one the limits pass computed before any tree (`gateway.signing.stream`,
compared by `check_streamed_digest`); else libxml2's canonical form of a tree through lxml
(`check_digest`). The
library reads no file and opens no connection: its input callbacks serve only the one document a
detached signature is being made for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.apphdr import BIZMSG
from gateway.iso20022.namespaces import DSIG_NS, DsigAlgorithm, MessageType
from gateway.iso20022.xml import XML_DECLARATION, to_bytes
from gateway.signing.keys import KeyPair, SigningKey

HEAD_NS = MessageType.HEAD_001_001_02.namespace
XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")

SIGNATURE = f"{{{DSIG_NS}}}Signature"
APPHDR = f"{{{HEAD_NS}}}AppHdr"
SGNTR = f"{{{HEAD_NS}}}Sgntr"
# AppHdr elements that come after Sgntr in head.001.001.02.
_AFTER_SGNTR = (f"{{{HEAD_NS}}}Rltd",)

_C = xmlsec.constants
_SIGNATURE_METHODS = {DsigAlgorithm.RSA_SHA256, DsigAlgorithm.ECDSA_SHA256}
_ENVELOPED_TRANSFORMS = (
    (DsigAlgorithm.ENVELOPED.value,),
    (DsigAlgorithm.ENVELOPED.value, DsigAlgorithm.EXC_C14N.value),
)
_SIGNATURE_CHILDREN = ("SignedInfo", "SignatureValue", "KeyInfo")
# A file name as a detached reference: no scheme, no folder, no fragment.
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class SignatureError(InvalidMessage):
    """A signature that is missing, malformed, made otherwise than agreed, or does not verify."""


def _ds(name: str) -> str:
    return f"{{{DSIG_NS}}}{name}"


# --- The library's input: only the document being checked ----------------------------------------

_served = threading.local()
_callbacks_lock = threading.Lock()
_callbacks_ready = False


def _documents() -> dict[bytes, bytes]:
    documents: dict[bytes, bytes] | None = getattr(_served, "documents", None)
    if documents is None:
        documents = {}
        _served.documents = documents
    return documents


def _ensure_callbacks() -> None:
    """Replace the library's file and network input by one that serves in-memory documents."""
    global _callbacks_ready  # noqa: PLW0603 - the library's callbacks are process-wide
    with _callbacks_lock:
        if _callbacks_ready:
            return
        xmlsec.cleanup_callbacks()
        xmlsec.register_callbacks(
            lambda name: name in _documents(),
            lambda name: io.BytesIO(_documents()[name]),
            lambda handle, buffer: handle.readinto(buffer),
            lambda handle: handle.close(),
        )
        _callbacks_ready = True


@contextmanager
def _serving(name: str | None, data: bytes | None) -> Iterator[None]:
    """Let the library read `data` under `name` (and nothing else) for the duration."""
    _ensure_callbacks()
    if name is None or data is None:
        yield
        return
    documents = _documents()
    documents[name.encode()] = data
    try:
        yield
    finally:
        documents.pop(name.encode(), None)


# --- Signing -------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _signing_key(key_pem: bytes, cert_pem: bytes) -> xmlsec.Key:
    key = xmlsec.Key.from_memory(key_pem, _C.KeyDataFormatPem)
    key.load_cert_from_memory(cert_pem, _C.KeyDataFormatCertPem)
    return key


def _signature_method(pair: SigningKey) -> xmlsec.constants.__Transform:
    """ECDSA-SHA256 for a P-256 key, else RSA-SHA256 (told from the certificate: cheap)."""
    curve = isinstance(pair.certificate.public_key(), ec.EllipticCurvePublicKey)
    return _C.TransformEcdsaSha256 if curve else _C.TransformRsaSha256


def _template(pair: SigningKey, reference_uri: str, enveloped: bool) -> etree._Element:
    method = _signature_method(pair)
    signature = xmlsec.template.create(
        etree.Element("template"), _C.TransformExclC14N, method, ns="ds"
    )
    reference = xmlsec.template.add_reference(signature, _C.TransformSha256, uri=reference_uri)
    if enveloped:
        xmlsec.template.add_transform(reference, _C.TransformEnveloped)
        xmlsec.template.add_transform(reference, _C.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.add_key_name(key_info, pair.key_id)
    xmlsec.template.add_x509_data(key_info)
    return signature


def _context(pair: KeyPair) -> xmlsec.SignatureContext:
    _ensure_callbacks()
    context = xmlsec.SignatureContext()
    context.key = _signing_key(pair.key_pem, pair.cert_pem)
    return context


def _signature_value(pair: SigningKey, canonical: bytes) -> bytes:
    """The signature of canonical SignedInfo: by libxmlsec1 with a key in memory, or by the
    token holding the key (which raises TransientError when it cannot be reached)."""
    if isinstance(pair, KeyPair):
        value: bytes = _context(pair).sign_binary(canonical, _signature_method(pair))
        return value
    return pair.sign(canonical)


def signature_place(root: etree._Element) -> etree._Element:
    """Where an enveloped signature goes: AppHdr/Sgntr in a BizMsg envelope, else the root."""
    if root.tag != BIZMSG:
        return root
    header = root.find(APPHDR)
    if header is None:
        raise SignatureError("the BizMsg envelope has no head.001 AppHdr to hold the signature")
    return header


def sign_enveloped(
    root: etree._Element, pair: SigningKey, *, alongside: Callable[[], None] | None = None
) -> bytes:
    """Sign a whole document (enveloped) and return it serialised; the tree is left unchanged.

    The reference digest is SHA-256 of libxml2's exclusive C14N of the document (through lxml),
    taken before the ds:Signature goes in: exactly what the enveloped-signature transform then
    exclusive C14N yield, since the signature is inserted with no text around it. SignedInfo is
    canonicalised the same way in its final place and signed by libxmlsec1 (`sign_binary`). The
    output is the one `sign_enveloped_by_library` gives (byte for byte with RSA), at a fraction
    of the time and memory: libxmlsec1's enveloped transform builds a node set of the whole tree.

    `alongside`, when given, is a check that only reads the tree (the XSD validation): it runs in
    a second thread while the digest is computed (libxml2 validates without Python's lock), and
    nothing is signed unless it passes. In a BizMsg envelope it runs first, alone: validating a
    part of a tree (the AppHdr, the Document) makes lxml re-point that part's children for the
    while, so no other thread may read the tree then.
    """
    place = _enveloped_place(root)
    if alongside is not None and place is not root:
        alongside()
        alongside = None
    signature = _template(pair, "", enveloped=True)
    # In an envelope the (empty) Sgntr is signed content: only ds:Signature is left out.
    holder = None if place is root else etree.Element(SGNTR)
    if holder is not None:
        after = next((child for child in place if child.tag in _AFTER_SGNTR), None)
        if after is None:
            place.append(holder)
        else:
            after.addprevious(holder)
    try:
        digest = _digest_alongside(
            lambda sink: etree.ElementTree(root).write_c14n(
                sink, exclusive=True, with_comments=False
            ),
            alongside,
        )
        (root if holder is None else holder).append(signature)
        _complete(signature, pair, digest)
        return _serialised(root)
    except xmlsec.Error as exc:
        raise SignatureError(f"signing failed: {exc}") from None
    finally:
        inserted = signature if holder is None else holder
        if inserted.getparent() is not None:
            place.remove(inserted)


def sign_enveloped_text(
    canonical: bytes, pair: SigningKey, *, check: Callable[[], None] | None = None
) -> bytes:
    """Sign, enveloped at its root, a document given as the bytes of its exclusive canonical form
    (as `gateway.iso20022.pain001.write_pain001` writes it); return the signed file.

    The reference digest is SHA-256 of these bytes: what the enveloped-signature transform then
    exclusive C14N yield from the signed file, since ds:Signature goes in as the root's last child
    with no text around it. SignedInfo is canonicalised standing alone, which exclusive C14N
    allows (it writes a namespace where it is used and inherits no xml: attribute). The file is
    the XML declaration, the bytes, and ds:Signature before the root's end tag: what
    `sign_enveloped` writes from the tree parsed from the same bytes (but for character
    references, see `gateway.iso20022.xml.file_of`), without a pass over a tree.

    `check` (the tree parsed from the bytes, XSD-validated) runs first, in this thread (where
    the tree's memory is reused best; the digest alone takes a few hundredths of a second at
    100,000 transactions), and nothing is signed unless it passes.
    """
    end = canonical.rfind(b"</")
    if not canonical.startswith(b"<") or end <= 0 or not canonical.endswith(b">"):
        raise SignatureError("the text to sign is not a document ending with its root's end tag")
    if check is not None:
        check()
    digest = hashlib.sha256(canonical).digest()
    signature = _template(pair, "", enveloped=True)
    try:
        _complete(signature, pair, digest)
    except xmlsec.Error as exc:
        raise SignatureError(f"signing failed: {exc}") from None
    text = memoryview(canonical)
    return b"".join((XML_DECLARATION, text[:end], etree.tostring(signature), text[end:]))


def _complete(signature: etree._Element, pair: SigningKey, digest: bytes) -> None:
    """Fill a signature template: the reference's digest, our certificate, and the signature
    value over SignedInfo canonicalised (exclusive C14N) where the template stands."""
    _child(signature, "SignedInfo/Reference/DigestValue").text = _base64_text(digest)
    _fill_x509_data(signature, pair.cert_pem)
    canonical = etree.tostring(
        _child(signature, "SignedInfo"), method="c14n", exclusive=True, with_comments=False
    )
    _child(signature, "SignatureValue").text = _base64_text(_signature_value(pair, canonical))


def sign_enveloped_by_library(root: etree._Element, pair: KeyPair) -> bytes:
    """The same enveloped signature made wholly by libxmlsec1 (its enveloped transform included).

    Several times slower on large files; kept as the reference `sign_enveloped` is checked
    against, and for the signing benchmark.
    """
    place = _enveloped_place(root)
    signature = _template(pair, "", enveloped=True)
    holder: etree._Element = signature
    if place is not root:
        holder = etree.Element(SGNTR)
        holder.append(signature)
        after = next((child for child in place if child.tag in _AFTER_SGNTR), None)
        if after is None:
            place.append(holder)
        else:
            after.addprevious(holder)
    else:
        root.append(signature)
    try:
        _context(pair).sign(signature)
        return to_bytes(root)
    except xmlsec.Error as exc:
        raise SignatureError(f"signing failed: {exc}") from None
    finally:
        holder.getparent().remove(holder)


def _enveloped_place(root: etree._Element) -> etree._Element:
    """Where the signature of a document to be signed goes, refusing what cannot be signed."""
    if root.getparent() is not None:
        raise SignatureError("only a whole document can be signed, not an element inside one")
    if root.getprevious() is not None or root.getnext() is not None:
        raise SignatureError(
            "the document has comments or processing instructions outside its root element;"
            " the gateway signs only documents it built"
        )
    if next(root.iter(SIGNATURE), None) is not None:
        raise SignatureError("document is already signed")
    return signature_place(root)


def _digest_alongside(
    write: Callable[[_Digest], object], check: Callable[[], None] | None
) -> bytes:
    """SHA-256 of what `write` puts into the sink (a document's exclusive C14N, without
    comments), with `check` run meanwhile.

    The canonical form is streamed into the hash, never held whole. The check only reads; its
    error, if any, is raised once both are done.
    """
    digest = _Digest()
    if check is None:
        write(digest)
        return digest.value()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xsd-check") as pool:
        checked = pool.submit(check)
        try:
            write(digest)
        finally:
            wait([checked])
    checked.result()
    return digest.value()


class _Digest:
    """A file-like sink hashing what is written to it."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return len(data)

    def value(self) -> bytes:
        return self._hash.digest()


def _child(element: etree._Element, path: str) -> etree._Element:
    """A template's descendant by its ds: path (it is always there).

    Walked by tag rather than with `find`: libxmlsec1 names the nodes it creates outside the
    document's name dictionary, where lxml's path matching does not see them.
    """
    for step in path.split("/"):
        element = next(child for child in element if child.tag == _ds(step))
    return element


def _base64_text(data: bytes) -> str:
    """Base64 in lines of 64 characters, as libxmlsec1 writes digest and signature values."""
    encoded = base64.b64encode(data).decode("ascii")
    return "\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))


@lru_cache(maxsize=16)
def _certificate_text(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return _base64_text(der) + "\n"


def _fill_x509_data(signature: etree._Element, cert_pem: bytes) -> None:
    """Put our certificate in the template's X509Data, as libxmlsec1 does when it signs."""
    holder = _child(signature, "KeyInfo/X509Data")
    holder.text = "\n"
    certificate = etree.SubElement(holder, _ds("X509Certificate"))
    certificate.text = _certificate_text(cert_pem)
    certificate.tail = "\n"


def _serialised(root: etree._Element) -> bytes:
    """`to_bytes`, written through a growing buffer: one copy of the file in memory, not two."""
    out = io.BytesIO()
    etree.ElementTree(root).write(out, xml_declaration=True, encoding="UTF-8")
    return out.getvalue()


def sign_detached(data: bytes, file_name: str, pair: SigningKey) -> bytes:
    """A detached signature document over the exact bytes of the file `file_name`."""
    if not _FILE_NAME.match(file_name):
        raise SignatureError(f"{file_name!r} cannot name a detached reference (a plain file name)")
    template = _template(pair, file_name, enveloped=False)
    signature = etree.fromstring(etree.tostring(template))
    if not isinstance(pair, KeyPair):
        return _sign_detached_in_parts(signature, data, pair)
    with _serving(file_name, data):
        try:
            _context(pair).sign(signature)
        except xmlsec.Error as exc:
            raise SignatureError(f"signing failed: {exc}") from None
    return to_bytes(signature)


def _sign_detached_in_parts(signature: etree._Element, data: bytes, pair: SigningKey) -> bytes:
    """The detached signature libxmlsec1 makes, with SignedInfo alone signed by the key's holder.

    The reference has no transforms, so its digest is SHA-256 of the file's bytes.
    """
    _child(signature, "SignedInfo/Reference/DigestValue").text = _base64_text(
        hashlib.sha256(data).digest()
    )
    _fill_x509_data(signature, pair.cert_pem)
    canonical = etree.tostring(
        _child(signature, "SignedInfo"), method="c14n", exclusive=True, with_comments=False
    )
    _child(signature, "SignatureValue").text = _base64_text(_signature_value(pair, canonical))
    return to_bytes(signature)


# --- Inspecting: the shape, before any cryptography ----------------------------------------------


@dataclass(frozen=True, slots=True)
class SignatureShape:
    """What a signature says of itself, once its shape and algorithms have been accepted."""

    element: etree._Element
    method: DsigAlgorithm
    key_name: str | None
    certificates: tuple[bytes, ...]
    reference_uri: str
    digest_value: bytes
    # The reference's transforms (enveloped-signature, then exclusive C14N or nothing).
    transforms: tuple[str, ...] = ()
    signature_value: bytes = b""


def refuse_hidden_content(root: etree._Element) -> None:
    """Refuse what a signature does not see or a reader sees differently: comments, XInclude."""
    for side, nodes in (
        ("before", root.itersiblings(preceding=True)),
        ("after", root.itersiblings()),
    ):
        for node in nodes:
            if isinstance(node, etree._Comment):
                raise SignatureError(
                    f"comment {side} the document's root element at line {node.sourceline}:"
                    " a signed file carries no comments, anywhere"
                )
    for node in root.iter(etree.Comment):
        parent = node.getparent()
        where = etree.QName(parent).localname if parent is not None else "the document"
        raise SignatureError(
            f"comment inside <{where}> at line {node.sourceline}: a signed file carries no"
            " comments (canonicalisation drops them, so they can split a signed value)"
        )
    for namespace in XINCLUDE_NAMESPACES:
        found = next(root.iter(f"{{{namespace}}}*"), None)
        if found is not None:
            raise SignatureError(f"XInclude element at line {found.sourceline} is refused")


def find_enveloped(root: etree._Element) -> etree._Element:
    """The one ds:Signature of a document, at its agreed place."""
    signatures = list(root.iter(SIGNATURE))
    if not signatures:
        raise SignatureError("no signature: the document has no ds:Signature")
    if len(signatures) > 1:
        raise SignatureError(f"{len(signatures)} signatures: exactly one ds:Signature is accepted")
    signature = signatures[0]
    parent = signature.getparent()
    if root.tag == BIZMSG:
        header = signature_place(root)
        if parent is None or parent.tag != SGNTR or parent.getparent() is not header:
            raise SignatureError("the ds:Signature must sit in BizMsg/AppHdr/Sgntr")
    elif parent is not root:
        raise SignatureError("the ds:Signature must be enveloped directly under the document root")
    return signature


def inspect(signature: etree._Element, *, detached: bool) -> SignatureShape:
    """Accept only the agreed algorithms and one reference, naming anything else."""
    children = [child for child in signature if isinstance(child.tag, str)]
    names = [
        etree.QName(child).localname if etree.QName(child).namespace == DSIG_NS else child.tag
        for child in children
    ]
    expected = [name for name in _SIGNATURE_CHILDREN if name in names]
    if names != expected or names[:2] != list(_SIGNATURE_CHILDREN[:2]):
        extra = sorted(set(names) - set(_SIGNATURE_CHILDREN))
        raise SignatureError(
            "the ds:Signature must hold SignedInfo, SignatureValue and KeyInfo, once each,"
            " in that order" + (f"; it holds {', '.join(extra)}" if extra else "")
        )
    info = children[0]
    _require(info, "CanonicalizationMethod", {DsigAlgorithm.EXC_C14N}, "canonicalisation")
    method = _require(info, "SignatureMethod", _SIGNATURE_METHODS, "signature method")
    references = info.findall(_ds("Reference"))
    if len(references) != 1:
        raise SignatureError(
            f"the signature has {len(references)} references; exactly one is accepted"
        )
    reference = references[0]
    uri = reference.get("URI")
    transforms = tuple(
        t.get("Algorithm") or ""
        for t in reference.iterfind(f"{_ds('Transforms')}/{_ds('Transform')}")
    )
    if detached:
        if uri is None or not _FILE_NAME.match(uri):
            raise SignatureError(
                f"the detached signature's reference {uri!r} must name the file (a plain file name)"
            )
        if transforms:
            raise SignatureError(
                "the detached signature must digest the file's exact bytes (no transforms)"
            )
    else:
        if uri != "":
            raise SignatureError(
                f'the reference is URI={uri!r}; only URI="" (the whole document) is accepted'
            )
        if transforms not in _ENVELOPED_TRANSFORMS:
            raise SignatureError(
                f"transforms {', '.join(transforms) or 'none'} refused: enveloped-signature"
                " then exclusive C14N are expected"
            )
    _require(reference, "DigestMethod", {DsigAlgorithm.SHA256}, "digest")
    key_info = signature.find(_ds("KeyInfo"))
    key_name = key_info.findtext(_ds("KeyName")) if key_info is not None else None
    certificates = tuple(
        _base64(element.text or "", "X509Certificate")
        for element in signature.iterfind(
            f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}"
        )
    )
    return SignatureShape(
        element=signature,
        method=method,
        key_name=key_name.strip() if key_name else None,
        certificates=certificates,
        reference_uri=uri or "",
        digest_value=_base64(reference.findtext(_ds("DigestValue")) or "", "DigestValue"),
        transforms=transforms,
        signature_value=_base64(children[1].text or "", "SignatureValue"),
    )


def _require(
    parent: etree._Element, child: str, allowed: set[DsigAlgorithm], what: str
) -> DsigAlgorithm:
    element = parent.find(_ds(child))
    algorithm = element.get("Algorithm") if element is not None else None
    for candidate in allowed:
        if candidate.value == algorithm:
            if element is not None and len(element) and child == "SignatureMethod":
                raise SignatureError(f"{what} {algorithm!r} must have no parameters")
            return candidate
    names = ", ".join(sorted(a.name for a in allowed))
    raise SignatureError(f"{what} {algorithm!r} is refused; accepted: {names}")


def _base64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except binascii.Error:
        raise SignatureError(f"the signature's {what} is not base64") from None


# --- Checking the value --------------------------------------------------------------------------
#
# Two checks, the cheap one first, neither ever repeated, each failure named at once:
# 1. the signature value over SignedInfo (a few hundred bytes), by libxmlsec1 with the pinned
#    key: a forged or re-keyed signature is refused before the document is read again;
# 2. the reference's digest: SHA-256 of the document without its signature, canonicalised in
#    the limits pass before any tree (gateway.signing.stream; or by libxml2 from a tree, through
#    lxml), compared with DigestValue; a detached signature digests the file's exact bytes.
# This is what libxmlsec1's own verification computes (the streamed canonical form is checked
# byte for byte against libxml2's by the tests), without its enveloped-signature node set over
# the whole tree, and without doing the work twice to word a failure.

_METHODS = {
    DsigAlgorithm.RSA_SHA256: _C.TransformRsaSha256,
    DsigAlgorithm.ECDSA_SHA256: _C.TransformEcdsaSha256,
}


def check_signed_info(shape: SignatureShape, cert_pem: bytes) -> None:
    """Check the signature value over SignedInfo with the given certificate's public key."""
    context = xmlsec.SignatureContext()
    try:
        context.key = _verifying_key(cert_pem)
    except xmlsec.Error as exc:
        raise SignatureError(f"the pinned certificate cannot be used: {exc}") from None
    info = next(child for child in shape.element if child.tag == _ds("SignedInfo"))
    canonical = etree.tostring(info, method="c14n", exclusive=True, with_comments=False)
    try:
        context.verify_binary(canonical, _METHODS[shape.method], shape.signature_value)
    except (xmlsec.Error, SystemError):
        raise SignatureError(
            "signature does not verify: the signature value does not match the pinned key"
            " (another key signed, or SignedInfo was changed)"
        ) from None


def check_digest(shape: SignatureShape, detached_data: bytes | None = None) -> None:
    """Check the reference's digest. For an enveloped signature this takes the ds:Signature out
    of its tree (keeping the text after it), as the enveloped-signature transform does."""
    if detached_data is not None:
        matches = hashlib.sha256(detached_data).digest() == shape.digest_value
    else:
        root = shape.element.getroottree().getroot()
        remove_keeping_tail(shape.element)
        digest = _Digest()
        exclusive = DsigAlgorithm.EXC_C14N.value in shape.transforms
        etree.ElementTree(root).write_c14n(digest, exclusive=exclusive, with_comments=False)
        matches = digest.value() == shape.digest_value
    if not matches:
        raise SignatureError(
            "signature does not verify: digest mismatch (the signed content was changed)"
        )


def check_streamed_digest(shape: SignatureShape, digest: bytes) -> None:
    """Compare the reference's DigestValue with the digest the streaming pass computed (see
    `gateway.signing.stream`): the canonical form of the file without its signature."""
    if digest != shape.digest_value:
        raise SignatureError(
            "signature does not verify: digest mismatch (the signed content was changed)"
        )


def check_value(shape: SignatureShape, cert_pem: bytes, detached_data: bytes | None = None) -> None:
    """Both checks with one certificate (an enveloped signature leaves its tree)."""
    check_signed_info(shape, cert_pem)
    check_digest(shape, detached_data)


@lru_cache(maxsize=64)
def _verifying_key(cert_pem: bytes) -> xmlsec.Key:
    return xmlsec.Key.from_memory(cert_pem, _C.KeyDataFormatCertPem)


def remove_keeping_tail(element: etree._Element) -> None:
    """Remove an element but keep the text that follows it, as the enveloped transform does."""
    parent = element.getparent()
    assert parent is not None
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def strip_signature(signature: etree._Element, holder: etree._Element | None = None) -> None:
    """Remove a verified enveloped signature (and its Sgntr holder) from the tree.

    `holder` is where it was, when `check_digest` has already taken it out.
    """
    parent = signature.getparent() if holder is None else holder
    if parent is None:
        return
    if parent.tag == SGNTR:
        remove_keeping_tail(parent)
    elif signature.getparent() is not None:
        remove_keeping_tail(signature)
