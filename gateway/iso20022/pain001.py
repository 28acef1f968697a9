"""pain.001 credit transfer initiation: built for the bank (.09, .03), read back (bank simulator).

The builder writes each transaction as one line of escaped XML text and feeds the lines, in chunks,
to a fresh lxml parser: at 100,000 transactions a file this is about 2.5 times faster than one
`SubElement` call per element, keeps memory bounded, and gives every transaction its own line
number for error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from gateway.domain.money import MINOR_UNITS, Money
from gateway.domain.orders import Account, PaymentOrder, budget_line, nfc
from gateway.errors import InvalidMessage
from gateway.iso20022.model import (
    CreditTransfer,
    OutboundBatch,
    Pain001Content,
    PaymentGroup,
)
from gateway.iso20022.namespaces import MessageType, message_type, namespace_of
from gateway.iso20022.xml import (
    ISO_ACCOUNT_SCHEMES,
    find,
    findall,
    format_datetime,
    parse_amount,
    parse_datetime,
    read_account,
    required_text,
    text,
    texts,
)

_CHUNK_LINES = 2048
_SPECIAL = re.compile(r'[&<>"\r]')
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


@dataclass(frozen=True, slots=True)
class _Layout:
    """What differs between the pain.001 versions we write."""

    kind: MessageType
    bic: str
    dated_execution: bool


_LAYOUTS = {
    "pain.001.001.09": _Layout(MessageType.PAIN_001_001_09, "BICFI", dated_execution=True),
    "pain.001.001.03": _Layout(MessageType.PAIN_001_001_03, "BIC", dated_execution=False),
}


def build_pain001(batch: OutboundBatch, version: str = "pain.001.001.09") -> etree._Element:
    """Build the pain.001 document of one outbound batch (not yet validated or signed)."""
    layout = _LAYOUTS.get(version)
    if layout is None:
        raise InvalidMessage(
            f"pain.001 version {version!r} is not supported; use one of {sorted(_LAYOUTS)}"
        )
    if not batch.groups:
        raise InvalidMessage(f"batch {batch.msg_id}: no payment groups to send")
    totals = [_group_total(group) for group in batch.groups]
    feed = _Feed(layout.kind)
    feed.line(_header(batch, layout, totals), "GrpHdr")
    for group, total in zip(batch.groups, totals, strict=True):
        feed.line(_group_head(group, layout, total), f"PmtInf {group.pmt_inf_id}")
        for order in group.orders:
            feed.line(_transaction(order, layout), "order " + order.order_id)
        feed.line("</PmtInf>", f"PmtInf {group.pmt_inf_id}")
    feed.line("</CstmrCdtTrfInitn></Document>", "end of document")
    return feed.close()


def _group_total(group: PaymentGroup) -> Decimal:
    """The exact sum of a PmtInf; a group without orders is refused."""
    if not group.orders:
        raise InvalidMessage(f"PmtInf {group.pmt_inf_id}: no orders")
    return sum((order.money.amount for order in group.orders), Decimal(0))


def _header(batch: OutboundBatch, layout: _Layout, totals: list[Decimal]) -> str:
    """The document start and GrpHdr."""
    count = sum(len(group.orders) for group in batch.groups)
    created = format_datetime(batch.created_at, "GrpHdr/CreDtTm")
    return (
        f'<Document xmlns="{layout.kind.namespace}"><CstmrCdtTrfInitn><GrpHdr>'
        f"<MsgId>{_x(batch.msg_id)}</MsgId><CreDtTm>{created}</CreDtTm>"
        f"<NbOfTxs>{count}</NbOfTxs><CtrlSum>{sum(totals, Decimal(0)):f}</CtrlSum>"
        f"<InitgPty><Nm>{_x(batch.initiating_party)}</Nm></InitgPty></GrpHdr>"
    )


def _group_head(group: PaymentGroup, layout: _Layout, total: Decimal) -> str:
    """A PmtInf up to its first transaction."""
    execution = group.execution_date.isoformat()
    if layout.dated_execution:
        execution = f"<Dt>{execution}</Dt>"
    debtor = group.debtor
    return (
        f"<PmtInf><PmtInfId>{_x(group.pmt_inf_id)}</PmtInfId><PmtMtd>TRF</PmtMtd>"
        f"<BtchBookg>false</BtchBookg><NbOfTxs>{len(group.orders)}</NbOfTxs>"
        f"<CtrlSum>{total:f}</CtrlSum>"
        f"<PmtTpInf><CtgyPurp><Cd>{group.category.purpose}</Cd></CtgyPurp></PmtTpInf>"
        f"<ReqdExctnDt>{execution}</ReqdExctnDt><Dbtr><Nm>{_x(debtor.name)}</Nm></Dbtr>"
        f"<DbtrAcct>{_account(debtor.account)}</DbtrAcct>"
        f"<DbtrAgt><FinInstnId>{_bic(layout, debtor.agent_bic)}</FinInstnId></DbtrAgt>"
        "<ChrgBr>SLEV</ChrgBr>"
    )


def _transaction(order: PaymentOrder, layout: _Layout) -> str:
    """One CdtTrfTxInf."""
    money, creditor = order.money, order.creditor
    return (
        f"<CdtTrfTxInf><PmtId><InstrId>{_x(order.order_id)}</InstrId>"
        f"<EndToEndId>{_x(order.end_to_end_id)}</EndToEndId></PmtId>"
        f'<Amt><InstdAmt Ccy="{_x(money.currency)}">{_wire(money)}</InstdAmt></Amt>'
        f"<CdtrAgt><FinInstnId>{_bic(layout, creditor.agent_bic)}</FinInstnId></CdtrAgt>"
        f"<Cdtr><Nm>{_x(creditor.name)}</Nm></Cdtr><CdtrAcct>{_account(creditor.account)}</CdtrAcct>"
        f"<Purp><Cd>{order.category.purpose}</Cd></Purp>{_remittance(order)}</CdtTrfTxInf>"
    )


def _remittance(order: PaymentOrder) -> str:
    """RmtInf: the free text as Ustrd, the budget codes as Strd/AddtlRmtInf ('' when neither)."""
    budget = budget_line(order.budget)
    if not order.remittance and not budget:
        return ""
    unstructured = f"<Ustrd>{_x(order.remittance)}</Ustrd>" if order.remittance else ""
    structured = f"<Strd><AddtlRmtInf>{_x(budget)}</AddtlRmtInf></Strd>" if budget else ""
    return f"<RmtInf>{unstructured}{structured}</RmtInf>"


def _account(account: Account) -> str:
    """`Id/IBAN`, or `Id/Othr` with the scheme as `Cd` (ISO code) or `Prtry`."""
    if account.iban:
        return f"<Id><IBAN>{_x(account.iban)}</IBAN></Id>"
    if not account.number:
        raise InvalidMessage("account has neither an IBAN nor a number")
    scheme = ""
    if account.scheme:
        kind = "Cd" if account.scheme in ISO_ACCOUNT_SCHEMES else "Prtry"
        scheme = f"<SchmeNm><{kind}>{_x(account.scheme)}</{kind}></SchmeNm>"
    return f"<Id><Othr><Id>{_x(account.number)}</Id>{scheme}</Othr></Id>"


def _bic(layout: _Layout, bic: str) -> str:
    return f"<{layout.bic}>{_x(bic)}</{layout.bic}>"


def _x(value: str) -> str:
    """Text in NFC, escaped for XML content or a quoted attribute."""
    value = nfc(value)
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def _wire(money: Money) -> str:
    """The amount with exactly its currency's minor units; more decimals than allowed is refused."""
    wire = money.wire()
    point = wire.find(".")
    decimals = 0 if point < 0 else len(wire) - point - 1
    if decimals == MINOR_UNITS.get(money.currency, decimals):
        return wire
    return Money.parse(wire, money.currency).wire()


