"""pain.002 customer payment status report: built as .12 (bank simulator), read as .03, .10, .12.

Reading is tolerant: unknown status and reason codes are kept as text. A transaction without a
status of its own inherits its PmtInf status, else the group status. A PmtInf status becomes a
line of its own with no EndToEndId (`original_pmt_inf_id` set): it applies to the transactions of
that PmtInf that are not listed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from datetime import datetime

from lxml import etree

from gateway.domain.text import nfc
from gateway.errors import InvalidMessage
from gateway.iso20022.apphdr import document_of
from gateway.iso20022.model import StatusReport, TxStatus
from gateway.iso20022.namespaces import MessageType, message_type, namespace_of
from gateway.iso20022.xml import (
    code_or_proprietary,
    find,
    findall,
    format_datetime,
    parse_datetime,
    required_text,
    tags,
    text,
    texts,
)
from gateway.iso20022.xmltext import OwnDocument, escape, own_document, parse_own

_OUT = MessageType.PAIN_002_001_12
_READABLE = frozenset(
    {MessageType.PAIN_002_001_03, MessageType.PAIN_002_001_10, MessageType.PAIN_002_001_12}
)
_TAG = tags(
    _OUT.namespace,
    (
        "Document",
        "CstmrPmtStsRpt",
        "GrpHdr",
        "MsgId",
        "CreDtTm",
        "OrgnlGrpInfAndSts",
        "OrgnlMsgId",
        "OrgnlMsgNmId",
        "GrpSts",
        "StsRsnInf",
        "Rsn",
        "Cd",
        "Prtry",
        "AddtlInf",
        "OrgnlPmtInfAndSts",
        "OrgnlPmtInfId",
        "PmtInfSts",
        "TxInfAndSts",
        "OrgnlInstrId",
        "OrgnlEndToEndId",
        "TxSts",
    ),
)
_REASON_CODE_MAX = 4  # ExternalStatusReason1Code; longer codes go to Prtry
_ADDTL_INF_MAX = 105  # Max105Text


def build_pain002(report: StatusReport) -> etree._Element:
    """Build a pain.002.001.12 status report (not yet validated or signed).

    Written as text, a transaction a string, and parsed once (see `gateway.iso20022.xmltext`):
    the tree is the one `build_pain002_elements` makes. A report the text cannot carry is built
    element by element instead, which refuses it as it always did.
    """
    try:
        return parse_own(_report_text(report))
    except (InvalidMessage, ValueError, etree.LxmlError):
        return build_pain002_elements(report)


# A transaction's status line, the fields of a `TxStatus` in its order: original EndToEndId,
# status, original InstrId, original PmtInfId, reason code and reason text.
Status = tuple[str | None, str, str | None, str | None, str | None, str | None]


def build_pain002_statuses(
    msg_id: str,
    created_at: datetime,
    original_msg_id: str,
    group_status: str | None,
    statuses: Sequence[Status],
) -> etree._Element:
    """`build_pain002` of the report of a pain.001.001.09's transactions, one status line each:
    what a bank sends for a file it decided.

    Each line is written from its values, without a `TxStatus` object (at 100,000 transactions,
    making them costs more than writing the text). A report the text cannot carry is built from
    those objects, element by element, which refuses it as `build_pain002` does.
    """
    return pain002_statuses_document(
        msg_id, created_at, original_msg_id, group_status, statuses
    ).root


def pain002_statuses_document(
    msg_id: str,
    created_at: datetime,
    original_msg_id: str,
    group_status: str | None,
    statuses: Sequence[Status],
) -> OwnDocument:
    """`build_pain002_statuses`, with the canonical text the tree was parsed from (none when
    the report was built element by element)."""
    try:
        head = StatusReport(msg_id, created_at, original_msg_id, _ORIGINAL_NAME, group_status, ())
        return own_document(_statuses_text(head, statuses))
    except (InvalidMessage, ValueError, etree.LxmlError):
        lines = tuple(TxStatus(*status) for status in statuses)
        report = StatusReport(
            msg_id, created_at, original_msg_id, _ORIGINAL_NAME, group_status, lines
        )
        return OwnDocument(build_pain002_elements(report))


_ORIGINAL_NAME = "pain.001.001.09"


def _statuses_text(head: StatusReport, statuses: Sequence[Status]) -> str:
    """The document as `_report_text` writes it, each transaction as `_transaction_text` does."""
    groups: dict[str, list[str]] = {}
    reasons: dict[tuple[str | None, str | None], str] = {}
    for end_to_end_id, status, instr_id, pmt_inf_id, code, reason in statuses:
        if not pmt_inf_id or (end_to_end_id is None and instr_id is None):
            # A line without its PmtInf (refused) or of a PmtInf itself: the general way.
            raise InvalidMessage("not a transaction's status line")
        written_reason = reasons.get((code, reason))
        if written_reason is None:
            written_reason = reasons[code, reason] = _reason_text(code, reason)
        lines = groups.get(pmt_inf_id)
        if lines is None:
            lines = groups[pmt_inf_id] = []
        lines.append(_transaction_fields_text(instr_id, end_to_end_id, status, written_reason))
    parts = [_report_head_text(head)]
    for pmt_inf_id, lines in groups.items():
        parts.append(f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{escape(pmt_inf_id)}</OrgnlPmtInfId>")
        parts.extend(lines)
        parts.append("</OrgnlPmtInfAndSts>")
    parts.append(_REPORT_TAIL)
    return "".join(parts)


def _report_head_text(report: StatusReport) -> str:
    """The document up to its first OrgnlPmtInfAndSts."""
    created = format_datetime(report.created_at, "GrpHdr/CreDtTm")
    group_status = f"<GrpSts>{escape(report.group_status)}</GrpSts>" if report.group_status else ""
    return (
        f'<Document xmlns="{_OUT.namespace}"><CstmrPmtStsRpt><GrpHdr>'
        f"<MsgId>{escape(report.msg_id)}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>"
        f"<OrgnlGrpInfAndSts><OrgnlMsgId>{escape(report.original_msg_id)}</OrgnlMsgId>"
        f"<OrgnlMsgNmId>{escape(report.original_msg_name_id)}</OrgnlMsgNmId>{group_status}"
        f"{_reason_text(report.group_reason_code, report.group_reason_text)}</OrgnlGrpInfAndSts>"
    )


_REPORT_TAIL = "</CstmrPmtStsRpt></Document>"


def _report_text(report: StatusReport) -> str:
    """The whole document as text."""
    parts = [_report_head_text(report)]
    for pmt_inf_id, lines in _by_payment_information(report.transactions):
        parts.append(_payment_information_text(pmt_inf_id, lines))
    parts.append(_REPORT_TAIL)
    return "".join(parts)


def _payment_information_text(pmt_inf_id: str, lines: list[TxStatus]) -> str:
    """One OrgnlPmtInfAndSts, as `_add_payment_information` builds it."""
    own = [line for line in lines if _is_pmt_inf_line(line)]
    if len(own) > 1:
        raise InvalidMessage(f"PmtInf {pmt_inf_id}: {len(own)} PmtInf-level statuses; at most one")
    status = (
        f"<PmtInfSts>{escape(own[0].status)}</PmtInfSts>"
        f"{_reason_text(own[0].reason_code, own[0].reason_text)}"
        if own
        else ""
    )
    transactions = "".join(
        [_transaction_text(line) for line in lines if not _is_pmt_inf_line(line)]
    )
    return (
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{escape(pmt_inf_id)}</OrgnlPmtInfId>{status}"
        f"{transactions}</OrgnlPmtInfAndSts>"
    )


def _transaction_text(line: TxStatus) -> str:
    """One TxInfAndSts, as `_add_transaction` builds it."""
    return _transaction_fields_text(
        line.original_instr_id,
        line.original_end_to_end_id,
        line.status,
        _reason_text(line.reason_code, line.reason_text),
    )


def _transaction_fields_text(
    instr_id: str | None, end_to_end_id: str | None, status: str, reason: str
) -> str:
    """A TxInfAndSts from its values (`reason`: its StsRsnInf, written)."""
    return "".join(
        (
            "<TxInfAndSts>",
            f"<OrgnlInstrId>{escape(instr_id)}</OrgnlInstrId>" if instr_id else "",
            f"<OrgnlEndToEndId>{escape(end_to_end_id)}</OrgnlEndToEndId>" if end_to_end_id else "",
            f"<TxSts>{escape(status)}</TxSts>",
            reason,
            "</TxInfAndSts>",
        )
    )


def _reason_text(code: str | None, reason: str | None) -> str:
    """StsRsnInf, as `_add_reason` builds it ('' when there is neither code nor reason)."""
    if not code and not reason:
        return ""
    kind = "Cd" if code and len(code) <= _REASON_CODE_MAX else "Prtry"
    written = f"<Rsn><{kind}>{escape(code)}</{kind}></Rsn>" if code else ""
    lines = "".join(
        f"<AddtlInf>{escape(part)}</AddtlInf>"
        for part in textwrap.wrap(nfc(reason or ""), _ADDTL_INF_MAX)
    )
    return f"<StsRsnInf>{written}{lines}</StsRsnInf>"


# --- The element-by-element builder: the reference of the text above, and its way to refuse ---


def build_pain002_elements(report: StatusReport) -> etree._Element:
    """`build_pain002`, one `SubElement` at a time."""
    sub = etree.SubElement
    root = etree.Element(_TAG["Document"], nsmap={None: _OUT.namespace})
    body = sub(root, _TAG["CstmrPmtStsRpt"])
    header = sub(body, _TAG["GrpHdr"])
    sub(header, _TAG["MsgId"]).text = report.msg_id
    sub(header, _TAG["CreDtTm"]).text = format_datetime(report.created_at, "GrpHdr/CreDtTm")
    original = sub(body, _TAG["OrgnlGrpInfAndSts"])
    sub(original, _TAG["OrgnlMsgId"]).text = report.original_msg_id
    sub(original, _TAG["OrgnlMsgNmId"]).text = report.original_msg_name_id
    if report.group_status:
        sub(original, _TAG["GrpSts"]).text = report.group_status
    _add_reason(original, report.group_reason_code, report.group_reason_text)
    for pmt_inf_id, lines in _by_payment_information(report.transactions):
        _add_payment_information(body, pmt_inf_id, lines)
    return root


def _by_payment_information(lines: Iterable[TxStatus]) -> list[tuple[str, list[TxStatus]]]:
    """Status lines grouped by their original PmtInfId, in first-seen order."""
    groups: dict[str, list[TxStatus]] = {}
    for line in lines:
        if not line.original_pmt_inf_id:
            raise InvalidMessage(
                f"status of {line.original_end_to_end_id}: original_pmt_inf_id is required "
                "(pain.002.001.12 reports transactions under their PmtInf)"
            )
        groups.setdefault(line.original_pmt_inf_id, []).append(line)
    return list(groups.items())


def _add_payment_information(
    parent: etree._Element, pmt_inf_id: str, lines: list[TxStatus]
) -> None:
    """One OrgnlPmtInfAndSts: its own status line (no ids) first, then its transactions."""
    sub = etree.SubElement
    block = sub(parent, _TAG["OrgnlPmtInfAndSts"])
    sub(block, _TAG["OrgnlPmtInfId"]).text = pmt_inf_id
    own = [line for line in lines if _is_pmt_inf_line(line)]
    if len(own) > 1:
        raise InvalidMessage(f"PmtInf {pmt_inf_id}: {len(own)} PmtInf-level statuses; at most one")
    if own:
        sub(block, _TAG["PmtInfSts"]).text = own[0].status
        _add_reason(block, own[0].reason_code, own[0].reason_text)
    for line in lines:
        if not _is_pmt_inf_line(line):
            _add_transaction(block, line)


def _is_pmt_inf_line(line: TxStatus) -> bool:
    return line.original_end_to_end_id is None and line.original_instr_id is None


def _add_transaction(parent: etree._Element, line: TxStatus) -> None:
    """One TxInfAndSts."""
    sub = etree.SubElement
    tx = sub(parent, _TAG["TxInfAndSts"])
    if line.original_instr_id:
        sub(tx, _TAG["OrgnlInstrId"]).text = line.original_instr_id
    if line.original_end_to_end_id:
        sub(tx, _TAG["OrgnlEndToEndId"]).text = line.original_end_to_end_id
    sub(tx, _TAG["TxSts"]).text = line.status
    _add_reason(tx, line.reason_code, line.reason_text)


def _add_reason(parent: etree._Element, code: str | None, reason: str | None) -> None:
    """StsRsnInf with Rsn/Cd (Prtry when not an ISO-length code) and AddtlInf split at 105."""
    if not code and not reason:
        return
    sub = etree.SubElement
    info = sub(parent, _TAG["StsRsnInf"])
    if code:
        kind = "Cd" if len(code) <= _REASON_CODE_MAX else "Prtry"
        sub(sub(info, _TAG["Rsn"]), _TAG[kind]).text = code
    for part in textwrap.wrap(nfc(reason or ""), _ADDTL_INF_MAX):
        sub(info, _TAG["AddtlInf"]).text = part


# --- Reading ------------------------------------------------------------------------------------


def read_pain002(root: etree._Element) -> StatusReport:
    """Read a pain.002 (.03 with national variants, .10, .12; .10 without a namespace too)."""
    root = document_of(root)
    ns = _namespace(root)
    body = find(root, ns, "CstmrPmtStsRpt")
    if body is None:
        raise InvalidMessage("pain.002: <CstmrPmtStsRpt> is missing")
    header = find(body, ns, "GrpHdr")
    original = find(body, ns, "OrgnlGrpInfAndSts")
    if header is None or original is None:
        raise InvalidMessage("pain.002: <GrpHdr> or <OrgnlGrpInfAndSts> is missing")
    group_status = text(original, ns, "GrpSts")
    group_code, group_text = _reason(original, ns)
    lines = [
        line
        for block in findall(body, ns, "OrgnlPmtInfAndSts")
        for line in _read_payment_information(block, ns, group_status)
    ]
    return StatusReport(
        msg_id=required_text(header, ns, "MsgId", "GrpHdr"),
        created_at=parse_datetime(required_text(header, ns, "CreDtTm", "GrpHdr"), "CreDtTm"),
        original_msg_id=required_text(original, ns, "OrgnlMsgId", "OrgnlGrpInfAndSts"),
        original_msg_name_id=required_text(original, ns, "OrgnlMsgNmId", "OrgnlGrpInfAndSts"),
        group_status=group_status,
        transactions=tuple(lines),
        group_reason_code=group_code,
        group_reason_text=group_text,
    )


def _namespace(root: etree._Element) -> str | None:
    """The namespace to read with: a pain.002 one, or none for a bare CstmrPmtStsRpt document."""
    if namespace_of(root) is None and find(root, None, "CstmrPmtStsRpt") is not None:
        return None
    kind = message_type(root)
    if kind not in _READABLE:
        raise InvalidMessage(f"expected a pain.002 status report, got {kind.name_id}")
    return namespace_of(root)


def _read_payment_information(
    block: etree._Element, ns: str | None, group_status: str | None
) -> list[TxStatus]:
    """The PmtInf-level line (when it has a status) and its transactions."""
    pmt_inf_id = required_text(block, ns, "OrgnlPmtInfId", "OrgnlPmtInfAndSts")
    status = text(block, ns, "PmtInfSts")
    lines: list[TxStatus] = []
    if status:
        code, reason = _reason(block, ns)
        lines.append(
            TxStatus(
                original_end_to_end_id=None,
                status=status,
                original_pmt_inf_id=pmt_inf_id,
                reason_code=code,
                reason_text=reason,
            )
        )
    inherited = status or group_status
    for tx in findall(block, ns, "TxInfAndSts"):
        lines.append(_read_transaction(tx, ns, pmt_inf_id, inherited))
    return lines


def _read_transaction(
    tx: etree._Element, ns: str | None, pmt_inf_id: str, inherited: str | None
) -> TxStatus:
    """One TxInfAndSts, its status inherited when it has none."""
    end_to_end_id = text(tx, ns, "OrgnlEndToEndId")
    status = text(tx, ns, "TxSts") or inherited
    if status is None:
        raise InvalidMessage(
            f"TxInfAndSts {end_to_end_id or '?'} in PmtInf {pmt_inf_id} has no status, "
            "and neither its PmtInf nor the group has one"
        )
    code, reason = _reason(tx, ns)
    return TxStatus(
        original_end_to_end_id=end_to_end_id,
        status=status,
        original_instr_id=text(tx, ns, "OrgnlInstrId"),
        original_pmt_inf_id=pmt_inf_id,
        reason_code=code,
        reason_text=reason,
    )


def _reason(element: etree._Element, ns: str | None) -> tuple[str | None, str | None]:
    """The first reason code (Cd, else Prtry) and all AddtlInf lines joined, of StsRsnInf."""
    infos = findall(element, ns, "StsRsnInf")
    codes = (code_or_proprietary(find(info, ns, "Rsn"), ns) for info in infos)
    code = next((c for c in codes if c), None)
    lines = [line for info in infos for line in texts(info, ns, "AddtlInf")]
    return code, " ".join(lines) or None
