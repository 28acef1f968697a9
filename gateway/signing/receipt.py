"""Receiving a bank report: everything a file must pass before it is applied, in one place, so
that the inbound service and `gateway verify` judge every file alike.

In order, each step cheaper than the next and none repeated: the partner's structural limits (a
streaming pass), the signature as the partner's mode says with trust judged at receipt, the
creation time within the partner's tolerance, the XSD when installed, and the reader of the
message's kind with ISO 20022's value rules (amounts, lengths, dates), XSD or not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022 import streaming, xsd
from gateway.iso20022.camt052 import read_camt052
from gateway.iso20022.camt053 import read_camt053
from gateway.iso20022.camt054 import read_camt054
from gateway.iso20022.consistency import entry_problem
from gateway.iso20022.model import (
    IntradayReport,
    Notification,
    PaymentReturn,
    Statement,
    StatusReport,
)
from gateway.iso20022.namespaces import MessageType, message_type
from gateway.iso20022.pacs004 import read_pacs004
from gateway.iso20022.pain002 import read_pain002
from gateway.profile import PartnerProfile
from gateway.profile.inbound import InboundPolicy
from gateway.signing.policy import (
    SignedRaw,
    VerifiedFile,
    check_enveloped,
    enveloped_tree,
    verify_for_partner,
)
from gateway.signing.trust import TrustedCertificate, check_created, message_time

Report = StatusReport | Notification | PaymentReturn | Statement | IntradayReport

# The reports a partner sends, by message family, with their readers.
READERS: dict[str, Callable[[etree._Element], Report]] = {
    "pain.002": read_pain002,
    "camt.054": read_camt054,
    "pacs.004": read_pacs004,
    "camt.053": read_camt053,
    "camt.052": read_camt052,
}


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A file that passed every check: who signed it, what it is, and what it says."""

    verified: VerifiedFile
    kind: MessageType
    content: Report
    # False when no XSD of this version is installed (pacs.004.001.02 and .11): the reader's
    # own value rules were the only content check.
    schema_checked: bool


def receive(
    raw: bytes,
    partner: PartnerProfile,
    pinned: Sequence[TrustedCertificate],
    received_at: datetime,
    detached: bytes | None = None,
) -> ReceivedFile:
    """Check one file from `partner`, received at `received_at`; InvalidMessage says why not."""
    inbound = partner.inbound
    if partner.signature.mode == "enveloped" and detached is None:
        signed = check_enveloped(raw, pinned, received_at, inbound)
        streamed = _streamed(signed, received_at, inbound)
        if streamed is not None:
            return streamed
        verified = enveloped_tree(signed, received_at, inbound)
    else:
        verified = verify_for_partner(
            raw, partner.signature, pinned, received_at, detached, inbound=inbound
        )
    kind = message_type(verified.document)
    reader = READERS.get(kind.family)
    if reader is None:
        raise InvalidMessage(f"{kind.name_id} is not a report the gateway reads")
    checked = xsd.has_schema(kind)
    if checked:
        xsd.validate(verified.document)
    return ReceivedFile(verified, kind, reader(verified.document), checked)


def _streamed(
    signed: SignedRaw, received_at: datetime, inbound: InboundPolicy
) -> ReceivedFile | None:
    """A large camt.054 or camt.053 read in bounded memory (see `gateway.iso20022.streaming`);
    None for any other file, which is read from its tree."""
    namespace, _ = signed.root
    try:
        kind = MessageType(namespace)
    except ValueError:
        return None
    if not streaming.streams(kind, namespace, len(signed.raw)):
        return None
    root, content = streaming.read_streaming(signed.without_signature(), kind)
    verified = VerifiedFile(root, None, signed.key_id, message_time(root, None))
    check_created(verified.created_at, received_at, inbound.max_age, inbound.max_ahead)
    return ReceivedFile(verified, kind, content, True)


def entry_problems(content: Report) -> list[str]:
    """Why each entry of a camt.054, camt.053 or camt.052 disagrees with its details: the inbound
    service keeps those entries as unmatched and applies nothing of them."""
    if isinstance(content, Notification):
        entries = content.entries
    elif isinstance(content, Statement):
        entries = tuple(entry for stmt in content.statements for entry in stmt.entries)
    elif isinstance(content, IntradayReport):
        entries = tuple(entry for report in content.reports for entry in report.entries)
    else:
        return []
    return [problem for problem in map(entry_problem, entries) if problem]