class _Feed:
    """Feeds built lines to a fresh parser in chunks, remembering what each line holds."""

    def __init__(self, kind: MessageType) -> None:
        self._kind = kind
        self._parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        self._pending: list[str] = []
        self._labels: list[str] = []

    def line(self, xml: str, label: str) -> None:
        """Add one line of XML; `label` names it in errors (an order id, "GrpHdr", ...)."""
        self._pending.append(xml)
        self._labels.append(label)
        if len(self._pending) >= _CHUNK_LINES:
            self._flush()

    def close(self) -> etree._Element:
        """Parse what is left and return the document root."""
        self._flush()
        try:
            root: etree._Element = self._parser.close()
        except etree.XMLSyntaxError as exc:
            raise self._error(exc) from None
        return root

    def _flush(self) -> None:
        if not self._pending:
            return
        chunk = "\n".join(self._pending) + "\n"
        self._pending.clear()
        try:
            self._parser.feed(chunk.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidMessage(f"{self._kind.name_id}: text is not valid Unicode") from None
        except etree.XMLSyntaxError as exc:
            raise self._error(exc) from None

    def _error(self, exc: etree.XMLSyntaxError) -> InvalidMessage:
        """Name the order or part whose text could not be written as XML."""
        line = exc.lineno or 0
        label = self._labels[line - 1] if 0 < line <= len(self._labels) else "?"
        return InvalidMessage(f"{self._kind.name_id}: cannot write {label}: {exc.msg}")


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
        transfer for pmt in findall(initiation, ns, "PmtInf") for transfer in _read_group(pmt, ns)
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
    if amount is None:
        amount = find(tx, ns, "Amt/EqvtAmt/Amt")
    if amount is None or not amount.text:
        raise InvalidMessage(f"{where}: <Amt/InstdAmt> (or <Amt/EqvtAmt/Amt>) is missing")
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
