"""Plain canonical layout: the files whose canonical form is their own bytes, checked and
digested at C speed before any signature is trusted.

A bank's signed file is most often written the way C14N writes it: one `<?xml?>` declaration,
then the root; below the root, no namespace declaration (but a default one on the root's children,
as in a BizMsg envelope), no prefix, no comment, CDATA or processing instruction, no empty-element
tag, no carriage return, attributes double-quoted in canonical order, `&` only as `&amp;`, `&lt;`
or `&gt;`. For such a file the exclusive (or inclusive) canonical form of the document without its
ds:Signature is, byte for byte, the canonical form of the root's start tag followed by the raw
bytes up to the root's end tag with the signature cut out: its digest is SHA-256 over two slices.

`plain_layout` decides whether a file is in that layout and, on the way, enforces the partner's
structural limits (elements, depth, attributes, text and attribute lengths) with numpy over the
raw bytes, chunk by chunk (a few tens of megabytes at most), refusing by the limit's name as the
streaming pass does. Python looks only at what numpy cannot judge: each distinct start tag with
attributes (at most `MAX_DISTINCT_TAGS`), the few texts or tags longer than a limit in bytes
(there can only be size / limit of them), and the signature's own span.

Well-formedness is not checked here and need not be: the digest is taken over the raw bytes, so it
equals the DigestValue the pinned key signed only when those bytes are the bank's own canonical
form, which is well-formed. A malformed file in this layout is refused by the digest, within the
same bound; a file whose signature verified is then read by a full XML parser. A file that is not
in plain layout says why, and is read by the general streaming pass (`limits.check_limits`) only
when it holds at most `max_nodes_general` elements and attributes and `max_bytes_general`
bytes (`check_general_bound`).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from gateway.iso20022.limits import (
    CHUNK,
    MAX_MARKUP,
    MAX_NAME,
    InboundLimits,
    LimitExceeded,
    count_elements,
    refuse_by_count,
)

# Distinct start tags with attributes a plain file may hold: a genuine report repeats a handful
# (`<Amt Ccy="VND">`); each is checked once in Python.
MAX_DISTINCT_TAGS = 4096
# Start tags with attributes looked at one by one in Python (about 0.3 us each), once a chunk holds
# some that are not among the first `_HOT` distinct ones (which are counted at C speed).
MAX_TAGS_LOOKED_AT = 1_000_000
_HOT = 8
# Tags naming `Signature` (any prefix) looked at, and default namespace declarations below the
# root (BizMsg's AppHdr and Document): more is nothing a bank sends in this layout.
_MAX_SIGNATURE_WORDS = 256
_MAX_DECLARING = 16

_DECLARATION = re.compile(
    rb"<\?xml version=([\"'])1\.0\1(?: encoding=([\"'])(?:UTF-8|utf-8)\2)?\?>"
)
_SPACE = re.compile(rb"[ \t\n]*")
_ROOT_NAME = re.compile(rb"<([^\s\"'=<>/:!?&]+)[ \t\n>]")
_TAG = re.compile(rb"<([^\s\"'=<>/:&]+)((?: [^\s\"'=<>/:&]+=\"[^\"<>\t\n\r]*\")+)>\Z")
_ATTRIBUTE = re.compile(rb" ([^=]+)=\"([^\"]*)\"")
_SIGNATURE_TAG = re.compile(rb"<(?:[^\s\"'=<>/:!?&]+:)?\Z")

# Bytes that make a tag more than `<name>` or `</name>` (spaces, quotes, `=`, a prefix, `/`, `&`),
# and the control characters XML does not allow.
_SPECIAL, _CONTROL = 1, 2
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[[byte for byte in range(32) if byte not in (9, 10)]] = _CONTROL
_CLASS[list(b" \t\n\"'=:/&")] = _SPECIAL
_SPECIAL_TABLE = bytes((_CLASS == _SPECIAL).astype(np.uint8).tolist())

_Array = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Plain:
    """Where the parts of a file in plain layout are, in bytes."""

    # The root's start tag: [start, end).
    root: tuple[int, int]
    # Where the root's end tag starts, and where it ends.
    close: int
    end: int
    # The one element named Signature (any prefix) and its ancestors' start tags below the root.
    signature: tuple[int, int] | None
    ancestors: tuple[tuple[int, int], ...]
    # Elements outside the signature, the root included.
    elements: int

    def body(self) -> list[tuple[int, int]]:
        """The slices after the root's start tag, its end tag included, without the signature."""
        low = self.root[1]
        if self.signature is None:
            return [(low, self.end)]
        return [(low, self.signature[0]), (self.signature[1], self.end)]


