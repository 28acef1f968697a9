"""A BizMsg envelope as issue 3's AppHdr builder makes it, built here directly for the tests.

`<BizMsg xmlns="urn:kbnn:gateway:bizmsg:1">` holds a head.001.001.02 AppHdr (without Sgntr) and
then the message's Document; the signature goes into AppHdr/Sgntr.
"""

from __future__ import annotations

from lxml import etree

from gateway.iso20022.apphdr import BIZMSG
from gateway.signing.xmldsig import HEAD_NS


def envelope(document: etree._Element, name_id: str, msg_id: str) -> etree._Element:
    """Wrap a Document in a BizMsg envelope with an AppHdr (From KBNN to the bank)."""
    root = etree.Element(BIZMSG, nsmap={None: BIZMSG.split("}")[0][1:]})
    header = etree.SubElement(root, f"{{{HEAD_NS}}}AppHdr", nsmap={None: HEAD_NS})

    def add(parent: etree._Element, path: str, text: str | None = None) -> etree._Element:
        element = parent
        for step in path.split("/"):
            element = etree.SubElement(element, f"{{{HEAD_NS}}}{step}")
        element.text = text
        return element

    add(header, "Fr/FIId/FinInstnId/BICFI", "VBAAVNVX")
    add(header, "To/FIId/FinInstnId/BICFI", "KBNNVNVX")
    add(header, "BizMsgIdr", msg_id)
    add(header, "MsgDefIdr", name_id)
    add(header, "CreDt", "2026-11-10T09:00:00Z")
    add(header, "Rltd/BizMsgIdr", "REL-1")
    add(header, "Rltd/MsgDefIdr", name_id)
    add(header, "Rltd/CreDt", "2026-11-10T08:00:00Z")
    root.append(document)
    return root
