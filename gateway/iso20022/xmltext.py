"""Documents the gateway writes as text and parses once: escaping, and the parser of that text.

At tens of thousands of entries, formatting each entry as a string and handing the whole document
to libxml2 once is several times cheaper than one `SubElement` call per element. A builder doing
so keeps its element-by-element twin as the reference and as the way to name a fault: text that
cannot be written as XML (a control character, say) is found by the parser, and the twin then
raises exactly what it always raised.
"""

from __future__ import annotations

import re

from lxml import etree

_SPECIAL_CONTENT = re.compile(r"[&<>\r]")
_SPECIAL_ATTRIBUTE = re.compile(r'[&<>"\r\t\n]')
_CONTENT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# In an attribute value the parser turns a tab or a line end into a space: they are written as
# character references, so the value reads back as it was.
_ATTRIBUTE = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
    | {"\r": "&#13;", "\t": "&#9;", "\n": "&#10;"}
)

# Our own text has no DTD, no entity and no blank text between elements; the parser is hardened
# all the same, and keeps every text as written (a name of spaces stays one).
_OWN_TEXT = etree.XMLParser(resolve_entities=False, no_network=True, collect_ids=False)


def escape(value: str) -> str:
    """Text escaped for element content: it reads back exactly as `value` (a CR included)."""
    return value.translate(_CONTENT) if _SPECIAL_CONTENT.search(value) else value


def escape_attribute(value: str) -> str:
    """Text escaped for a double-quoted attribute value: it reads back exactly as `value`."""
    return value.translate(_ATTRIBUTE) if _SPECIAL_ATTRIBUTE.search(value) else value


def parse_own(text: str) -> etree._Element:
    """The tree of a document the gateway wrote as text (raises lxml's XMLSyntaxError, or
    UnicodeEncodeError for a lone surrogate, when the text is not XML)."""
    root: etree._Element = etree.fromstring(text.encode("utf-8"), _OWN_TEXT)
    return root
