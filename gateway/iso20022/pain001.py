"""pain.001 customer credit transfer initiation: built for the bank (.09, .03), read back (bank sim).

The builder writes straight into lxml with precomputed tags: at 100,000 transactions a file, every
call per transaction counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from gateway.domain.money import MINOR_UNITS, Money
from gateway.domain.orders import Budget, PaymentOrder, nfc
from gateway.errors import InvalidMessage
from gateway.iso20022.model import (
    CreditTransfer,
    OutboundBatch,
    PaymentGroup,
    Pain001Content,
)
from gateway.iso20022.namespaces import MessageType, message_type, namespace_of
from gateway.iso20022.xml import (
    ACCOUNT_TAGS,
    add_account,
    find,
    findall,
    format_datetime,
    parse_amount,
    parse_datetime,
    read_account,
    required_text,
    tags,
    text,
    texts,
)

_NAMES = (
    "Document",
    "CstmrCdtTrfInitn",
    "GrpHdr",
    "MsgId",
    "CreDtTm",
    "NbOfTxs",
    "CtrlSum",
    "InitgPty",
    "Nm",
    "PmtInf",
    "PmtInfId",
    "PmtMtd",
    "BtchBookg",
    "PmtTpInf",
    "CtgyPurp",
    "ReqdExctnDt",
    "Dt",
    "Dbtr",
    "DbtrAcct",
    "DbtrAgt",
    "FinInstnId",
    "BICFI",
    "BIC",
    "ChrgBr",
    "CdtTrfTxInf",
    "PmtId",
    "InstrId",
    "EndToEndId",
    "Amt",
    "InstdAmt",
    "CdtrAgt",
    "Cdtr",
    "CdtrAcct",
    "Purp",
    "RmtInf",
    "Ustrd",
    "Strd",
    "AddtlRmtInf",
    *ACCOUNT_TAGS,
)


@dataclass(frozen=True, slots=True)
class _Layout:
    """What differs between the pain.001 versions we write."""

    kind: MessageType
    tag: dict[str, str]
    bic: str
    dated_execution: bool


def _layout(kind: MessageType, bic: str, dated_execution: bool) -> _Layout:
    return _Layout(kind, tags(kind.namespace, _NAMES), bic, dated_execution)


_LAYOUTS = {
    "pain.001.001.09": _layout(MessageType.PAIN_001_001_09, "BICFI", dated_execution=True),
    "pain.001.001.03": _layout(MessageType.PAIN_001_001_03, "BIC", dated_execution=False),
}


def build_pain001(batch: OutboundBatch, version: str = "pain.001.001.09") -> etree._Element:
    """Build the pain.001 document of one outbound batch (not yet validated or signed)."""
    layout = _LAYOUTS.get(version)
    if layout is None:
        raise InvalidMessage(f"pain.001 version {version!r} is not supported; use one of {sorted(_LAYOUTS)}")
    if not batch.groups:
        raise InvalidMessage(f"batch {batch.msg_id}: no payment groups to send")
    tag, sub = layout.tag, etree.SubElement
    root = etree.Element(tag["Document"], nsmap={None: layout.kind.namespace})
    initiation = sub(root, tag["CstmrCdtTrfInitn"])
    header = sub(initiation, tag["GrpHdr"])
    sub(header, tag["MsgId"]).text = batch.msg_id
    sub(header, tag["CreDtTm"]).text = format_datetime(batch.created_at, "GrpHdr/CreDtTm")
    count_el, sum_el = sub(header, tag["NbOfTxs"]), sub(header, tag["CtrlSum"])
    sub(sub(header, tag["InitgPty"]), tag["Nm"]).text = nfc(batch.initiating_party)
    count, total = 0, Decimal(0)
    for group in batch.groups:
        group_count, group_total = _add_group(initiation, layout, group)
        count, total = count + group_count, total + group_total
    count_el.text, sum_el.text = str(count), format(total, "f")
    return root


def _add_group(parent: etree._Element, layout: _Layout, group: PaymentGroup) -> tuple[int, Decimal]:
    """Write one PmtInf and its transactions; return its count and exact sum."""
    if not group.orders:
        raise InvalidMessage(f"PmtInf {group.pmt_inf_id}: no orders")
    tag, sub = layout.tag, etree.SubElement
    pmt = sub(parent, tag["PmtInf"])
    sub(pmt, tag["PmtInfId"]).text = group.pmt_inf_id
    sub(pmt, tag["PmtMtd"]).text = "TRF"
    sub(pmt, tag["BtchBookg"]).text = "false"
    count_el, sum_el = sub(pmt, tag["NbOfTxs"]), sub(pmt, tag["CtrlSum"])
    type_info = sub(pmt, tag["PmtTpInf"])
    sub(sub(type_info, tag["CtgyPurp"]), tag["Cd"]).text = group.category.purpose
    execution = sub(pmt, tag["ReqdExctnDt"])
    if layout.dated_execution:
        execution = sub(execution, tag["Dt"])
    execution.text = group.execution_date.isoformat()
    sub(sub(pmt, tag["Dbtr"]), tag["Nm"]).text = nfc(group.debtor.name)
    add_account(sub(pmt, tag["DbtrAcct"]), tag, group.debtor.account)
    agent = sub(sub(pmt, tag["DbtrAgt"]), tag["FinInstnId"])
    sub(agent, tag[layout.bic]).text = group.debtor.agent_bic
    sub(pmt, tag["ChrgBr"]).text = "SLEV"
    total = Decimal(0)
    for order in group.orders:
        _add_transaction(pmt, layout, order)
        total += order.money.amount
    count_el.text, sum_el.text = str(len(group.orders)), format(total, "f")
    return len(group.orders), total


def _add_transaction(pmt: etree._Element, layout: _Layout, order: PaymentOrder) -> None:
    """Write one CdtTrfTxInf."""
    tag, sub = layout.tag, etree.SubElement
    tx = sub(pmt, tag["CdtTrfTxInf"])
    ids = sub(tx, tag["PmtId"])
    sub(ids, tag["InstrId"]).text = order.order_id
    sub(ids, tag["EndToEndId"]).text = order.end_to_end_id
    money = order.money
    sub(sub(tx, tag["Amt"]), tag["InstdAmt"], Ccy=money.currency).text = _wire(money)
    creditor = order.creditor
    sub(sub(sub(tx, tag["CdtrAgt"]), tag["FinInstnId"]), tag[layout.bic]).text = creditor.agent_bic
    sub(sub(tx, tag["Cdtr"]), tag["Nm"]).text = nfc(creditor.name)
    add_account(sub(tx, tag["CdtrAcct"]), tag, creditor.account)
    sub(sub(tx, tag["Purp"]), tag["Cd"]).text = order.category.purpose
    remittance = nfc(order.remittance) if order.remittance else ""
    budget = _budget_line(order.budget)
    if remittance or budget:
        info = sub(tx, tag["RmtInf"])
        if remittance:
            sub(info, tag["Ustrd"]).text = remittance
        if budget:
            sub(sub(info, tag["Strd"]), tag["AddtlRmtInf"]).text = budget


def _wire(money: Money) -> str:
    """The amount with exactly its currency's minor units; more decimals than allowed is refused."""
    wire = money.wire()
    point = wire.find(".")
    decimals = 0 if point < 0 else len(wire) - point - 1
    if decimals == MINOR_UNITS.get(money.currency, decimals):
        return wire
    return Money.parse(wire, money.currency).wire()