class NotPlain(Exception):  # noqa: N818 - a verdict, not a fault
    """Why a file is not in plain layout (the general pass reads it)."""


def plain_layout(data: bytes, limits: InboundLimits) -> Plain | str:
    """The file's plain layout, or why it is not in it; LimitExceeded when a limit is broken
    in the part already seen."""
    try:
        return _Scan(data, limits).run()
    except NotPlain as exc:
        return str(exc)


def check_general_bound(data: bytes, limits: InboundLimits, why: str) -> None:
    """Refuse, at C speed, a file not in plain layout that is too large for the general pass.

    Its elements are counted as `<` not followed by `/` (exact without comments, CDATA sections
    and processing instructions, an upper bound with them), its attributes and namespace
    declarations as `=` (an upper bound)."""
    elements, exact = count_elements(data)
    if exact:
        refuse_by_count(elements, limits)
    if len(data) > limits.max_bytes_general:
        raise LimitExceeded(
            f"a file of {len(data)} bytes not in plain canonical layout ({why}); such a file"
            f" is read only up to {limits.max_bytes_general} bytes (limit max_bytes_general)"
        )
    nodes = elements + data.count(b"=")
    if nodes > limits.max_nodes_general:
        raise LimitExceeded(
            f"up to {nodes} elements and attributes in a file not in plain canonical layout"
            f" ({why}); such a file is read only up to {limits.max_nodes_general}"
            " (limit max_nodes_general)"
        )


