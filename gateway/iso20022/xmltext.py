"""Documents the gateway writes as text and parses once: escaping, and the parser of that text.

At tens of thousands of entries, formatting each entry as a string and handing the whole document
to libxml2 once is several times cheaper than one `SubElement` call per element. A builder doing
so keeps its element-by-element twin as the reference and as the way to name a fault: text that
cannot be written as XML (a control character, say) is found by the parser, and the twin then
raises exactly what it always raised.

The text is written in its exclusive canonical form (C14N: no declaration, no blank between
elements, start and end tags, text and attributes escaped as C14N escapes them), so that
`OwnDocument.canonical` can be signed as it is (`gateway.signing.xmldsig.sign_enveloped_text`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree

_SPECIAL_CONTENT = re.compile(r"[&<>\r]")
_SPECIAL_ATTRIBUTE = re.compile(r'[&<"\r\t\n]')
_CONTENT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"})
# In an attribute value the parser turns a tab or a line end into a space: they are written as
# character references, so the value reads back as it was (and `>` is left, as C14N leaves it).
_ATTRIBUTE = str.maketrans(
    {"&": "&amp;", "<": "&lt;", '"': "&quot;"} | {"\r": "&#xD;", "\t": "&#x9;", "\n": "&#xA;"}
)

# Our own text has no DTD, no entity and no blank text between elements; the parser is hardened
# all the same, and keeps every text as written (a name of spaces stays one). One parser a
# thread: lxml lets one parser parse one document at a time, and threads check a large file's
# pieces side by side (`gateway.iso20022.xsd.all_valid`).
_parsers = threading.local()


def _own_parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, collect_ids=False)
        _parsers.parser = parser
    return parser


def escape(value: str) -> str:
    """Text escaped for element content: it reads back exactly as `value` (a CR included)."""
    return value.translate(_CONTENT) if _SPECIAL_CONTENT.search(value) else value


def escape_attribute(value: str) -> str:
    """Text escaped for a double-quoted attribute value: it reads back exactly as `value`."""
    return value.translate(_ATTRIBUTE) if _SPECIAL_ATTRIBUTE.search(value) else value


@dataclass(frozen=True, slots=True)
class OwnDocument:
    """A document the gateway built: its tree and, when it was written as text, that text's
    bytes (its exclusive canonical form, UTF-8); None when it was built element by element."""

    root: etree._Element
    canonical: bytes | None = None


def parse_own(text: str) -> etree._Element:
    """The tree of a document the gateway wrote as text (raises lxml's XMLSyntaxError, or
    UnicodeEncodeError for a lone surrogate, when the text is not XML)."""
    return own_document(text).root


def own_document(text: str) -> OwnDocument:
    """`parse_own`, keeping the text's bytes beside the tree."""
    data = text.encode("utf-8")
    return OwnDocument(parse_own_bytes(data), data)


def parse_own_bytes(data: bytes) -> etree._Element:
    """`parse_own` of text already encoded (UTF-8)."""
    root: etree._Element = etree.fromstring(data, _own_parser())
    return root
