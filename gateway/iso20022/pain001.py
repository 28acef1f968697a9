"""pain.001 credit transfer initiation: built for the bank (.09, .03), read back (bank simulator).

The builder writes the whole document as text and parses it once: at 100,000 transactions this
is several times faster than one `SubElement` call per element. A text that cannot be written as
XML is named by its order: the text is parsed again one transaction a line, and each line
remembers its order id. Per-transaction work is kept to string formatting; agents, accounts and
purposes repeat across a run and are formatted once each.

The text is written in its exclusive canonical form (C14N): no declaration, no whitespace between
elements, no empty-element tags, text escaped as canonicalisation escapes it (`&`, `<`, `>`,
carriage return: `gateway.iso20022.xmltext.escape`). `write_pain001` returns these bytes, so an
enveloped signature can digest them and the file can be them, with no pass over a tree
(`gateway.signing.xmldsig.sign_enveloped_text`); the tree is parsed from them for the XSD check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from lxml import etree

from gateway.domain.money import MINOR_UNITS, Money
from gateway.domain.orders import Account, Party, PaymentOrder, budget_line
from gateway.domain.text import Charset, check_identifier, fit
from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.apphdr import document_of
from gateway.iso20022.model import (
    CreditTransfer,
    OutboundBatch,
    Pain001Content,
    PaymentGroup,
)
from gateway.iso20022.namespaces import MessageType, message_type, namespace_of
from gateway.iso20022.xml import (
    ISO_ACCOUNT_SCHEMES,
    account_key,
    element_text,
    find,
    findall,
    format_datetime,
    parse_amount,
    parse_currency,
    parse_datetime,
    read_account,
    required_text,
    shown,
    tags,
    text,
)
from gateway.iso20022.xmltext import escape, parse_own_bytes

# ExternalClearingSystemIdentification1Code values written as `Cd`; any other system (CITAD,
# NAPAS) is written as `Prtry`.
ISO_CLEARING_SYSTEMS = frozenset(
    {"ATBLZ", "AUBSB", "CACPA", "CHBCC", "CHSIC", "CNAPS", "DEBLZ", "ESNCC", "GBDSC", "HKNCC"}
    | {"INFSC", "ITNCC", "JPZGN", "NZNCC", "PLKNR", "PTNCC", "RUCBC", "SESBA", "SGIBG", "USABA"}
)
ACCOUNT_STYLES = ("auto", "iban", "other")
_EXPONENTS = {currency: -units for currency, units in MINOR_UNITS.items()}
_TEXT_CACHE = 200_000
_NOT_ID = re.compile(r"[^A-Za-z0-9/\-?:().,'+ \n]")


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
VERSIONS = tuple(_LAYOUTS)


def build_pain001(
    batch: OutboundBatch,
    version: str = "pain.001.001.09",
    *,
    charset: str = "utf8",
    account_id: str = "auto",
) -> etree._Element:
    """Build the pain.001 document of one outbound batch (not yet validated or signed).

    `charset` and `account_id` are the partner's policies (see `gateway.profile.messages`).
    """
    return write_pain001(batch, version, charset=charset, account_id=account_id).parse()


# A file of more transactions than this is XSD-checked in pieces of this many, side by side.
CHECK_PIECE = 5_000
# The elements a pain.001 is cut between for that check (`xsd.splittable`).
_REPEATED = ("PmtInf", "CdtTrfTxInf")
# Transactions written between two looks for pieces ready to be checked.
_TOLD_EVERY = 1_000
_END = "</CstmrCdtTrfInitn></Document>"


@dataclass(frozen=True, slots=True)
class _Piece:
    """A run of a written pain.001's text made a document of its own: the text from `start` to
    `stop`, after `opening` (the document's start, GrpHdr and the PmtInf it continues) and
    before `closing` (the end tags of what it leaves open)."""

    opening: bytes
    start: int
    stop: int
    closing: bytes


@dataclass(frozen=True, slots=True)
class WrittenPain001:
    """A pain.001 written as the bytes of its exclusive canonical form (C14N, UTF-8): a
    well-formed file without its declaration, not yet parsed, validated or signed."""

    canonical: bytes
    kind: MessageType
    batch: OutboundBatch
    layout: tuple[str, str, str]  # version, charset and account_id policies
    # For a large file, its text in pieces of `CHECK_PIECE` transactions (none: checked whole).
    pieces: tuple[_Piece, ...] = ()
    # The verdict of the pieces' check when it ran while the text was written.
    verdict: Callable[[], bool] | None = field(default=None, compare=False, repr=False)

    def parse(self) -> etree._Element:
        """The document's tree; text that is not well-formed is refused naming the order (or
        part) where it fails."""
        try:
            root: etree._Element = parse_own_bytes(self.canonical)
        except etree.XMLSyntaxError:
            # Rare: written again, one part a line, the error's line names the part.
            raise _located(_Writer(*self.layout), self.batch) from None
        return root

    def check(self) -> None:
        """The XSD validation of the text (InvalidMessage naming the fault when it fails).

        A large file is checked in pieces side by side on the machine's cores (from the time
        they are written, with `write_pain001(check=True)`), each piece the document with some
        of its transactions (the same bytes, between the same GrpHdr and PmtInf start and the
        end tags): under an XSD where PmtInf and CdtTrfTxInf repeat without bound and nothing
        ties one element to another (`xsd.splittable`, read from the XSD in use), the file is
        valid exactly when every piece is. Any doubt (a piece failing, or an XSD not so made)
        and the whole tree is parsed and validated, which names the fault as it always has.
        """
        if self.verdict is not None:
            valid = self.verdict()
        elif self.pieces and xsd.splittable(self.kind, _REPEATED):
            valid = xsd.all_valid(self.kind, [self._piece(p) for p in self.pieces], parse_own_bytes)
        else:
            valid = False
        if not valid:
            xsd.validate(self.parse())

    def _piece(self, piece: _Piece) -> Callable[[], bytes]:
        text = memoryview(self.canonical)[piece.start : piece.stop]
        return lambda: b"".join((piece.opening, text, piece.closing))


def write_pain001(
    batch: OutboundBatch,
    version: str = "pain.001.001.09",
    *,
    charset: str = "utf8",
    account_id: str = "auto",
    piece: int = CHECK_PIECE,
    check: bool = False,
) -> WrittenPain001:
    """The pain.001 of one outbound batch as canonical text; `parse` gives its tree, `check`
    validates it (in pieces of `piece` transactions when it has more). With check=True the
    pieces are checked from the time each is written, on the other cores, for `check` to
    take the verdict."""
    writer = _Writer(version, charset, account_id)
    cuts = _cuts(batch, piece)
    checking = (
        xsd.PieceCheck(writer.kind, parse_own_bytes)
        if check and cuts and xsd.splittable(writer.kind, _REPEATED)
        else None
    )
    pieces = _Pieces(cuts, writer.kind, checking)
    try:
        parts = writer.document(batch, pieces.take if checking else None)
        pieces.take(parts, final=True)
        if checking is not None:
            checking.close()
    except BaseException:
        if checking is not None:
            checking.abandon()
        raise
    del parts
    runs = pieces.runs
    data = runs[0] if len(runs) == 1 else b"".join(runs)
    verdict = checking.verdict if checking is not None else None
    layout = (version, charset, account_id)
    return WrittenPain001(data, writer.kind, batch, layout, tuple(pieces.pieces), verdict)


@dataclass(frozen=True, slots=True)
class _Cut:
    """Where the text is cut for the piecewise check: before part `index` of
    `_Writer.document`; `head` is the part of the PmtInf head the piece after it continues
    (0: the cut is before a group's head)."""

    index: int
    head: int


def _cuts(batch: OutboundBatch, size: int) -> list[_Cut]:
    """Cuts every `size` transactions (none for a file of `size` or fewer). The parts of
    `_Writer.document` are the start and GrpHdr, then for each group its head, one part a
    transaction and its end tag, then the document's end. A cut before a group's first
    transaction is made before its head instead, so that every piece's PmtInf has one."""
    total = sum(len(group.orders) for group in batch.groups)
    if size < 1 or total <= size:
        return []
    cuts: list[_Cut] = []
    index, count = 1, 0  # the group's head part; transactions before it
    for group in batch.groups:
        for number in range(len(group.orders)):
            if count and count % size == 0:
                cuts.append(_Cut(index + 1 + number, index) if number else _Cut(index, 0))
            count += 1
        index += len(group.orders) + 2
    return cuts


class _Pieces:
    """The text encoded a run between two cuts at a time, as the writer goes: each run is the
    body of a piece (when there are cuts), handed to the check as soon as it is written."""

    def __init__(self, cuts: list[_Cut], kind: MessageType, check: xsd.PieceCheck | None) -> None:
        self._cuts = cuts
        self._kind = kind
        self._check = check
        self._offset = 0
        self.runs: list[bytes] = []
        self.pieces: list[_Piece] = []

    def take(self, parts: list[str], final: bool = False) -> None:
        """Encode the runs that the parts written so far complete (the last one when final)."""
        cuts = self._cuts
        while len(self.runs) <= len(cuts):
            number = len(self.runs)
            start = cuts[number - 1].index if number else 0
            stop = cuts[number].index if number < len(cuts) else len(parts)
            if stop > len(parts) or (number == len(cuts) and not final):
                return
            run = _encoded("".join(parts[start:stop]), self._kind)
            self.runs.append(run)
            if cuts:
                self._piece(parts, number, run)
            self._offset += len(run)

    def _piece(self, parts: list[str], number: int, run: bytes) -> None:
        cuts = self._cuts
        opening, closing = "", ""
        if number:
            head = cuts[number - 1].head
            opening = parts[0] + (parts[head] if head else "")
        if number < len(cuts):
            closing = ("</PmtInf>" if cuts[number].head else "") + _END
        piece = _Piece(opening.encode(), self._offset, self._offset + len(run), closing.encode())
        self.pieces.append(piece)
        if self._check is not None:
            self._check.add(lambda: b"".join((piece.opening, run, piece.closing)))


class _Writer:
    """Writes one pain.001 as text under a partner's version, charset and account policies."""

    def __init__(self, version: str, charset: str, account_id: str) -> None:
        layout = _LAYOUTS.get(version)
        if layout is None:
            raise InvalidMessage(
                f"pain.001 version {version!r} is not supported; use one of {sorted(_LAYOUTS)}"
            )
        if account_id not in ACCOUNT_STYLES:
            raise InvalidMessage(f"account_id policy {account_id!r} is not one of {ACCOUNT_STYLES}")
        try:
            self._charset = Charset(charset)
        except ValueError:
            raise InvalidMessage(f"charset {charset!r} is not utf8 or latin") from None
        self._layout = layout
        self._account_id = account_id
        self._agents: dict[tuple[str, object], str] = {}
        self._accounts: dict[Account, str] = {}
        self._texts: dict[str, str] = {}

    @property
    def kind(self) -> MessageType:
        """The message version written."""
        return self._layout.kind

    def document(
        self, batch: OutboundBatch, written: Callable[[list[str]], None] | None = None
    ) -> list[str]:
        """The document's text in parts, one transaction a part (see `labels`); `written`, when
        given, is told the parts so far after every `_TOLD_EVERY` transactions of a group."""
        if not batch.groups:
            raise InvalidMessage(f"batch {batch.msg_id}: no payment groups to send")
        check_identifier(batch.msg_id, "MsgId")
        totals = [_group_total(group) for group in batch.groups]
        lines = [self._header(batch, totals)]
        seen_groups: set[str] = set()
        seen_orders: set[str] = set()
        transaction = self._transaction
        for group, total in zip(batch.groups, totals, strict=True):
            check_identifier(group.pmt_inf_id, "PmtInfId")
            if group.pmt_inf_id in seen_groups:
                raise InvalidMessage(f"PmtInfId {group.pmt_inf_id} appears twice in one file")
            seen_groups.add(group.pmt_inf_id)
            ids = [order.order_id for order in group.orders]
            _check_order_ids(ids, seen_orders)
            lines.append(self._group_head(group, total))
            if written is None:
                lines.extend(map(transaction, group.orders))
            else:
                orders = group.orders
                for first in range(0, len(orders), _TOLD_EVERY):
                    lines.extend(map(transaction, orders[first : first + _TOLD_EVERY]))
                    written(lines)
            lines.append("</PmtInf>")
        lines.append(_END)
        return lines

    @staticmethod
    def labels(batch: OutboundBatch) -> list[str]:
        """What each part of `document` holds, for error messages."""
        labels = ["GrpHdr"]
        for group in batch.groups:
            labels.append(f"PmtInf {group.pmt_inf_id}")
            labels.extend(f"order {order.order_id}" for order in group.orders)
            labels.append(f"PmtInf {group.pmt_inf_id}")
        labels.append("end of document")
        return labels

    def _header(self, batch: OutboundBatch, totals: list[Decimal]) -> str:
        """The document start and GrpHdr."""
        count = sum(len(group.orders) for group in batch.groups)
        created = format_datetime(batch.created_at, "GrpHdr/CreDtTm")
        party = self._text(batch.initiating_party, "GrpHdr", "InitgPty/Nm")
        return (
            f'<Document xmlns="{self._layout.kind.namespace}"><CstmrCdtTrfInitn><GrpHdr>'
            f"<MsgId>{escape(batch.msg_id)}</MsgId><CreDtTm>{created}</CreDtTm>"
            f"<NbOfTxs>{count}</NbOfTxs><CtrlSum>{sum(totals, Decimal(0)):f}</CtrlSum>"
            f"<InitgPty><Nm>{party}</Nm></InitgPty></GrpHdr>"
        )

    def _group_head(self, group: PaymentGroup, total: Decimal) -> str:
        """A PmtInf up to its first transaction."""
        execution = group.execution_date.isoformat()
        if self._layout.dated_execution:
            execution = f"<Dt>{execution}</Dt>"
        debtor = group.debtor
        where = f"PmtInf {group.pmt_inf_id} debtor"
        return (
            f"<PmtInf><PmtInfId>{escape(group.pmt_inf_id)}</PmtInfId><PmtMtd>TRF</PmtMtd>"
            f"<BtchBookg>false</BtchBookg><NbOfTxs>{len(group.orders)}</NbOfTxs>"
            f"<CtrlSum>{total:f}</CtrlSum>"
            f"<PmtTpInf><CtgyPurp><Cd>{group.category.purpose}</Cd></CtgyPurp></PmtTpInf>"
            f"<ReqdExctnDt>{execution}</ReqdExctnDt>"
            f"<Dbtr><Nm>{self._text(debtor.name, where, 'name')}</Nm></Dbtr>"
            f"<DbtrAcct>{self._account(debtor.account, where)}</DbtrAcct>"
            f"<DbtrAgt>{self._agent(debtor)}</DbtrAgt><ChrgBr>SLEV</ChrgBr>"
        )

    def _transaction(self, order: PaymentOrder) -> str:
        """One CdtTrfTxInf (its ids already checked: restricted set, so nothing to escape)."""
        money, creditor, order_id = order.money, order.creditor, order.order_id
        account = creditor.account
        written_account = (
            f"<Id><Othr><Id>{escape(account.number)}</Id>{self._scheme(account.scheme)}</Othr></Id>"
            if account.number and not account.iban and self._account_id != "iban"
            else _account(account, self._account_id, f"order {order_id}")
        )
        amount = money.amount
        # At exactly the currency's exponent (0 or negative) str() writes the plain digits;
        # any other exponent goes through _wire, which refuses excess decimals, never rounds.
        if amount.as_tuple().exponent == _EXPONENTS.get(money.currency):
            wire = str(amount)
        else:
            wire = _wire(money, f"order {order_id}")
        text = self._text
        owner = f"order {order_id}"
        return (
            f"<CdtTrfTxInf><PmtId><InstrId>{order_id}</InstrId>"
            f"<EndToEndId>{order_id}</EndToEndId></PmtId>"
            f'<Amt><InstdAmt Ccy="{money.currency}">{wire}</InstdAmt></Amt>'
            f"<CdtrAgt>{self._agent(creditor)}</CdtrAgt>"
            f"<Cdtr><Nm>{text(creditor.name, owner, 'creditor name')}</Nm></Cdtr>"
            f"<CdtrAcct>{written_account}</CdtrAcct>"
            f"<Purp><Cd>{order.category.purpose}</Cd></Purp>{self._remittance(order, owner)}"
            "</CdtTrfTxInf>"
        )

    def _remittance(self, order: PaymentOrder, owner: str) -> str:
        """RmtInf: free text as Ustrd (≤140), budget codes as Strd/AddtlRmtInf ('' when neither)."""
        budget = budget_line(order.budget) if order.budget else ""
        if not order.remittance and not budget:
            return ""
        unstructured = (
            f"<Ustrd>{self._text(order.remittance, owner, 'remittance')}</Ustrd>"
            if order.remittance
            else ""
        )
        structured = (
            f"<Strd><AddtlRmtInf>{self._text(budget, owner, 'budget')}</AddtlRmtInf></Strd>"
            if budget
            else ""
        )
        return f"<RmtInf>{unstructured}{structured}</RmtInf>"

    def _text(self, value: str, owner: str, field: str, max_length: int = 140) -> str:
        """Text under the charset policy, length-checked after normalisation, escaped.

        A run repeats many texts (the remittance, the debtor): each is normalised once.
        """
        written = self._texts.get(value)
        if written is None:
            try:
                written = escape(fit(value, self._charset, field, max_length))
            except InvalidMessage as exc:
                raise InvalidMessage(f"{owner} {exc}") from None
            if len(self._texts) < _TEXT_CACHE:
                self._texts[value] = written
        return written

    def _scheme(self, scheme: str | None) -> str:
        """`SchmeNm` of a domestic account: `Cd` for an ISO scheme, `Prtry` otherwise."""
        if not scheme:
            return ""
        kind = "Cd" if scheme in ISO_ACCOUNT_SCHEMES else "Prtry"
        return f"<SchmeNm><{kind}>{escape(scheme)}</{kind}></SchmeNm>"

    def _account(self, account: Account, where: str) -> str:
        """`Id/IBAN`, or `Id/Othr` with the scheme as `Cd` (ISO code) or `Prtry`, per policy."""
        written = self._accounts.get(account)
        if written is None:
            written = _account(account, self._account_id, where)
            self._accounts[account] = written
        return written

    def _agent(self, party: Party) -> str:
        """FinInstnId by BIC and/or clearing-system member id."""
        key = (party.agent_bic, party.agent_member)
        written = self._agents.get(key)
        if written is None:
            written = _agent(self._layout, party)
            self._agents[key] = written
        return written


def _check_order_ids(ids: list[str], seen: set[str]) -> None:
    """Every order id valid (1-35, restricted set, no outer spaces) and new to this file.

    Checked over the whole group at once; the slow path runs only to name the culprit.
    """
    joined = "\n".join(ids)
    clean = (
        not _NOT_ID.search(joined)
        and max(map(len, ids)) <= 35
        and min(map(len, ids)) >= 1
        and " \n" not in joined
        and "\n " not in joined
        and joined == joined.strip(" ")
    )
    if not clean:
        for order_id in ids:
            check_identifier(order_id, "order id (InstrId/EndToEndId)")
    group = set(ids)
    if len(group) != len(ids) or not seen.isdisjoint(group):
        counted = set(seen)
        for order_id in ids:
            if order_id in counted:
                raise InvalidMessage(f"order {order_id} appears twice in one file")
            counted.add(order_id)
    seen.update(group)


def _group_total(group: PaymentGroup) -> Decimal:
    """The exact sum of a PmtInf; a group without orders, or of mixed currencies, is refused."""
    if not group.orders:
        raise InvalidMessage(f"PmtInf {group.pmt_inf_id}: no orders")
    return sum((order.money.amount for order in group.orders), Decimal(0))


def _account(account: Account, style: str, where: str) -> str:
    if account.iban and style != "other":
        return f"<Id><IBAN>{escape(account.iban)}</IBAN></Id>"
    if style == "iban":
        raise InvalidMessage(
            f"{where}: account {account.key} is not an IBAN, and this partner takes only IBANs"
        )
    number = account.iban or account.number
    if not number:
        raise InvalidMessage(f"{where}: account has neither an IBAN nor a number")
    scheme = ""
    if account.scheme and not account.iban:
        kind = "Cd" if account.scheme in ISO_ACCOUNT_SCHEMES else "Prtry"
        scheme = f"<SchmeNm><{kind}>{escape(account.scheme)}</{kind}></SchmeNm>"
    return f"<Id><Othr><Id>{escape(number)}</Id>{scheme}</Othr></Id>"


def _agent(layout: _Layout, party: Party) -> str:
    parts = []
    if party.agent_bic:
        parts.append(f"<{layout.bic}>{escape(party.agent_bic)}</{layout.bic}>")
    member = party.agent_member
    if member is not None:
        kind = "Cd" if member.system in ISO_CLEARING_SYSTEMS else "Prtry"
        parts.append(
            f"<ClrSysMmbId><ClrSysId><{kind}>{escape(member.system)}</{kind}></ClrSysId>"
            f"<MmbId>{escape(member.member_id)}</MmbId></ClrSysMmbId>"
        )
    if not parts:
        raise InvalidMessage(f"{party.name}: the bank has neither a BIC nor a clearing member id")
    return f"<FinInstnId>{''.join(parts)}</FinInstnId>"


def _wire(money: Money, where: str) -> str:
    """The amount with exactly its currency's minor units; more decimals than allowed is refused."""
    allowed = MINOR_UNITS.get(money.currency)
    if allowed is None:
        raise InvalidMessage(f"{where}: currency {money.currency!r} is not supported")
    exponent = money.amount.as_tuple().exponent
    if exponent == -allowed:
        return format(money.amount, "f")
    try:
        return Money.parse(format(money.amount, "f"), money.currency).wire()
    except InvalidMessage as exc:
        raise InvalidMessage(f"{where}: {exc}") from None


def _encoded(text: str, kind: MessageType) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessage(f"{kind.name_id}: text is not valid Unicode") from None


def _located(writer: _Writer, batch: OutboundBatch) -> InvalidMessage:
    """The error of a text that does not parse, naming the order (or part) where it is.

    The parts are parsed again one a line, a line break inside a part written as a character
    reference, so that the error's line is the part's.
    """
    parts = (part.replace("\n", "&#10;") for part in writer.document(batch))
    try:
        parse_own_bytes(_encoded("\n".join(parts), writer.kind))
    except etree.XMLSyntaxError as exc:
        labels = writer.labels(batch)
        line = exc.lineno or 0
        label = labels[line - 1] if 0 < line <= len(labels) else "?"
        message = re.sub(r", line \d+, column \d+$", "", str(exc.msg))
        return InvalidMessage(f"{writer.kind.name_id}: cannot write {label}: {message}")
    return InvalidMessage(f"{writer.kind.name_id}: the written text is not well-formed")


# --- Reading ------------------------------------------------------------------------------------


def read_pain001(root: etree._Element) -> Pain001Content:
    """Read a pain.001 (.09 or .03, national variants of .03 included) as a bank would."""
    root = document_of(root)
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
        ctrl_sum=(
            parse_amount(ctrl_sum, "GrpHdr/CtrlSum", fraction_digits=17) if ctrl_sum else None
        ),
        initiating_party=text(header, ns, "InitgPty/Nm"),
        transfers=tuple(transfers),
    )