class _Scan:
    """One pass over a file's bytes (see the module's text)."""

    def __init__(self, data: bytes, limits: InboundLimits) -> None:
        self.data = data
        self.limits = limits
        self.depth = 1
        self.elements = 1
        # The last `>` seen (text runs from just after it to the next `<`).
        self.previous = 0
        # The last start tag at depths 2 and 3 (a signature's ancestors).
        self.last_start: dict[int, int] = {}
        # The start tags with attributes judged canonical, and the first few of them, counted.
        self.known: set[bytes] = set()
        self.hot: list[bytes] = []
        self.looked_at = 0
        self.declaring = 0
        self.root_default = b""

    def run(self) -> Plain:
        data = self.data
        head = _DECLARATION.match(data)
        if b"\r" in data:
            raise NotPlain("a carriage return")
        spaces = _SPACE.match(data, head.end() if head else 0)
        assert spaces is not None  # it matches the empty string
        opening = spaces.end()
        name_match = _ROOT_NAME.match(data, opening)
        if name_match is None:
            raise NotPlain("the root's start tag is not plain (a prefix, or no root)")
        root_end = data.find(b">", opening) + 1
        if root_end == 0 or data[root_end - 2 : root_end] == b"/>":
            raise NotPlain("an empty root element")
        self.root_default = _default_namespace(data[opening:root_end])
        closing = b"</" + name_match.group(1) + b">"
        tail = data[-(len(closing) + 64) :]
        stripped = tail.rstrip(b" \t\n")
        if not stripped.endswith(closing) or len(data) - root_end < len(closing):
            raise NotPlain("not only the root's end tag and a few spaces after the root")
        end = len(data) - (len(tail) - len(stripped))
        close = end - len(closing)
        self.previous = root_end - 1
        signature = self._signature(root_end, close)
        ancestors: tuple[tuple[int, int], ...] = ()
        if signature is None:
            self._region(root_end, close, last=True)
        else:
            self._region(root_end, signature[0], last=True, track=True)
            depth = self.depth + 1
            if not 2 <= depth <= 4:
                raise NotPlain(f"a Signature element at depth {depth}")
            ancestors = tuple(
                (start, data.index(b">", start) + 1)
                for start in (self.last_start[level] for level in range(2, depth))
            )
            low, high = signature
            self.elements += data.count(b"<", low, high) - data.count(b"</", low, high)
            self.previous = high - 1
            self._region(high, close, last=True)
        if self.depth != 1:
            raise NotPlain("unbalanced tags")
        return Plain((opening, root_end), close, end, signature, ancestors, self.elements)

    def _signature(self, low: int, high: int) -> tuple[int, int] | None:
        """The one start tag whose local name is Signature, to its end tag."""
        data, found, position = self.data, [], low
        for _ in range(_MAX_SIGNATURE_WORDS):
            position = data.find(b"Signature", position, high)
            if position < 0:
                break
            if (
                data[position + 9 : position + 10] in (b" ", b"\n", b"\t", b">")
                and _SIGNATURE_TAG.search(data, max(low, position - MAX_NAME - 2), position)
                is not None
            ):
                found.append(data.rindex(b"<", low, position))
            position += 9
        else:
            raise NotPlain(f"the word Signature more than {_MAX_SIGNATURE_WORDS} times")
        if not found:
            return None
        if len(found) > 1:
            raise NotPlain("more than one Signature element")
        start = found[0]
        name = data[start + 1 : data.index(b"Signature", start) + 9]
        end = data.find(b"</" + name + b">", start, high)
        if end < 0:
            raise NotPlain("a Signature element without its end tag")
        return start, end + len(name) + 3

    def _region(self, low: int, high: int, *, last: bool, track: bool = False) -> None:
        """Check [low, high): markup between the root's tags, outside the signature."""
        data = self.data
        ampersands = data.count(b"&", low, high)
        if ampersands and ampersands != (
            data.count(b"&amp;", low, high)
            + data.count(b"&lt;", low, high)
            + data.count(b"&gt;", low, high)
        ):
            raise NotPlain("a character or entity reference C14N writes otherwise")
        offset = low
        while offset < high:
            if offset + 2 * CHUNK >= high:
                stop = high
            else:
                stop = data.find(b">", offset + CHUNK, offset + 2 * CHUNK) + 1
                if not stop:
                    self._long_run(offset, track)
            self._chunk(offset, stop, track)
            offset = stop
        if last:
            reason = self._text(self.previous + 1, high)
            if reason:
                line = data.count(b"\n", 0, self.previous + 1) + 1
                raise LimitExceeded(f"line {line}: {reason}")

    def _long_run(self, offset: int, track: bool) -> NoReturn:
        """A megabyte without `>` after `offset + CHUNK`: a text over max_text (every character
        is at most 4 bytes), or something the general pass refuses by name."""
        data, middle = self.data, offset + CHUNK
        last = data.rfind(b">", offset, middle) + 1 or offset
        in_text = data.find(b"<", last, offset + 2 * CHUNK) < 0
        if not in_text or self.limits.max_text >= CHUNK // 4:
            raise NotPlain(f"more than {CHUNK} bytes without markup")
        if last > offset:
            self._chunk(offset, last, track)
        line = data.count(b"\n", 0, last) + 1
        raise LimitExceeded(
            f"line {line}: a text of more than {self.limits.max_text} characters (limit max_text)"
        )

    def _chunk(self, low: int, high: int, track: bool) -> None:  # noqa: PLR0912, PLR0915
        """One chunk, from just after a `>` to just after a `>` (or the region's end)."""
        data, limits = self.data, self.limits
        raw = np.frombuffer(data, dtype=np.uint8, count=high - low, offset=low)
        if (raw < 32).any() and (_CLASS[raw] == _CONTROL).any():
            raise NotPlain("a control character")
        try:
            codecs.utf_8_decode(memoryview(data)[low:high], None, True)
        except UnicodeDecodeError:
            raise NotPlain("bytes that are not UTF-8") from None
        # Every `<` and `>`, which alternate in a plain file: `<` at even places, `>` at odd ones.
        brackets: _Array = np.flatnonzero((raw == 60) | (raw == 62))
        if not len(brackets):
            return
        opens, closes = brackets[0::2], brackets[1::2]
        if len(opens) != len(closes) or not (
            (raw[opens] == 60).all() and (raw[closes] == 62).all()
        ):
            raise NotPlain("a '>' outside markup (C14N writes &gt;)")
        if int((closes - opens).max()) > MAX_MARKUP:
            raise NotPlain(f"a tag longer than {MAX_MARKUP} bytes")
        following = raw[opens + 1]
        if ((following == 33) | (following == 63)).any():
            raise NotPlain("a comment, CDATA section, DOCTYPE or processing instruction")
        if (raw[closes - 1] == 47).any():
            raise NotPlain("an empty-element tag (C14N writes a start and an end tag)")
        ending = following == 47
        after = self.depth + np.cumsum(1 - 2 * ending.view(np.int8), dtype=np.int64)
        if int(after.min()) < 1:
            raise NotPlain("unbalanced tags")
        starting = ~ending
        depths = after + ending
        # Special bytes (see `_CLASS`) inside each tag, `<` included: the `/` of an end tag is one.
        special = np.frombuffer(data[low:high].translate(_SPECIAL_TABLE), dtype=np.uint8)
        counted = np.cumsum(special, dtype=np.int32)[brackets]
        inside = counted[1::2] - counted[0::2] - ending
        marked = inside > 0
        if (marked & ending).any():
            raise NotPlain("an end tag with a prefix or spaces")
        # (offset, order, reason): the first limit broken in document order.
        broken: list[tuple[int, int, str]] = []
        starts = np.flatnonzero(starting)
        if self.elements + len(starts) > limits.max_elements:
            at = int(opens[starts[limits.max_elements - self.elements]])
            broken.append((at, 0, f"more than {limits.max_elements} elements (limit max_elements)"))
        deep = np.flatnonzero(starting & (depths > limits.max_depth))
        if len(deep):
            broken.append(
                (
                    int(opens[deep[0]]),
                    1,
                    f"elements nested deeper than {limits.max_depth} (limit max_depth)",
                )
            )
        long_names = np.flatnonzero(starting & ~marked & (closes - opens - 1 > MAX_NAME))
        for index in long_names.tolist():
            start = low + int(opens[index])
            name = _decoded(data[start + 1 : low + int(closes[index])])
            if len(name) > MAX_NAME:
                reason = f"an element name of {len(name)} characters; the limit is {MAX_NAME}"
                broken.append((start - low, 2, reason))
                break
        self._attributed(low, opens, closes, np.flatnonzero(marked), depths, broken)
        previous = np.concatenate(([self.previous - low], closes[:-1]))
        texts = np.flatnonzero(opens - previous - 1 > limits.max_text)
        for index in texts.tolist():
            text = self._text(low + int(previous[index]) + 1, low + int(opens[index]))
            if text:
                broken.append((int(previous[index]) + 1, 0, text))
                break
        if broken:
            at, _, reason = min(broken)
            line = data.count(b"\n", 0, low + at) + 1
            raise LimitExceeded(f"line {line}: {reason}")
        if track:
            for level in (2, 3):
                opened = np.flatnonzero(starting & (depths == level))
                if len(opened):
                    self.last_start[level] = low + int(opens[opened[-1]])
        self.depth = int(after[-1])
        self.elements += len(starts)
        self.previous = low + int(closes[-1])

    def _attributed(
        self,
        low: int,
        opens: _Array,
        closes: _Array,
        marked: _Array,
        depths: _Array,
        broken: list[tuple[int, int, str]],
    ) -> None:
        """Each distinct start tag with attributes judged once (`_judge`)."""
        if not len(marked):
            return
        data, known, hot = self.data, self.known, self.hot
        high = low + int(closes[-1]) + 1
        # The common case, a genuine file repeating a few tags: counted at C speed (a tag's bytes
        # occur only as that tag, markup having no `<` inside).
        if hot and sum(data.count(tag, low, high) for tag in hot) == len(marked):
            return self._declarations(low, high, opens, closes, depths)
        self.looked_at += len(marked)
        if self.looked_at > MAX_TAGS_LOOKED_AT:
            raise NotPlain(
                f"more than {MAX_TAGS_LOOKED_AT} start tags with attributes of more than"
                f" {len(hot)} kinds"
            )
        firsts = (opens[marked] + low).tolist()
        lasts = (closes[marked] + low + 1).tolist()
        for tag in set(map(data.__getitem__, map(slice, firsts, lasts))):
            if tag in known:
                continue
            if len(known) >= MAX_DISTINCT_TAGS:
                raise NotPlain(f"more than {MAX_DISTINCT_TAGS} distinct start tags with attributes")
            verdict = _judge(tag, self.limits, self.root_default)
            if verdict is not None:
                order, reason = verdict
                broken.append((data.find(tag, low) - low, order, reason))
                continue
            known.add(tag)
            if len(hot) < _HOT:
                hot.append(tag)
        self._declarations(low, high, opens, closes, depths)

    def _declarations(
        self, low: int, high: int, opens: _Array, closes: _Array, depths: _Array
    ) -> None:
        """Default namespace declarations only on the root's children."""
        data = self.data
        position = data.find(b' xmlns="', low, high)
        while position >= 0:
            self.declaring += 1
            if self.declaring > _MAX_DECLARING:
                raise NotPlain(f"more than {_MAX_DECLARING} namespace declarations")
            index = int(np.searchsorted(opens, position - low)) - 1
            start = low + int(opens[index])
            inside = index >= 0 and position < low + int(closes[index])
            if inside and b" " not in data[start:position] and int(depths[index]) != 2:
                raise NotPlain("a namespace declaration below the root's children")
            position = data.find(b' xmlns="', position + 8, high)

    def _text(self, low: int, high: int) -> str | None:
        """A limit refusal if the text [low, high) is longer than max_text in characters."""
        if high - low <= self.limits.max_text:
            return None
        data = self.data
        characters = (
            len(_decoded(data[low:high]))
            - 4 * data.count(b"&amp;", low, high)
            - 3 * (data.count(b"&lt;", low, high) + data.count(b"&gt;", low, high))
        )
        if characters <= self.limits.max_text:
            return None
        return f"a text of more than {self.limits.max_text} characters (limit max_text)"


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotPlain("bytes that are not UTF-8") from None


