"""Cheap limits first: one streaming pass over an inbound file before any tree, canonical form or
signature work, refusing it by the name of the first limit it breaks.

The pass runs expat over the bytes with a handful of counters (constant memory, no tree), so a
file built to be expensive (40,000 attributes on one element, 2,000 nested levels, millions of
empty elements, a 10 MB text) costs one linear read and is refused at the first element over a
limit. Each partner has its own limits (`[inbound]` in its profile); the defaults admit a
100,000-transaction camt.054 (about 80 MB and 3.6 million elements).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol
from xml.parsers import expat

import numpy as np

from gateway.errors import InvalidMessage

MIB = 1024 * 1024
# A name (element or attribute) longer than this is nothing any ISO 20022 schema defines.
MAX_NAME = 256
# The longest single piece of markup (a start tag with its attributes, a comment): the pass feeds
# the parser in chunks and refuses a token still open this far back, so that no tag is ever
# buffered whole (one 100 MB tag of attributes would cost gigabytes before any handler ran).
MAX_MARKUP = 1024 * 1024
_CHUNK = 1 << 16
# Bytes looked at per numpy step (`count_elements`, `gateway.iso20022.plain`): the chunk's arrays,
# a few bytes to a few tens of bytes per byte of data at worst, stay within a few tens of MB.
CHUNK = 1 << 20


class LimitExceeded(InvalidMessage):
    """An inbound file over one of its partner's structural limits (the message names it)."""


@dataclass(frozen=True, slots=True)
class InboundLimits:
    """Structural limits of one inbound file, checked before anything else is done with it."""

    # Largest file, in bytes.
    max_bytes: int = 128 * MIB
    # Most elements in the whole file.
    max_elements: int = 5_000_000
    # Deepest nesting of elements (ISO 20022 messages stay under 20; a signature adds 4).
    max_depth: int = 48
    # Most attributes on one element (namespace declarations included).
    max_attributes: int = 16
    # Longest text between two tags, in characters (a certificate in base64 is about 2,000).
    max_text: int = 65_536
    # Longest attribute value, in characters.
    max_attribute_length: int = 2_048
    # A signed file not in plain canonical layout (a comment, a prefix below the root, an
    # empty-element tag...) is read element by element in Python before its signature is trusted,
    # at up to a few microseconds an element or attribute, so it is held to far less than a plain
    # one (see `gateway.iso20022.plain`): at most this many element and attribute nodes together,
    # counted at C speed before it is read ...
    max_nodes_general: int = 400_000
    # ... and at most this many bytes.
    max_bytes_general: int = 32 * MIB


DEFAULT_LIMITS = InboundLimits()


class Observer(Protocol):
    """What else is done with the events of the pass (the canonical form of a signed file).

    For speed, the pass itself writes the common case, an unprefixed element below the root
    without attributes and not named in `watched`, while `fast` holds, as `<name>` and `</name>`
    into `pieces`, and text (escaped by `escape`) while `fast` holds; every other element goes
    to `start` and its end to `end`.
    """

    fast: bool
    pieces: list[str]
    watched: frozenset[str]
    # Set by the pass: the byte offset in the file of the event being handled.
    position: Callable[[], int]

    def start(self, name: str, attributes: list[str], depth: int) -> None: ...
    def end(self, name: str) -> None: ...
    def text(self, data: str) -> None: ...
    def escape(self, data: str) -> str: ...
    def flush(self) -> None: ...


def _too_large(size: int, limits: InboundLimits) -> LimitExceeded:
    return LimitExceeded(
        f"document is {size} bytes; the limit is {limits.max_bytes} (limit max_bytes)"
    )


