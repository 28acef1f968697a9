"""Reading a large camt.054 or camt.053 in bounded memory: validated against its XSD while it is
parsed, each entry read as soon as it is complete and then dropped from the tree.

A 100,000-transaction notification is about 80 MB and 3.6 million elements; its whole tree costs
several hundred megabytes. Here libxml2 parses the file in chunks with the XSD attached to the
parser (validation from the parse events, no tree needed), `read_entry` reads each Ntry at its
end, and the Ntry is then cleared and removed: the tree never holds more than the header and one
entry. What is read is exactly what `read_camt054` / `read_camt053` read from a whole tree (the
same functions), and the same things are refused: comments anywhere, XInclude elements, any XSD
error.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.camt053 import read_camt053
from gateway.iso20022.camt054 import read_camt054, read_entry
from gateway.iso20022.model import Entry, Notification, Statement
from gateway.iso20022.namespaces import MessageType

XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")
# Files smaller than this are read from a whole tree (the same result; the XSD's errors then
# name the element's path, not only its name).
STREAM_FROM = 4 * 1024 * 1024


FAMILIES = ("camt.054", "camt.053")


def streams(kind: MessageType, namespace: str, size: int) -> bool:
    """Whether a file of this kind and size is read streaming: a camt.054 or camt.053 of the
    ISO namespace with its XSD installed, from STREAM_FROM bytes."""
    return (
        size >= STREAM_FROM
        and kind.family in FAMILIES
        and namespace == kind.namespace
        and xsd.has_schema(kind)
    )


def read_streaming(
    chunks: Iterable[bytes], kind: MessageType
) -> tuple[etree._Element, Notification | Statement]:
    """The notification or statement in `chunks` (a whole document, no signature), validated
    and read; and the document's root without its entries (for the creation time).
    InvalidMessage says why not."""
    ns = kind.namespace
    watched = [f"{{{ns}}}Ntry", *(f"{{{uri}}}*" for uri in XINCLUDE_NAMESPACES)]
    parser = etree.XMLPullParser(
        events=("end", "comment"),
        tag=watched,
        schema=xsd.schema_for(kind),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        collect_ids=False,
    )
    # The entries read, by the element holding them (Ntfctn, Stmt), in document order.
    entries: dict[etree._Element, list[Entry]] = {}
    # The parser's errors are read from lxml's log of this thread: only this file's.
    etree.clear_error_log()
    try:
        for chunk in chunks:
            parser.feed(chunk)
            _take(parser, ns, entries)
        root = parser.close()
        _take(parser, ns, entries)
    except etree.XMLSyntaxError as exc:
        raise _refusal(exc, kind) from None
    if kind.family == "camt.053":
        return root, read_camt053(root, entries)
    return root, read_camt054(root, [entry for held in entries.values() for entry in held])


def _take(parser: etree.XMLPullParser, ns: str, entries: dict[etree._Element, list[Entry]]) -> None:
    """Read the entries completed so far, and drop them; refuse comments and XInclude."""
    for event, node in parser.read_events():
        if event == "comment":
            parent = node.getparent()
            if parent is None:
                raise InvalidMessage(
                    f"comment outside the document's root element at line {node.sourceline}:"
                    " a signed file carries no comments, anywhere"
                )
            raise InvalidMessage(
                f"comment inside <{etree.QName(parent).localname}> at line {node.sourceline}:"
                " a signed file carries no comments (canonicalisation drops them, so they can"
                " split a signed value)"
            )
        if etree.QName(node).namespace in XINCLUDE_NAMESPACES:
            raise InvalidMessage(f"XInclude element at line {node.sourceline} is refused")
        parent = node.getparent()
        entries.setdefault(parent, []).append(read_entry(node, ns))
        node.clear(keep_tail=True)
        if parent is not None:
            # Each entry goes once read: the notification's other children (its account,
            # summary) stay for `read_camt054`.
            parent.remove(node)


def _refusal(exc: etree.XMLSyntaxError, kind: MessageType) -> InvalidMessage:
    """The XSD's errors (the first few), or the parse error, as one reason."""
    entries = list(exc.error_log)
    invalid = [entry for entry in entries if entry.domain_name == "SCHEMASV"]
    if not invalid:
        message = str(exc.msg or exc).split(" (<string>")[0]
        return InvalidMessage(f"malformed XML at line {exc.lineno}: {message}")
    described = [_describe(entry) for entry in invalid[: xsd.MAX_REPORTED_ERRORS]]
    return InvalidMessage(f"{kind.name_id} fails its XSD: " + "; ".join(described))


def _describe(entry: etree._LogEntry) -> str:
    """`line N: <element>: <libxml2 message>`, as `xsd.validate` words it (the element by its
    name only: its path is no longer in the tree)."""
    found = xsd._ELEMENT.match(entry.message)
    if found:
        name, attribute, message = found.groups()
        element = xsd._CLARK.sub("", name) + (f"@{attribute}" if attribute else "")
    else:
        element, message = "?", entry.message
    message = xsd._CLARK.sub("", message).strip()
    return f"line {entry.line}: {element}: {message}" if entry.line else f"{element}: {message}"
