"""The digest of an enveloped signature's content, taken in the limits pass: no tree before trust.

`scan_enveloped` runs the partner's streaming limits pass over the raw file and, on the same
events, writes the file's canonical form (without its ds:Signature, as the enveloped-signature
transform leaves it) into SHA-256, and keeps the ds:Signature itself, canonical and small. The
signature is then inspected and checked against the pinned key, and its DigestValue compared with
the digest, before any tree of the file is built: a file carrying a signature copied from a
genuine bank file costs one linear read, whatever its size.

The signature left out is the first ds:Signature at an agreed place (directly under the root, or
in BizMsg/AppHdr/Sgntr); every ds:Signature is counted, so a second one, or one elsewhere, is
refused by name as before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from gateway.iso20022.c14n import Canonicaliser, escape_text
from gateway.iso20022.limits import InboundLimits, LimitExceeded, check_limits
from gateway.iso20022.namespaces import BIZMSG_NS, DSIG_NS, MessageType
from gateway.iso20022.plain import Plain, check_general_bound, plain_layout
from gateway.iso20022.xml import PARSER
from gateway.signing.xmldsig import SignatureError

HEAD_NS = MessageType.HEAD_001_001_02.namespace
# Where an enveloped signature may sit: its ancestors, from the root.
_IN_ENVELOPE = ((BIZMSG_NS, "BizMsg"), (HEAD_NS, "AppHdr"), (HEAD_NS, "Sgntr"))
# A ds:Signature holds a handful of elements; a larger one is nothing a bank sends.
MAX_SIGNATURE_ELEMENTS = 64


@dataclass(frozen=True, slots=True)
class Scanned:
    """What the pass saw of a file's enveloped signature."""

    # Every ds:Signature in the file, wherever it is.
    signatures: int
    # The root element's (namespace, local name).
    root: tuple[str, str]
    # The signature at the agreed place, parsed from its canonical form; None when none is there.
    signature: etree._Element | None
    # SHA-256 of the file's canonical form without that signature.
    digest: bytes
    # Where that signature is in the file, in bytes: [start, end).
    span: tuple[int, int] | None = None


_DECLARATION = re.compile(
    rb"(?:\xef\xbb\xbf)?<\?xml\s+version\s*=\s*[\"']([^\"']*)[\"']"
    rb"(?:\s+encoding\s*=\s*[\"']([^\"']*)[\"'])?"
)


def refuse_other_encodings(data: bytes) -> None:
    """Refuse a signed file that is not XML 1.0 in UTF-8 (or ASCII).

    The digest is taken from expat's reading of the bytes and the content is then read by
    libxml2: both are strict XML 1.0 parsers, and on UTF-8 (ISO 20022's encoding) they read the
    same characters. Other encodings (each parser's own decoders) and XML 1.1 (other line ends
    and characters) are not left to agree by chance.
    """
    if data[:4].count(0) or data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SignatureError("a signed file is read in UTF-8 only; this one is in UTF-16")
    declared = _DECLARATION.match(data)
    if declared is None:
        return
    version = declared.group(1).decode("ascii", "replace")
    encoding = (declared.group(2) or b"utf-8").decode("ascii", "replace")
    if version != "1.0":
        raise SignatureError(f"a signed file is XML 1.0; this one declares version {version!r}")
    if encoding.lower() not in ("utf-8", "utf8", "us-ascii"):
        raise SignatureError(
            f"a signed file is read in UTF-8 only; this one declares encoding {encoding[:40]!r}"
        )


class _Enveloped:
    """The pass's observer: canonical form into a hash, the signature kept aside."""

    # The root is always seen; below it, only these (unprefixed) names and elements with a
    # prefix or attributes: what may be or hold a signature.
    watched = frozenset(name for _, name in (*_IN_ENVELOPE, (DSIG_NS, "Signature")))

    def __init__(self, exclusive: bool) -> None:
        self.canon = Canonicaliser(exclusive=exclusive)
        self.pieces = self.canon.pieces
        self.fast = True
        self.signatures = 0
        self.root: tuple[str, str] = ("", "")
        # (depth, (namespace, local name) or None) of the open elements this observer saw.
        self.path: list[tuple[int, tuple[str, str] | None]] = []
        self.capture: Canonicaliser | None = None
        self.captured_elements = 0
        self.inside = 0
        self.kept: bytes | None = None
        self.position: Callable[[], int] = lambda: 0
        self.span = (0, 0)

    def start(self, name: str, attributes: list[str], depth: int) -> None:
        if self.inside:
            self.inside += 1
            self.captured_elements += 1
            if self.captured_elements > MAX_SIGNATURE_ELEMENTS:
                raise SignatureError(
                    f"the ds:Signature holds more than {MAX_SIGNATURE_ELEMENTS} elements"
                )
            if name.endswith("Signature") and self._tag(name, attributes)[0] == DSIG_NS:
                self.signatures += 1
            assert self.capture is not None
            self.capture.start(name, attributes)
            return
        tag = None
        if depth == 1 or name.rpartition(":")[2] in self.watched:
            tag = self._tag(name, attributes)
            if depth == 1:
                self.root = tag
            if tag == (DSIG_NS, "Signature"):
                self.signatures += 1
                if self.kept is None and self.capture is None and self._agreed_place(depth):
                    self.capture = Canonicaliser(scope=dict(self.canon.scope), keep=True)
                    self.capture.start(name, attributes)
                    self.inside = 1
                    self.fast = False
                    self.span = (self.position(), 0)
                    return
        self.path.append((depth, tag))
        self.canon.start(name, attributes)
        self.fast = self.canon.fast

    def end(self, name: str) -> None:
        if self.inside:
            assert self.capture is not None
            self.capture.end(name)
            self.inside -= 1
            if not self.inside:
                self.kept = self.capture.kept()
                self.fast = self.canon.fast
                self.span = (self.span[0], self.position())
            return
        self.path.pop()
        self.canon.end(name)
        self.fast = self.canon.fast

    def text(self, data: str) -> None:
        if self.inside:
            assert self.capture is not None
            self.capture.text(data)
        else:
            self.canon.text(data)

    def flush(self) -> None:
        self.canon.flush()

    escape = staticmethod(escape_text)

    def _tag(self, name: str, attributes: list[str]) -> tuple[str, str]:
        """An element's (namespace, local name), its own declarations included."""
        prefix, _, local = name.rpartition(":")
        declaration = f"xmlns:{prefix}" if prefix else "xmlns"
        for index in range(0, len(attributes), 2):
            if attributes[index] == declaration:
                return attributes[index + 1], local
        return self.canon.scope.get(prefix, ""), local

    def _agreed_place(self, depth: int) -> bool:
        """Directly under a root other than BizMsg, or in BizMsg/AppHdr/Sgntr."""
        if depth == 2:
            return self.path[-1] == (1, self.root) and self.root != _IN_ENVELOPE[0]
        expected = [(level, tag) for level, tag in enumerate(_IN_ENVELOPE, start=1)]
        return depth == 4 and self.path[-3:] == expected


