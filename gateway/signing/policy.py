"""Signing and verifying files as each partner's [signature] policy says.

Outbound, `sign_for_partner` signs enveloped (AppHdr/Sgntr in a BizMsg envelope, else at the
document root), detached (a signature document to travel beside the file, in the `signature`
header or as `<file>.sig`) or not at all. Inbound, `verify_for_partner` accepts a file only as the
partner's mode says, only within the partner's structural limits (checked before anything else),
only from a pinned certificate valid when the file is received, only when the creation time the
file states is within the partner's tolerance of that moment, and returns the verified tree
without its signature: nothing else of the raw file is read afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.iso20022.apphdr import BIZMSG
from gateway.iso20022.limits import check_limits
from gateway.iso20022.namespaces import BIZMSG_NS, DsigAlgorithm
from gateway.iso20022.xml import file_of, parse_checked, parse_xml, precheck, to_bytes
from gateway.profile.inbound import InboundPolicy
from gateway.profile.signature import SignaturePolicy
from gateway.signing.keys import KeyRing, SigningKey
from gateway.signing.stream import Scanned, scan_enveloped
from gateway.signing.trust import (
    TrustedCertificate,
    check_created,
    check_strength,
    check_time,
    choose,
    message_time,
)
from gateway.signing.xmldsig import (
    APPHDR,
    SIGNATURE,
    SignatureError,
    SignatureShape,
    check_digest,
    check_signed_info,
    check_streamed_digest,
    find_enveloped,
    inspect,
    refuse_hidden_content,
    sign_detached,
    sign_enveloped,
    sign_enveloped_text,
    strip_signature,
)

# Header carrying a detached signature beside a file (AMQP); the files transport writes `.sig`.
SIGNATURE_HEADER = "signature"


@dataclass(frozen=True, slots=True)
class SignedFile:
    """A file ready to send, with its detached signature when the partner wants one."""

    body: bytes
    signature: bytes | None = None
    key_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Message headers to add: the detached signature as a UTF-8 string, if any."""
        return {SIGNATURE_HEADER: self.signature.decode()} if self.signature else {}


@dataclass(frozen=True, slots=True)
class VerifiedFile:
    """The verified message (without signature), its AppHdr if any, and who signed it."""

    document: etree._Element
    header: etree._Element | None = None
    key_id: str | None = None
    # The creation time the message states (None when it states none); trust is judged at
    # receipt, and this only has to lie within the partner's tolerance of it.
    created_at: datetime | None = None


def sign_for_partner(
    root: etree._Element | None,
    ring: KeyRing,
    policy: SignaturePolicy,
    file_name: str,
    at: datetime,
    *,
    check: Callable[[], None] | None = None,
    canonical: bytes | None = None,
) -> SignedFile:
    """Sign a built file as the partner's policy says, with our key active at `at`.

    `check` (the XSD validation) reads the unsigned tree and must pass before anything is
    signed; for an enveloped signature of a tree it runs while the digest is computed.

    `canonical`, when the builder gives it, is the document as the bytes of its exclusive
    canonical form (`gateway.iso20022.pain001.write_pain001`), given instead of `root`: the file
    is made from these bytes, and an enveloped signature digests them, with no tree (`check`
    then parses its own, from the same bytes, so what is validated is what is sent).
    """
    if policy.mode in ("none", "detached"):
        body = file_bytes(root, None, check=check, canonical=canonical)
        if policy.mode == "none":
            return SignedFile(body)
        pair = ring.signing_pair(at)
        return SignedFile(body, sign_detached(body, file_name, pair), pair.key_id)
    pair = ring.signing_pair(at)
    return SignedFile(file_bytes(root, pair, check=check, canonical=canonical), None, pair.key_id)


def file_bytes(
    root: etree._Element | None,
    pair: SigningKey | None,
    *,
    check: Callable[[], None] | None = None,
    canonical: bytes | None = None,
) -> bytes:
    """A built document's file: signed enveloped by `pair`, or as it is when `pair` is None;
    from its canonical text when given (then `root` is None), else from its tree. `check`
    must pass first (beside the digest of a tree, see `sign_enveloped`)."""
    if (root is None) == (canonical is None):
        raise ValueError("a file is made from the document's tree or its canonical text")
    if pair is None:
        if check is not None:
            check()
        return file_of(canonical) if canonical is not None else to_bytes(root)
    if canonical is not None:
        return sign_enveloped_text(canonical, pair, check=check)
    return sign_enveloped(root, pair, alongside=check)


