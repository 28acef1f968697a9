"""One entry point for every bank file the gateway reads: which message it is, its XSD verdict,
and its content as plain data or normalised JSON (`gateway parse`). No side effects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lxml import etree

from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022 import apphdr, xsd
from gateway.iso20022.camt052 import read_camt052
from gateway.iso20022.camt053 import read_camt053
from gateway.iso20022.camt054 import read_camt054
from gateway.iso20022.model import (
    IntradayReport,
    Notification,
    Pain001Content,
    PaymentReturn,
    Statement,
    StatusReport,
)
from gateway.iso20022.namespaces import DSIG_NS, message_type, namespace_of
from gateway.iso20022.pacs004 import read_pacs004
from gateway.iso20022.pain001 import read_pain001
from gateway.iso20022.pain002 import read_pain002
from gateway.iso20022.xml import parse_xml

Content = Pain001Content | StatusReport | Notification | Statement | IntradayReport | PaymentReturn
JSON_FORMAT = "gateway-parse/1"

_KINDS: dict[str, tuple[str, Callable[[etree._Element], Content]]] = {
    "pain.001": ("payment_initiation", read_pain001),
    "pain.002": ("status_report", read_pain002),
    "camt.054": ("notification", read_camt054),
    "camt.053": ("statement", read_camt053),
    "camt.052": ("intraday_report", read_camt052),
    "pacs.004": ("payment_return", read_pacs004),
}


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A bank file as read: its message, how it was checked, its header and its content."""

    # The message as its namespace names it, e.g. "pain.002.001.03" (a national variant's ISO base).
    message: str
    # The document's own namespace (a national variant keeps its own here), or None.
    namespace: str | None
    # "valid", or why the XSD was not checked.
    xsd: str
    kind: str
    content: Content
    app_header: apphdr.AppHeader | None = None
    # Where an XMLDSig signature was found (set aside, not verified: `parse` trusts nothing).
    signature: str | None = None


def read_file(data: bytes, *, validate: bool = True) -> ParsedFile:
    """Parse (hardened), optionally XSD-check, and read one bank file of any supported kind.

    Every refusal is an InvalidMessage naming the element and, where known, its line.
    """
    root = parse_xml(data)
    signature = _set_signature_aside(root)
    header_element, document = apphdr.split(root)
    header = apphdr.read_app_header(header_element) if header_element is not None else None
    namespace = namespace_of(document)
    # pain.002.001.10 is met without a namespace (German VOP files): read, never validated.
    bare = namespace is None and len(document) > 0
    if bare and etree.QName(document[0]).localname == "CstmrPmtStsRpt":
        content = read_pain002(document)
        return ParsedFile(
            "pain.002",
            None,
            "not checked: no namespace",
            "status_report",
            content,
            header,
            signature,
        )
    kind = message_type(document)
    reader = _KINDS.get(kind.family)
    if reader is None:
        raise InvalidMessage(f"{kind.name_id} is not a message the gateway reads")
    verdict = "not checked (--no-validate)"
    if validate:
        verdict = _validate(root, header_element, document)
    return ParsedFile(
        message=kind.name_id,
        namespace=namespace,
        xsd=verdict,
        kind=reader[0],
        content=reader[1](document),
        app_header=header,
        signature=signature,
    )


_SIGNATURE = f"{{{DSIG_NS}}}Signature"


def _set_signature_aside(root: etree._Element) -> str | None:
    """Remove an enveloped signature (at the root, in the Document or in AppHdr/Sgntr) so the
    content can be checked against its XSD; say where it was. It is not verified here."""
    for parent in (root, *root):
        if not isinstance(parent.tag, str):
            continue
        for holder in (parent, *parent.iterchildren("{*}Sgntr")):
            found = holder.find(_SIGNATURE)
            if found is not None:
                holder.remove(found)
                where = etree.QName(holder).localname
                if etree.QName(holder).localname == "Sgntr":
                    parent.remove(holder)
                    where = "AppHdr/Sgntr"
                return f"enveloped in {where} (not verified by parse)"
    return None


def _validate(root: etree._Element, header: etree._Element | None, document: etree._Element) -> str:
    """XSD-check each part whose schema is installed; say which were not checked."""
    unchecked = []
    for part in (header, document):
        if part is None:
            continue
        kind = message_type(part)
        try:
            xsd.schema_for(kind)
        except ConfigError:
            unchecked.append(kind.name_id)
            continue
        xsd.validate(part)
    if unchecked:
        return f"not checked: no XSD installed for {', '.join(unchecked)}"
    return "valid"


def to_json(parsed: ParsedFile) -> dict[str, Any]:
    """The normalised JSON of a parsed file (format `gateway-parse/1`, see docs/messages.md)."""
    return {
        "format": JSON_FORMAT,
        "message": parsed.message,
        "namespace": parsed.namespace,
        "xsd": parsed.xsd,
        "kind": parsed.kind,
        "signature": parsed.signature,
        "app_header": _plain(parsed.app_header),
        "content": _plain(parsed.content),
    }


def _plain(value: Any) -> Any:
    """Dataclasses as objects, Decimal as exact strings, dates as ISO text, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value