def _count(value: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 15):
        raise InvalidMessage(f"GrpHdr/NbOfTxs {shown(value)} is not a number of up to 15 digits")
    return int(value)


def _read_group(pmt: etree._Element, ns: str | None) -> list[CreditTransfer]:
    """The transfers of one PmtInf."""
    pmt_inf_id = required_text(pmt, ns, "PmtInfId", "PmtInf")
    debtor_account = read_account(find(pmt, ns, "DbtrAcct"), ns) or ""
    read = _transaction_reader(ns)
    return [read(tx, pmt_inf_id, debtor_account) for tx in findall(pmt, ns, "CdtTrfTxInf")]


_TRANSACTION_TAGS = (
    "PmtId",
    "EndToEndId",
    "InstrId",
    "Amt",
    "InstdAmt",
    "EqvtAmt",
    "RmtInf",
    "Ustrd",
    "CdtrAgt",
    "FinInstnId",
    "BICFI",
    "BIC",
    "Cdtr",
    "Nm",
    "CdtrAcct",
    "Id",
    "IBAN",
    "Othr",
    "SchmeNm",
    "Cd",
    "Prtry",
    "Purp",
)

_TransactionReader = Callable[[etree._Element, str, str], CreditTransfer]


@lru_cache(maxsize=16)
def _transaction_reader(ns: str | None) -> _TransactionReader:  # noqa: PLR0915 - unrolled, for speed
    """A CdtTrfTxInf reader for one namespace, its paths followed by hand (the generic
    `Picker` reader it replaced is its test's reference, tests/unit/test_pain001_reader.py).

    A file holds up to 100,000 transactions: each is walked once over its children and the few
    grandchildren read, comparing tags made once here. It finds the elements the reference finds
    (the first at each path in document order, every `RmtInf/Ustrd`) and reads them with the same
    rules, in the same order: the same transfer, or the same refusal.
    """
    (
        pmt_id_tag,
        end_to_end_tag,
        instr_tag,
        amt_tag,
        instd_tag,
        eqvt_tag,
        rmt_tag,
        ustrd_tag,
        agent_tag,
        institution_tag,
        bicfi_tag,
        bic_tag,
        creditor_tag,
        name_tag,
        account_tag,
        id_tag,
        iban_tag,
        other_tag,
        scheme_tag,
        code_tag,
        proprietary_tag,
        purpose_tag,
    ) = tags(ns, _TRANSACTION_TAGS).values()

    def child(element: etree._Element, tag: str) -> etree._Element | None:
        """The first child with this tag (most often the first child: looked at first)."""
        if len(element) and element[0].tag == tag:
            return element[0]
        for item in element:
            if item.tag == tag:
                return item
        return None

    def account_of(cash_account: etree._Element | None) -> str | None:  # noqa: PLR0912
        """As `read_account`."""
        if cash_account is None:
            return None
        iban = number = scheme = None
        for ident in cash_account:
            if ident.tag != id_tag:
                continue
            for part in ident:
                tag = part.tag
                if tag == iban_tag:
                    if iban is None:
                        iban = part
                elif tag == other_tag:
                    for item in part:
                        item_tag = item.tag
                        if item_tag == id_tag:
                            if number is None:
                                number = item
                        elif item_tag == scheme_tag and scheme is None:
                            scheme = item
        found = element_text(iban, "IBAN")
        if found:
            return found
        account_number = element_text(number, "Id")
        if account_number is None:
            return None
        code = None
        if scheme is not None:
            code = element_text(child(scheme, code_tag), "Cd") or element_text(
                child(scheme, proprietary_tag), "Prtry"
            )
        return account_key(Account(number=account_number, scheme=code))

    def read(  # noqa: PLR0912 - one branch per path, unrolled
        tx: etree._Element, pmt_inf_id: str, debtor_account: str
    ) -> CreditTransfer:
        end_to_end = instr = instructed = equivalent = agent = None
        name = cash_account = purpose = None
        unstructured: list[etree._Element] = []
        for part in tx:
            tag = part.tag
            if tag == pmt_id_tag:
                for item in part:
                    item_tag = item.tag
                    if item_tag == end_to_end_tag:
                        if end_to_end is None:
                            end_to_end = item
                    elif item_tag == instr_tag and instr is None:
                        instr = item
            elif tag == amt_tag:
                for item in part:
                    item_tag = item.tag
                    if item_tag == instd_tag:
                        if instructed is None:
                            instructed = item
                    elif item_tag == eqvt_tag and equivalent is None:
                        equivalent = child(item, amt_tag)
            elif tag == creditor_tag:
                if name is None:
                    name = child(part, name_tag)
            elif tag == account_tag:
                if cash_account is None:
                    cash_account = part
            elif tag == agent_tag:
                if agent is None:
                    agent = child(part, institution_tag)
            elif tag == purpose_tag:
                if purpose is None:
                    purpose = child(part, code_tag)
            elif tag == rmt_tag:
                unstructured.extend(item for item in part if item.tag == ustrd_tag)
        end_to_end_id = element_text(end_to_end, "EndToEndId")
        if end_to_end_id is None:
            raise InvalidMessage(
                f"line {tx.sourceline or '?'}: PmtInf {pmt_inf_id}: <PmtId/EndToEndId> is"
                " missing or empty"
            )
        where = f"transaction {end_to_end_id}"
        amount = instructed if instructed is not None else equivalent
        if amount is None or not amount.text:
            raise InvalidMessage(f"{where}: <Amt/InstdAmt> (or <Amt/EqvtAmt/Amt>) is missing")
        currency = parse_currency(amount.get("Ccy"), f"{where} <InstdAmt>")
        remittance = [value for el in unstructured if (value := element_text(el, "Ustrd"))]
        return CreditTransfer(
            pmt_inf_id=pmt_inf_id,
            instr_id=element_text(instr, "InstrId"),
            end_to_end_id=end_to_end_id,
            amount=parse_amount(amount.text, f"{where} amount"),
            currency=currency,
            creditor_name=element_text(name, "Nm") or "",
            creditor_account=account_of(cash_account) or "",
            creditor_agent_bic=(
                None
                if agent is None
                else element_text(child(agent, bicfi_tag), "BICFI")
                or element_text(child(agent, bic_tag), "BIC")
            ),
            debtor_account=debtor_account,
            purpose=element_text(purpose, "Cd"),
            remittance=" ".join(remittance) if remittance else None,
        )

    return read