def verify_for_partner(
    raw: bytes,
    policy: SignaturePolicy,
    pinned: Sequence[TrustedCertificate],
    now: datetime,
    detached: bytes | None = None,
    *,
    inbound: InboundPolicy | None = None,
) -> VerifiedFile:
    """Verify one inbound file, received at `now`, as the partner's policy says, or say exactly
    why not. `inbound` holds the partner's limits and creation-time tolerance (defaults if None).
    """
    inbound = inbound or InboundPolicy()
    if policy.mode == "detached":
        if detached is None:
            raise SignatureError(
                "no detached signature: this partner signs detached (a .sig file beside the"
                " XML, or the `signature` header)"
            )
        return _verify_detached(raw, detached, pinned, now, inbound)
    if detached is not None:
        raise SignatureError(
            f"a detached signature came with the file, but this partner signs {policy.mode}"
        )
    if policy.mode == "none":
        root = parse_xml(raw, limits=inbound.limits)
        refuse_hidden_content(root)
        if next(root.iter(SIGNATURE), None) is not None:
            raise SignatureError("the file is signed, but this partner's signature mode is none")
        verified = _unwrap(root, None)
        check_created(verified.created_at, now, inbound.max_age, inbound.max_ahead)
        return verified
    return enveloped_tree(check_enveloped(raw, pinned, now, inbound), now, inbound)


@dataclass(frozen=True, slots=True)
class SignedRaw:
    """A file whose enveloped signature verified, before any tree of it was built."""

    raw: bytes
    key_id: str
    # The root element's (namespace, local name).
    root: tuple[str, str]
    # Where the ds:Signature is in `raw`, in bytes: [start, end).
    span: tuple[int, int]

    def without_signature(self, chunk: int = 1 << 16) -> Iterator[bytes]:
        """The file's bytes without its ds:Signature, in chunks (no copy of the whole)."""
        view = memoryview(self.raw)
        start, end = self.span
        for low, high in ((0, start), (end, len(self.raw))):
            for offset in range(low, high, chunk):
                yield bytes(view[offset : min(offset + chunk, high)])


def check_enveloped(
    raw: bytes, pinned: Sequence[TrustedCertificate], now: datetime, inbound: InboundPolicy
) -> SignedRaw:
    """Verify an enveloped signature in one streaming pass and no tree: the limits, the canonical
    form's digest and the signature, then trust at receipt, the signature value, the digest."""
    precheck(raw, inbound.limits)
    scanned = scan_enveloped(raw, inbound.limits)
    shape = inspect(_placed(scanned), detached=False)
    # Trust is judged at receipt: a pinned certificate out of its window is refused before any
    # cryptography, whatever time the file claims for itself.
    candidates = _trusted_at_receipt(choose(shape, pinned), now)

    def digest() -> None:
        exclusive = DsigAlgorithm.EXC_C14N.value in shape.transforms
        value = scanned.digest if exclusive else _inclusive_digest(raw, inbound)
        check_streamed_digest(shape, value)

    chosen = _check(shape, candidates, digest)
    assert scanned.span is not None  # a placed signature has its span
    return SignedRaw(raw, chosen.key_id, scanned.root, scanned.span)


def enveloped_tree(signed: SignedRaw, now: datetime, inbound: InboundPolicy) -> VerifiedFile:
    """The tree of a file whose signature verified, without its signature, its creation time
    within the partner's tolerance."""
    root = parse_checked(signed.raw)
    refuse_hidden_content(root)
    signature = find_enveloped(root)
    strip_signature(signature)
    verified = _unwrap(root, signed.key_id)
    check_created(verified.created_at, now, inbound.max_age, inbound.max_ahead)
    return verified