def _budget_line(budget: Budget | None) -> str:
    """Budget codes as one line, e.g. "CHAPTER:622 ECON:7001 TREAS:1234" ('' when none)."""
    if budget is None:
        return ""
    parts = (
        ("CHAPTER", budget.chapter),
        ("ECON", budget.economic_code),
        ("TREAS", budget.treasury_code),
    )
    return " ".join(f"{label}:{nfc(value)}" for label, value in parts if value)


# --- Reading ------------------------------------------------------------------------------------


def read_pain001(root: etree._Element) -> Pain001Content:
    """Read a pain.001 (.09 or .03, national variants of .03 included) as a bank would."""
    kind = message_type(root)
    if kind.family != "pain.001":
        raise InvalidMessage(f"expected a pain.001, got {kind.name_id}")
    ns = namespace_of(root)
    initiation = find(root, ns, "CstmrCdtTrfInitn")
    if initiation is None:
        raise InvalidMessage(f"{kind.name_id}: <CstmrCdtTrfInitn> is missing")
    header = find(initiation, ns, "GrpHdr")
    if header is None:
        raise InvalidMessage(f"{kind.name_id}: <GrpHdr> is missing")
    count_text = required_text(header, ns, "NbOfTxs", "GrpHdr")
    ctrl_sum = text(header, ns, "CtrlSum")
    transfers = [
        transfer
        for pmt in findall(initiation, ns, "PmtInf")
        for transfer in _read_group(pmt, ns)
    ]
    return Pain001Content(
        msg_id=required_text(header, ns, "MsgId", "GrpHdr"),
        created_at=parse_datetime(required_text(header, ns, "CreDtTm", "GrpHdr"), "CreDtTm"),
        nb_of_txs=_count(count_text),
        ctrl_sum=parse_amount(ctrl_sum, "GrpHdr/CtrlSum") if ctrl_sum else None,
        initiating_party=text(header, ns, "InitgPty/Nm"),
        transfers=tuple(transfers),
    )