def _default_namespace(tag: bytes) -> bytes:
    match = re.search(rb"[ \t\n]xmlns[ \t\n]*=[ \t\n]*([\"'])(.*?)\1", tag)
    return match.group(2) if match else b""


def _judge(tag: bytes, limits: InboundLimits, root_default: bytes) -> tuple[int, str] | None:
    """A start tag with attributes: None when canonical and within the limits; a limit's reason
    (with its order among an element's limits); NotPlain when C14N would write it otherwise."""
    match = _TAG.match(tag)
    if match is None:
        raise NotPlain(
            "a start tag not as C14N writes it (attributes double-quoted, one space apart,"
            " no prefix, no tab or newline)"
        )
    name = _decoded(match.group(1))
    if len(name) > MAX_NAME:
        return 2, f"an element name of {len(name)} characters; the limit is {MAX_NAME}"
    pairs = _ATTRIBUTE.findall(match.group(2))
    if len(pairs) > limits.max_attributes:
        return 3, (
            f"<{name}> has {len(pairs)} attributes; the limit is {limits.max_attributes}"
            " (limit max_attributes)"
        )
    keys = [key for key, _ in pairs]
    if keys[0] == b"xmlns":
        if pairs[0][1] in (b"", root_default) or b"&" in pairs[0][1]:
            raise NotPlain("a namespace declaration C14N leaves out or writes otherwise")
        keys = keys[1:]
    if b"xmlns" in keys or keys != sorted(set(keys)):
        raise NotPlain("attributes not in canonical order")
    for key, value in pairs:
        if len(key) > MAX_NAME:
            return 4, f"an attribute name of {len(key)} characters"
        references = value.count(b"&")
        amp, lt = value.count(b"&amp;"), value.count(b"&lt;")
        if references != amp + lt:
            raise NotPlain("an attribute value with a reference C14N writes otherwise")
        size = len(_decoded(value)) - 4 * amp - 3 * lt
        if size > limits.max_attribute_length:
            return 4, (
                f"attribute {key.decode()} of <{name}> is {size} characters; the limit is"
                f" {limits.max_attribute_length} (limit max_attribute_length)"
            )
    return None
