"""head.001.001.02 Business Application Header and the envelope that carries it with its Document.

When a partner's profile has `app_header = true`, the file is

    <BizMsg xmlns="urn:kbnn:gateway:bizmsg:1">
      <AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">...</AppHdr>
      <Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">...</Document>
    </BizMsg>

The AppHdr is built without `Sgntr`; the signature goes into `AppHdr/Sgntr` (after `Prty`, before
`Rltd`: we write no `Rltd`, so it is the AppHdr's last child). The AppHdr and the Document are
validated separately, each against its own XSD. Readers take any root holding one AppHdr and one
Document (our `BizMsg`, a SWIFT `Envelope`, ...) through `split`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.namespaces import BIZMSG_NS, MessageType, namespace_of
from gateway.iso20022.xml import find, format_datetime, parse_datetime, tags, text

HEAD = MessageType.HEAD_001_001_02
BIZMSG = f"{{{BIZMSG_NS}}}BizMsg"
_TAG = tags(
    HEAD.namespace,
    ("AppHdr", "Fr", "To", "OrgId", "Nm", "FIId", "FinInstnId", "BICFI", "BizMsgIdr"),
)
_TAG.update(tags(HEAD.namespace, ("MsgDefIdr", "BizSvc", "CreDt", "Sgntr")))


@dataclass(frozen=True, slots=True)
class AppHeader:
    """What the AppHdr says: who sends, to which bank, which message, when."""

    sender_name: str
    receiver_bic: str
    business_msg_id: str
    message_definition: str
    created_at: datetime
    business_service: str | None = None


def build_app_header(header: AppHeader) -> etree._Element:
    """The AppHdr element (no `Sgntr`): from the treasury by name, to the bank by BIC."""
    sub = etree.SubElement
    root = etree.Element(_TAG["AppHdr"], nsmap={None: HEAD.namespace})
    sub(sub(sub(root, _TAG["Fr"]), _TAG["OrgId"]), _TAG["Nm"]).text = header.sender_name
    receiver = sub(sub(sub(root, _TAG["To"]), _TAG["FIId"]), _TAG["FinInstnId"])
    sub(receiver, _TAG["BICFI"]).text = header.receiver_bic
    sub(root, _TAG["BizMsgIdr"]).text = header.business_msg_id
    sub(root, _TAG["MsgDefIdr"]).text = header.message_definition
    if header.business_service:
        sub(root, _TAG["BizSvc"]).text = header.business_service
    sub(root, _TAG["CreDt"]).text = format_datetime(header.created_at, "AppHdr/CreDt")
    return root


def wrap(app_header: etree._Element, document: etree._Element) -> etree._Element:
    """The `BizMsg` envelope holding the AppHdr then the Document (both moved, not copied)."""
    envelope = etree.Element(BIZMSG, nsmap={None: BIZMSG_NS})
    envelope.append(app_header)
    envelope.append(document)
    return envelope


def is_envelope(root: etree._Element) -> bool:
    """True when the root is not itself an ISO `Document` but holds an AppHdr."""
    return etree.QName(root).localname != "Document" and _child(root, "AppHdr") is not None


def split(root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    """(AppHdr, Document) of an envelope; (None, root) for a bare Document."""
    if etree.QName(root).localname == "Document":
        return None, root
    header = _child(root, "AppHdr")
    document = _child(root, "Document")
    if header is None or document is None:
        raise InvalidMessage(
            f"line {root.sourceline or '?'}: <{etree.QName(root).localname}> is neither an ISO "
            "20022 <Document> nor an envelope holding an <AppHdr> and a <Document>"
        )
    return header, document


def document_of(root: etree._Element) -> etree._Element:
    """The ISO Document of a file, unwrapped from its envelope when it has one."""
    return split(root)[1]


def read_app_header(header: etree._Element) -> AppHeader:
    """An AppHdr's main fields (sender by organisation name or BIC, receiver likewise)."""
    ns = namespace_of(header)
    created = text(header, ns, "CreDt")
    if created is None:
        raise InvalidMessage(f"line {header.sourceline or '?'}: AppHdr/CreDt is missing")
    return AppHeader(
        sender_name=_party(find(header, ns, "Fr"), ns) or "",
        receiver_bic=_party(find(header, ns, "To"), ns) or "",
        business_msg_id=text(header, ns, "BizMsgIdr") or "",
        message_definition=text(header, ns, "MsgDefIdr") or "",
        created_at=parse_datetime(created, "AppHdr/CreDt"),
        business_service=text(header, ns, "BizSvc"),
    )


def _party(party: etree._Element | None, ns: str | None) -> str | None:
    """A Party44Choice as one string: the BIC of an institution, else an organisation's name."""
    if party is None:
        return None
    return (
        text(party, ns, "FIId/FinInstnId/BICFI")
        or text(party, ns, "OrgId/Nm")
        or text(party, ns, "FIId/FinInstnId/Nm")
        or text(party, ns, "OrgId/Id/OrgId/AnyBIC")
    )


def _child(root: etree._Element, local_name: str) -> etree._Element | None:
    for child in root:
        if isinstance(child.tag, str) and etree.QName(child).localname == local_name:
            return child
    return None