def scan_enveloped(data: bytes, limits: InboundLimits, *, exclusive: bool = True) -> Scanned:
    """The limits pass over `data`, with its enveloped signature's digest and the signature.

    A file in plain canonical layout is checked and digested at C speed (`scan_plain`); any other
    file by the streaming pass, when it holds few enough elements for it."""
    if len(data) > limits.max_bytes:
        check_limits(data, limits)
    layout = plain_layout(data, limits)
    if isinstance(layout, Plain):
        return scan_plain(data, layout, limits, exclusive=exclusive)
    check_general_bound(data, limits, layout)
    observer = _Enveloped(exclusive)
    check_limits(data, limits, observer)
    refuse_other_encodings(data)
    signature = span = None
    if observer.kept is not None:
        signature = etree.fromstring(observer.kept, PARSER)
        # The end event is at the end tag's `<` (or, for an empty element, at its start tag).
        start, last = observer.span
        span = (start, data.index(b">", last) + 1)
    digest = observer.canon.digest()
    return Scanned(observer.signatures, observer.root, signature, digest, span)


def scan_plain(data: bytes, layout: Plain, limits: InboundLimits, *, exclusive: bool) -> Scanned:
    """The pass's result for a file in plain layout, its limits already checked outside the
    signature: the root's start tag, the signature's ancestors and the signature itself go through
    the streaming pass as a small document of their own (so the signature is counted, placed and
    canonicalised exactly as in a full pass); the digest is SHA-256 of the root's canonical start
    tag and the raw bytes after it, the signature cut out."""
    refuse_other_encodings(data)
    root_low, root_high = layout.root
    root_tag = data[root_low:root_high]
    name = root_tag[1:].split(maxsplit=1)[0].rstrip(b">")
    closing = b"</" + name + b">"
    head = Canonicaliser(exclusive=exclusive, keep=True)
    _small_pass(data, root_tag + closing, limits, head, [(root_low, 1)])
    canonical_root = head.kept()[: -len(closing)]
    observer = _Enveloped(exclusive)
    span = layout.signature
    if span is not None:
        tags = [data[low:high] for low, high in layout.ancestors]
        names = [tag[1:].split(maxsplit=1)[0].rstrip(b">") for tag in tags]
        small = b"".join(
            (
                root_tag,
                *tags,
                data[span[0] : span[1]],
                *(b"</" + tag_name + b">" for tag_name in reversed(names)),
                closing,
            )
        )
        # Where each piece starts in the file, and on which line of the small document.
        starts = [root_low, *(low for low, _ in layout.ancestors), span[0]]
        before = [root_tag, *tags]
        mapping = [
            (start, 1 + b"".join(before[:index]).count(b"\n")) for index, start in enumerate(starts)
        ]
        _small_pass(data, small, limits, observer, mapping)
    else:
        _small_pass(data, root_tag + closing, limits, observer, [(root_low, 1)])
    digest = hashlib.sha256(canonical_root)
    view = memoryview(data)
    for low, high in layout.body():
        digest.update(view[low:high])
    signature = None
    if observer.kept is not None:
        signature = etree.fromstring(observer.kept, PARSER)
    return Scanned(
        observer.signatures,
        observer.root,
        signature,
        digest.digest(),
        span if observer.kept is not None else None,
    )


def _small_pass(
    data: bytes,
    small: bytes,
    limits: InboundLimits,
    observer: _Enveloped | Canonicaliser,
    mapping: list[tuple[int, int]],
) -> None:
    """The streaming pass over a small document cut from `data`; a limit's line is the file's
    (`mapping`: where each piece starts in the file, and on which line of the small document)."""
    try:
        check_limits(small, limits, observer)
    except LimitExceeded as exc:
        match = re.match(r"line (\d+): ", str(exc))
        if match is None:
            raise
        line = int(match.group(1))
        offset, first = max((piece for piece in mapping if piece[1] <= line), key=lambda p: p[1])
        real = data.count(b"\n", 0, offset) + 1 + line - first
        raise LimitExceeded(f"line {real}: {str(exc)[match.end() :]}") from None