def _count(value: str) -> int:
    if not value.isdigit():
        raise InvalidMessage(f"GrpHdr/NbOfTxs {value!r} is not a number")
    return int(value)


def _read_group(pmt: etree._Element, ns: str | None) -> list[CreditTransfer]:
    """The transfers of one PmtInf."""
    pmt_inf_id = required_text(pmt, ns, "PmtInfId", "PmtInf")
    debtor_account = read_account(find(pmt, ns, "DbtrAcct"), ns) or ""
    return [
        _read_transaction(tx, ns, pmt_inf_id, debtor_account)
        for tx in findall(pmt, ns, "CdtTrfTxInf")
    ]


def _read_transaction(
    tx: etree._Element, ns: str | None, pmt_inf_id: str, debtor_account: str
) -> CreditTransfer:
    """One CdtTrfTxInf."""
    end_to_end_id = required_text(tx, ns, "PmtId/EndToEndId", f"PmtInf {pmt_inf_id}")
    where = f"transaction {end_to_end_id}"
    amount = find(tx, ns, "Amt/InstdAmt")
    if amount is None or not amount.text:
        raise InvalidMessage(f"{where}: <Amt/InstdAmt> is missing")
    currency = amount.get("Ccy")
    if not currency:
        raise InvalidMessage(f"{where}: <InstdAmt> has no Ccy")
    remittance = texts(tx, ns, "RmtInf/Ustrd")
    agent = find(tx, ns, "CdtrAgt/FinInstnId")
    return CreditTransfer(
        pmt_inf_id=pmt_inf_id,
        instr_id=text(tx, ns, "PmtId/InstrId"),
        end_to_end_id=end_to_end_id,
        amount=parse_amount(amount.text, f"{where} amount"),
        currency=currency,
        creditor_name=text(tx, ns, "Cdtr/Nm") or "",
        creditor_account=read_account(find(tx, ns, "CdtrAcct"), ns) or "",
        creditor_agent_bic=text(agent, ns, "BICFI") or text(agent, ns, "BIC"),
        debtor_account=debtor_account,
        purpose=text(tx, ns, "Purp/Cd"),
        remittance=" ".join(remittance) if remittance else None,
    )