def read_within(path: Path, limits: InboundLimits = DEFAULT_LIMITS) -> bytes:
    """A file's bytes, refused by size before they are read (the command line's files)."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise _too_large(size, limits)
    with path.open("rb") as handle:
        data = handle.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise _too_large(len(data), limits)
    return data


def count_elements(data: bytes) -> tuple[int, bool]:
    """The number of elements in `data`, counted at C speed as `<` not followed by `/`, `!` or `?`
    (numpy, a megabyte at a time); and whether that is exact: it is an upper bound when there are
    comments, CDATA sections or processing instructions (other than the XML declaration), whose
    text may hold `<`."""
    opened = ending = other = 0
    for low in range(0, len(data), CHUNK):
        raw = np.frombuffer(data, dtype=np.uint8, count=min(CHUNK + 1, len(data) - low), offset=low)
        following = raw[1:][raw[:-1] == 60]
        opened += len(following)
        ending += int(np.count_nonzero(following == 47))
        other += int(np.count_nonzero((following == 33) | (following == 63)))
    opened += data.endswith(b"<")
    declared = int(data.startswith(b"<?xml"))
    return opened - ending - other, other == declared


def refuse_by_count(elements: int, limits: InboundLimits) -> None:
    """Refuse a file of more elements than max_elements, before it is read."""
    if elements > limits.max_elements:
        raise LimitExceeded(
            f"more than {limits.max_elements} elements (limit max_elements): {elements} start"
            " tags, counted before parsing"
        )


def check_limits(
    data: bytes, limits: InboundLimits = DEFAULT_LIMITS, observer: Observer | None = None
) -> None:
    """Refuse `data` by the first limit it breaks, in one streaming pass; or return None.

    Also refused on the way, before any tree exists: a DOCTYPE (and so any entity), a processing
    instruction anywhere, and XML that is not well-formed. `observer`, when given, sees every
    element and text that passed the limits, in document order.
    """
    if len(data) > limits.max_bytes:
        raise _too_large(len(data), limits)
    # A large file that may hold more elements than the limit (an empty element is at least 4
    # bytes) is counted at C speed first: the pass costs Python work per element.
    if len(data) > max(CHUNK, 4 * limits.max_elements):
        elements, exact = count_elements(data)
        if exact:
            refuse_by_count(elements, limits)
    parser, refuse = _streaming_parser(limits, observer)
    if observer is not None:
        observer.position = lambda: parser.CurrentByteIndex
    view = memoryview(data)
    try:
        for offset in range(0, len(data), _CHUNK):
            parser.Parse(view[offset : offset + _CHUNK], False)
            if offset + _CHUNK - parser.CurrentByteIndex > MAX_MARKUP:
                refuse(f"a single tag or comment longer than {MAX_MARKUP} bytes")
            if observer is not None:
                observer.flush()
        parser.Parse(b"", True)
        if observer is not None:
            observer.flush()
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code is not None else str(exc)
        raise InvalidMessage(f"malformed XML at line {exc.lineno}: {message}") from None
    except LookupError:
        # The declared encoding is no codec Python knows.
        raise InvalidMessage("malformed XML at line 1: unknown encoding") from None
    except ValueError as exc:
        # Bytes the declared encoding cannot decode.
        raise InvalidMessage(
            f"malformed XML at line {parser.CurrentLineNumber}: {type(exc).__name__}"
        ) from None


def _streaming_parser(  # noqa: PLR0915 - one set of closures over plain counters, for speed
    limits: InboundLimits, observer: Observer | None = None
) -> tuple[expat.XMLParserType, Callable[[str], NoReturn]]:
    """An expat parser whose handlers count against `limits`, and its refusal function."""
    parser = expat.ParserCreate()
    elements = depth = text = 0
    max_elements, max_depth, max_text = limits.max_elements, limits.max_depth, limits.max_text
    max_attributes, max_value = limits.max_attributes * 2, limits.max_attribute_length
    # The depths of the open elements the observer's `start` saw.
    observed: list[int] = []
    write: Callable[[str], None] = observer.pieces.append if observer is not None else print
    watched = observer.watched if observer is not None else frozenset()

    def refuse(what: str) -> NoReturn:
        raise LimitExceeded(f"line {parser.CurrentLineNumber}: {what}")

    # The handlers run once per element: closures over plain counters, the one fast path in
    # Python; `_explain` words a refusal only once a limit is broken.
    def start(name: str, attributes: list[str]) -> None:
        nonlocal elements, depth, text
        elements += 1
        depth += 1
        text = 0
        if (
            elements > max_elements
            or depth > max_depth
            or len(name) > MAX_NAME
            or len(attributes) > max_attributes
        ):
            refuse(_explain(limits, elements, depth, name, attributes))
        for value in attributes:
            if len(value) > max_value or len(value) > MAX_NAME:
                _check_attributes(limits, name, attributes, refuse)
        if observer is not None:
            if (
                observer.fast
                and depth > 1
                and not attributes
                and ":" not in name
                and name not in watched
            ):
                write("<" + name + ">")
            else:
                observed.append(depth)
                observer.start(name, attributes, depth)

    def end(name: str) -> None:
        nonlocal depth, text
        if observer is not None:
            if observed and observed[-1] == depth:
                observed.pop()
                observer.end(name)
            else:
                write("</" + name + ">")
        depth -= 1
        text = 0

    def characters(data: str) -> None:
        nonlocal text
        text += len(data)
        if text > max_text:
            refuse(f"a text of more than {max_text} characters (limit max_text)")
        if observer is not None:
            if observer.fast:
                write(observer.escape(data))
            else:
                observer.text(data)

    def instruction(_target: str, _data: str) -> None:
        refuse("a processing instruction; payment files have none")

    def doctype(*_args: object) -> None:
        raise InvalidMessage("document has a DOCTYPE declaration; DTDs and entities are refused")

    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.ordered_attributes = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.ProcessingInstructionHandler = instruction
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    return parser, refuse


def _explain(
    limits: InboundLimits, elements: int, depth: int, name: str, attributes: list[str]
) -> str:
    """Which element limit an element broke, in words."""
    if elements > limits.max_elements:
        return f"more than {limits.max_elements} elements (limit max_elements)"
    if depth > limits.max_depth:
        return f"elements nested deeper than {limits.max_depth} (limit max_depth)"
    if len(name) > MAX_NAME:
        return f"an element name of {len(name)} characters; the limit is {MAX_NAME}"
    return (
        f"<{name}> has {len(attributes) // 2} attributes; the limit is {limits.max_attributes}"
        " (limit max_attributes)"
    )


def _check_attributes(
    limits: InboundLimits,
    name: str,
    attributes: list[str],
    refuse: Callable[[str], NoReturn],
) -> None:
    """Refuse an attribute whose name or value is too long (names and values alternate)."""
    for index in range(0, len(attributes), 2):
        if len(attributes[index]) > MAX_NAME:
            refuse(f"an attribute name of {len(attributes[index])} characters")
        size = len(attributes[index + 1])
        if size > limits.max_attribute_length:
            refuse(
                f"attribute {attributes[index]} of <{name}> is {size} characters; the limit"
                f" is {limits.max_attribute_length} (limit max_attribute_length)"
            )
