"""ISO 20022 message types and XMLDSig algorithms, as Enums whose values are the real URIs."""

from __future__ import annotations

from enum import Enum

from lxml import etree

from gateway.errors import InvalidMessage

ISO_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
# The envelope holding a head.001 AppHdr and its Document (see gateway.iso20022.apphdr).
BIZMSG_NS = "urn:kbnn:gateway:bizmsg:1"


class MessageType(Enum):
    """An ISO 20022 message version, identified by its XML namespace."""

    PAIN_001_001_03 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
    PAIN_001_001_09 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
    PAIN_002_001_03 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"
    PAIN_002_001_10 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
    PAIN_002_001_12 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.12"
    CAMT_052_001_02 = "urn:iso:std:iso:20022:tech:xsd:camt.052.001.02"
    CAMT_052_001_04 = "urn:iso:std:iso:20022:tech:xsd:camt.052.001.04"
    CAMT_052_001_08 = "urn:iso:std:iso:20022:tech:xsd:camt.052.001.08"
    CAMT_053_001_02 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
    CAMT_053_001_04 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.04"
    CAMT_053_001_08 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
    CAMT_054_001_02 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"
    CAMT_054_001_04 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.04"
    CAMT_054_001_08 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
    HEAD_001_001_02 = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
    PACS_004_001_02 = "urn:iso:std:iso:20022:tech:xsd:pacs.004.001.02"
    PACS_004_001_09 = "urn:iso:std:iso:20022:tech:xsd:pacs.004.001.09"
    PACS_004_001_11 = "urn:iso:std:iso:20022:tech:xsd:pacs.004.001.11"

    @property
    def namespace(self) -> str:
        """The XML namespace URI of this message version."""
        return str(self.value)

    @property
    def name_id(self) -> str:
        """The message name identifier as ISO writes it, e.g. "pain.001.001.09"."""
        return self.namespace.removeprefix(ISO_PREFIX)

    @property
    def family(self) -> str:
        """The message without its version, e.g. "pain.001"."""
        return self.name_id[:8]

    @property
    def schema_file(self) -> str:
        """The file name of this version's XSD in `schemas/`."""
        return f"{self.name_id}.xsd"

    @classmethod
    def from_name_id(cls, name_id: str) -> MessageType:
        """The message type for a name id such as "pain.001.001.09"."""
        try:
            return cls(ISO_PREFIX + name_id)
        except ValueError:
            raise InvalidMessage(f"message {name_id!r} is not supported") from None


# National variants read as the ISO base version they restrict (same structure, other namespace).
NAMESPACE_ALIASES: dict[str, MessageType] = {
    "http://www.six-interbank-clearing.com/de/pain.001.001.03.ch.02.xsd": (
        MessageType.PAIN_001_001_03
    ),
    "http://www.six-interbank-clearing.com/de/pain.002.001.03.ch.02.xsd": (
        MessageType.PAIN_002_001_03
    ),
    "http://www.six-interbank-clearing.com/de/camt.053.001.04.ch.02.xsd": (
        MessageType.CAMT_053_001_04
    ),
    "http://www.six-interbank-clearing.com/de/camt.054.001.04.ch.02.xsd": (
        MessageType.CAMT_054_001_04
    ),
}


def namespace_of(root: etree._Element) -> str | None:
    """The namespace URI of an element, or None when it has none."""
    namespace: str | None = etree.QName(root).namespace
    return namespace


def message_type(root: etree._Element) -> MessageType:
    """Tell a parsed document's message type from its root namespace."""
    namespace = namespace_of(root)
    if namespace is None:
        raise InvalidMessage(
            f"document root <{etree.QName(root).localname}> has no namespace; "
            "cannot tell which ISO 20022 message it is"
        )
    alias = NAMESPACE_ALIASES.get(namespace)
    if alias is not None:
        return alias
    try:
        return MessageType(namespace)
    except ValueError:
        raise InvalidMessage(f"namespace {namespace!r} is not a supported message") from None


class DsigAlgorithm(Enum):
    """The XMLDSig algorithm URIs the gateway signs with and accepts."""

    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
    ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