def _placed(scanned: Scanned) -> etree._Element:
    """The one ds:Signature the pass found at its agreed place, or why there is none."""
    if not scanned.signatures:
        raise SignatureError("no signature: the document has no ds:Signature")
    if scanned.signatures > 1:
        raise SignatureError(
            f"{scanned.signatures} signatures: exactly one ds:Signature is accepted"
        )
    if scanned.signature is None:
        if scanned.root == (BIZMSG_NS, "BizMsg"):
            raise SignatureError("the ds:Signature must sit in BizMsg/AppHdr/Sgntr")
        raise SignatureError("the ds:Signature must be enveloped directly under the document root")
    return scanned.signature


def _inclusive_digest(raw: bytes, inbound: InboundPolicy) -> bytes:
    """The digest with inclusive C14N (a reference with the enveloped transform alone): a second
    pass, made only once the signature value verified with a pinned key."""
    return scan_enveloped(raw, inbound.limits, exclusive=False).digest


def _verify_detached(
    raw: bytes,
    detached: bytes,
    pinned: Sequence[TrustedCertificate],
    now: datetime,
    inbound: InboundPolicy,
) -> VerifiedFile:
    signature = parse_xml(detached, limits=inbound.limits, max_bytes=1024 * 1024)
    if signature.tag != SIGNATURE:
        raise SignatureError("the detached signature is not a ds:Signature document")
    refuse_hidden_content(signature)
    shape = inspect(signature, detached=True)
    candidates = _trusted_at_receipt(choose(shape, pinned), now)
    # The digest of a detached signature is of the file's bytes: SHA-256 at C speed, the only
    # work on the file before trust. The limits pass (a streaming pass, Python work per element)
    # then runs on the bank's own file, and only then is it parsed into a tree.
    precheck(raw, inbound.limits)
    chosen = _check(shape, candidates, lambda: check_digest(shape, raw))
    check_limits(raw, inbound.limits)
    root = parse_checked(raw)
    refuse_hidden_content(root)
    if next(root.iter(SIGNATURE), None) is not None:
        raise SignatureError("the file holds a ds:Signature, but this partner signs detached")
    verified = _unwrap(root, chosen.key_id)
    check_created(verified.created_at, now, inbound.max_age, inbound.max_ahead)
    return verified


def _trusted_at_receipt(
    candidates: Sequence[TrustedCertificate], now: datetime
) -> list[TrustedCertificate]:
    """The candidates trusted at `now`, the moment of receipt; when none is, the first one's
    reason (expired, not yet valid) is raised."""
    trusted_now = []
    failure: SignatureError | None = None
    for candidate in candidates:
        try:
            check_time(candidate, now)
        except SignatureError as exc:
            failure = failure or exc
            continue
        trusted_now.append(candidate)
    if not trusted_now and failure is not None:
        raise failure
    return trusted_now


def _check(
    shape: SignatureShape, candidates: Sequence[TrustedCertificate], digest: Callable[[], None]
) -> TrustedCertificate:
    """Check the value with each candidate certificate (pinned, and trusted at receipt)."""
    failure: SignatureError | None = None
    for candidate in candidates:
        try:
            check_strength(candidate.cert_pem, shape.method)
            check_signed_info(shape, candidate.cert_pem)
        except SignatureError as exc:
            failure = failure or exc
            continue
        # The one expensive step, done once, after the signer is known.
        digest()
        return candidate
    assert failure is not None
    raise failure


def _unwrap(root: etree._Element, key_id: str | None) -> VerifiedFile:
    """The business message, out of its BizMsg envelope when it has one."""
    if root.tag != BIZMSG:
        return VerifiedFile(root, None, key_id, message_time(root, None))
    header = root.find(APPHDR)
    documents = [child for child in root if isinstance(child.tag, str) and child is not header]
    if header is None or len(documents) != 1:
        raise SignatureError("a BizMsg envelope holds one AppHdr and one Document")
    document = copy.deepcopy(documents[0])
    return VerifiedFile(document, header, key_id, message_time(document, header))


def sign(
    root: etree._Element, pair: SigningKey, *, check: Callable[[], None] | None = None
) -> bytes:
    """Sign a whole document, enveloped at its root (or its AppHdr), and serialise it; `check`,
    if given, must pass first (it runs while the digest is computed, see `sign_enveloped`)."""
    return sign_enveloped(root, pair, alongside=check)
