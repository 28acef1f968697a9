"""Cheap limits first: one streaming pass over an inbound file before any tree, canonical form or
signature work, refusing it by the name of the first limit it breaks.

The pass runs expat over the bytes with a handful of counters (constant memory, no tree), so a
file built to be expensive (40,000 attributes on one element, 2,000 nested levels, millions of
empty elements, a 10 MB text) costs one linear read and is refused at the first element over a
limit. Each partner has its own limits (`[inbound]` in its profile); the defaults admit a
100,000-transaction camt.054 (about 80 MB and 3.6 million elements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn
from xml.parsers import expat

from gateway.errors import InvalidMessage

MIB = 1024 * 1024
# A name (element or attribute) longer than this is nothing any ISO 20022 schema defines.
MAX_NAME = 256


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


DEFAULT_LIMITS = InboundLimits()


class _Pass:
    """Counters of one streaming pass; every handler refuses at the first limit broken."""

    def __init__(self, parser: expat.XMLParserType, limits: InboundLimits) -> None:
        self.parser = parser
        self.limits = limits
        self.elements = 0
        self.depth = 0
        self.text = 0

    def refuse(self, what: str) -> NoReturn:
        raise LimitExceeded(f"line {self.parser.CurrentLineNumber}: {what}")

    def start(self, name: str, attributes: list[str]) -> None:
        limits = self.limits
        self.elements += 1
        self.depth += 1
        self.text = 0
        if self.elements > limits.max_elements:
            self.refuse(f"more than {limits.max_elements} elements (limit max_elements)")
        if self.depth > limits.max_depth:
            self.refuse(f"elements nested deeper than {limits.max_depth} (limit max_depth)")
        if len(name) > MAX_NAME:
            self.refuse(f"an element name of {len(name)} characters; the limit is {MAX_NAME}")
        count = len(attributes) // 2
        if count > limits.max_attributes:
            self.refuse(
                f"<{name}> has {count} attributes; the limit is {limits.max_attributes}"
                " (limit max_attributes)"
            )
        for index in range(0, len(attributes), 2):
            if len(attributes[index]) > MAX_NAME:
                self.refuse(f"an attribute name of {len(attributes[index])} characters")
            size = len(attributes[index + 1])
            if size > limits.max_attribute_length:
                self.refuse(
                    f"attribute {attributes[index]} of <{name}> is {size} characters; the limit"
                    f" is {limits.max_attribute_length} (limit max_attribute_length)"
                )

    def end(self, _name: str) -> None:
        self.depth -= 1
        self.text = 0

    def characters(self, data: str) -> None:
        self.text += len(data)
        if self.text > self.limits.max_text:
            self.refuse(f"a text of more than {self.limits.max_text} characters (limit max_text)")

    def instruction(self, _target: str, _data: str) -> None:
        self.refuse("a processing instruction; payment files have none")

    def doctype(self, *_args: object) -> None:
        raise InvalidMessage("document has a DOCTYPE declaration; DTDs and entities are refused")


def check_limits(data: bytes, limits: InboundLimits = DEFAULT_LIMITS) -> None:
    """Refuse `data` by the first limit it breaks, in one streaming pass; or return None.

    Also refused on the way, before any tree exists: a DOCTYPE (and so any entity), a processing
    instruction anywhere, and XML that is not well-formed.
    """
    if len(data) > limits.max_bytes:
        raise LimitExceeded(
            f"document is {len(data)} bytes; the limit is {limits.max_bytes} (limit max_bytes)"
        )
    parser = expat.ParserCreate()
    counters = _Pass(parser, limits)
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.ordered_attributes = True
    parser.StartElementHandler = counters.start
    parser.EndElementHandler = counters.end
    parser.CharacterDataHandler = counters.characters
    parser.ProcessingInstructionHandler = counters.instruction
    parser.StartDoctypeDeclHandler = counters.doctype
    parser.EntityDeclHandler = counters.doctype
    try:
        parser.Parse(bytes(data), True)
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
