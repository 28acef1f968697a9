"""camt.054 debit/credit notification: built as .08 (bank simulator), read as .02, .04 and .08.

The counterparty of an entry is the creditor of a debit and the debtor of a credit, seen from the
notified account.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from lxml import etree

from gateway.domain.money import MINOR_UNITS
from gateway.domain.orders import Account
from gateway.domain.text import nfc
from gateway.errors import InvalidMessage
from gateway.iso20022.apphdr import document_of
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.iso20022.namespaces import MessageType, message_type, namespace_of
from gateway.iso20022.xml import (
    ACCOUNT_TAGS,
    ISO_ACCOUNT_SCHEMES,
    Picked,
    account_from_key,
    account_paths,
    add_account,
    code_or_proprietary_in,
    date_choice_in,
    find,
    findall,
    format_datetime,
    parse_amount,
    parse_currency,
    parse_datetime,
    picker,
    read_account,
    read_account_in,
    required_text,
    tags,
    text,
    wire_amount,
)
from gateway.iso20022.xmltext import (
    OwnDocument,
    escape,
    escape_attribute,
    own_document,
    parse_own,
)

_OUT = MessageType.CAMT_054_001_08
_TAG = tags(
    _OUT.namespace,
    (
        "Document",
        "BkToCstmrDbtCdtNtfctn",
        "GrpHdr",
        "MsgId",
        "CreDtTm",
        "Ntfctn",
        "Acct",
        "Ntry",
        "NtryRef",
        "Amt",
        "CdtDbtInd",
        "Sts",
        "BookgDt",
        "ValDt",
        "Dt",
        "AcctSvcrRef",
        "BkTxCd",
        "Domn",
        "Fmly",
        "SubFmlyCd",
        "NtryDtls",
        "TxDtls",
        "Refs",
        "PmtInfId",
        "EndToEndId",
        "RltdPties",
        "Dbtr",
        "DbtrAcct",
        "Cdtr",
        "CdtrAcct",
        "Pty",
        "Nm",
        "RmtInf",
        "Ustrd",
        "Strd",
        "CdtrRefInf",
        "Ref",
        "RtrInf",
        "Rsn",
        "AddtlInf",
        *ACCOUNT_TAGS,
    ),
)
_CODE_MAX = 4  # External*Code lengths; longer values are written as Prtry
_ADDTL_INF_MAX = 105  # RtrInf/AddtlInf is Max105Text, repeated for a longer reason
_CREDIT, _DEBIT = "CRDT", "DBIT"


def build_camt054(notification: Notification) -> etree._Element:
    """Build a camt.054.001.08 notification for one account (not yet validated or signed).

    Written as text, an entry a string, and parsed once (see `gateway.iso20022.xmltext`): the
    tree is the one `build_camt054_elements` makes, at a fraction of the time. A notification
    the text cannot carry is built element by element instead, which refuses it as it always did.
    """
    try:
        return parse_own(_notification_text(notification))
    except (InvalidMessage, ValueError, etree.LxmlError):
        return build_camt054_elements(notification)


def _notification_text(notification: Notification) -> str:
    """The whole document as text."""
    parts = [_head_text(notification.msg_id, notification.created_at, notification.account)]
    parts.extend(map(_entry_text, notification.entries))
    parts.append(_TAIL)
    return "".join(parts)


def _head_text(msg_id: str, created_at: datetime, account: str) -> str:
    """The document up to its first Ntry."""
    created = format_datetime(created_at, "GrpHdr/CreDtTm")
    written_id = escape(msg_id)
    written_account = _account_text(account_from_key(account))
    return (
        f'<Document xmlns="{_OUT.namespace}"><BkToCstmrDbtCdtNtfctn><GrpHdr>'
        f"<MsgId>{written_id}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr><Ntfctn>"
        f"<Id>{written_id}</Id><CreDtTm>{created}</CreDtTm><Acct>{written_account}</Acct>"
    )


_TAIL = "</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>"

# A booked debit of one detail: amount, currency, the bank's reference (AcctSvcrRef of the entry
# and of its detail), and the detail's MsgId, PmtInfId, EndToEndId, counterparty name,
# counterparty account key and remittance (Ustrd).
Debit = tuple[
    Decimal, str, str, str | None, str | None, str | None, str | None, str | None, str | None
]


def debit_entries(day: date, debits: Iterable[Debit]) -> tuple[Entry, ...]:
    """The entries `debits` stand for: each booked on `day`, with that value date, one detail."""
    return tuple(
        Entry(
            amount=amount,
            currency=currency,
            credit_debit=_DEBIT,
            status="BOOK",
            booking_date=day,
            value_date=day,
            account_servicer_ref=reference,
            details=(
                EntryDetail(
                    amount=amount,
                    currency=currency,
                    end_to_end_id=end_to_end_id,
                    msg_id=msg_id,
                    pmt_inf_id=pmt_inf_id,
                    account_servicer_ref=reference,
                    counterparty_name=name,
                    counterparty_account=account,
                    remittance=remittance,
                ),
            ),
        )
        for (
            amount,
            currency,
            reference,
            msg_id,
            pmt_inf_id,
            end_to_end_id,
            name,
            account,
            remittance,
        ) in debits
    )


def build_camt054_debits(
    msg_id: str, created_at: datetime, account: str, day: date, debits: Sequence[Debit]
) -> etree._Element:
    """`build_camt054` of a notification of booked debits (see `debit_entries`): what a bank
    sends for a file it settled, one entry a transfer.

    Each entry is written from its debit in one piece, without its `Entry` and `EntryDetail`
    objects (at 100,000 transfers, making them cost more than writing the text). A notification
    the text cannot carry is built from those objects, element by element, which refuses it as
    `build_camt054` does.
    """
    return camt054_debits_document(msg_id, created_at, account, day, debits).root


def camt054_debits_document(
    msg_id: str, created_at: datetime, account: str, day: date, debits: Sequence[Debit]
) -> OwnDocument:
    """`build_camt054_debits`, with the canonical text the tree was parsed from (none when the
    notification was built element by element)."""
    try:
        return own_document(_debits_text(msg_id, created_at, account, day, debits))
    except (InvalidMessage, ValueError, etree.LxmlError):
        entries = debit_entries(day, debits)
        return OwnDocument(
            build_camt054_elements(Notification(msg_id, created_at, account, entries))
        )


def _debits_text(
    msg_id: str, created_at: datetime, account: str, day: date, debits: Sequence[Debit]
) -> str:
    """The whole document as text, each entry as `_entry_text` writes a booked debit."""
    dates = (
        f"<CdtDbtInd>{_DEBIT}</CdtDbtInd><Sts>{_code_text('BOOK')}</Sts>"
        f"<BookgDt><Dt>{day.isoformat()}</Dt></BookgDt><ValDt><Dt>{day.isoformat()}</Dt></ValDt>"
    )
    codes = f"{_BANK_TRANSACTION_CODES['ICDT', 'DMCT']}<NtryDtls>"
    closing = "</NtryDtls></Ntry>"
    parts = [_head_text(msg_id, created_at, account)]
    append = parts.append
    for (
        amount,
        currency,
        reference,
        detail_msg_id,
        pmt_inf_id,
        end_to_end_id,
        name,
        counterparty,
        remittance,
    ) in debits:
        written = _amount_text(amount, currency)
        servicer = f"<AcctSvcrRef>{escape(reference)}</AcctSvcrRef>" if reference else ""
        append(
            f"<Ntry>{written}{dates}{servicer}{codes}"
            + _detail_fields_text(
                detail_msg_id,
                reference,
                pmt_inf_id,
                end_to_end_id,
                written,
                _DEBIT,
                name,
                counterparty,
                remittance,
                None,
            )
            + closing
        )
    append(_TAIL)
    return "".join(parts)


# BkTxCd by (family, sub-family), as `_add_bank_transaction_code` writes it.
_BANK_TRANSACTION_CODES = {
    (family, sub): (
        f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>{sub}</SubFmlyCd>"
        "</Fmly></Domn></BkTxCd>"
    )
    for family in ("ICDT", "RCDT")
    for sub in ("RRTN", "DMCT")
}


def _entry_text(entry: Entry) -> str:
    """One Ntry, as `_add_entry` builds it."""
    credit_debit = entry.credit_debit
    if credit_debit not in (_CREDIT, _DEBIT):
        raise InvalidMessage(f"entry credit_debit {credit_debit!r} is not CRDT or DBIT")
    amount = _amount_text(entry.amount, entry.currency)
    returned = False
    written = []
    for detail in entry.details:
        returned = returned or bool(detail.return_reason or detail.return_reason_text)
        # A settlement's one detail carries the entry's amount: written once.
        same = detail.amount is entry.amount and detail.currency == entry.currency
        detail_amount = amount if same else _amount_text(detail.amount, detail.currency)
        written.append(_detail_text(detail, credit_debit, detail_amount))
    family = "ICDT" if returned or credit_debit == _DEBIT else "RCDT"
    booking, value = entry.booking_date, entry.value_date
    return "".join(
        (
            "<Ntry>",
            f"<NtryRef>{escape(entry.entry_ref)}</NtryRef>" if entry.entry_ref else "",
            amount,
            f"<CdtDbtInd>{credit_debit}</CdtDbtInd><Sts>{_code_text(entry.status)}</Sts>",
            f"<BookgDt><Dt>{booking.isoformat()}</Dt></BookgDt>" if booking is not None else "",
            f"<ValDt><Dt>{value.isoformat()}</Dt></ValDt>" if value is not None else "",
            (
                f"<AcctSvcrRef>{escape(entry.account_servicer_ref)}</AcctSvcrRef>"
                if entry.account_servicer_ref
                else ""
            ),
            _BANK_TRANSACTION_CODES[family, "RRTN" if returned else "DMCT"],
            f"<NtryDtls>{''.join(written)}</NtryDtls>" if written else "",
            "</Ntry>",
        )
    )


def _detail_text(detail: EntryDetail, credit_debit: str, amount: str) -> str:
    """One TxDtls, as `_add_detail` builds it (`amount`: its Amt, written)."""
    return _detail_fields_text(
        detail.msg_id,
        detail.account_servicer_ref,
        detail.pmt_inf_id,
        detail.end_to_end_id,
        amount,
        credit_debit,
        detail.counterparty_name,
        detail.counterparty_account,
        detail.remittance,
        detail.structured_ref,
        (_return_info_text(detail) if detail.return_reason or detail.return_reason_text else ""),
    )


def _detail_fields_text(
    msg_id: str | None,
    reference: str | None,
    pmt_inf_id: str | None,
    end_to_end_id: str | None,
    amount: str,
    credit_debit: str,
    name: str | None,
    account: str | None,
    remittance: str | None,
    structured_ref: str | None,
    return_info: str = "",
) -> str:
    """A TxDtls from its values (`amount` and `return_info`: its Amt and RtrInf, written)."""
    refs = "".join(
        (
            f"<MsgId>{escape(msg_id)}</MsgId>" if msg_id else "",
            f"<AcctSvcrRef>{escape(reference)}</AcctSvcrRef>" if reference else "",
            f"<PmtInfId>{escape(pmt_inf_id)}</PmtInfId>" if pmt_inf_id else "",
            f"<EndToEndId>{escape(end_to_end_id)}</EndToEndId>" if end_to_end_id else "",
        )
    )
    written_remittance = ""
    if remittance or structured_ref:
        unstructured = f"<Ustrd>{escape(nfc(remittance))}</Ustrd>" if remittance else ""
        structured = (
            f"<Strd><CdtrRefInf><Ref>{escape(structured_ref)}</Ref></CdtrRefInf></Strd>"
            if structured_ref
            else ""
        )
        written_remittance = f"<RmtInf>{unstructured}{structured}</RmtInf>"
    return "".join(
        (
            "<TxDtls>",
            f"<Refs>{refs}</Refs>" if refs else "",
            amount,
            f"<CdtDbtInd>{credit_debit}</CdtDbtInd>",
            _counterparty_text(name, account, credit_debit),
            written_remittance,
            return_info,
            "</TxDtls>",
        )
    )


def _counterparty_text(name: str | None, account: str | None, credit_debit: str) -> str:
    """RltdPties, as `_add_counterparty` builds it ('' when there is no counterparty)."""
    if not name and not account:
        return ""
    role = "Dbtr" if credit_debit == _CREDIT else "Cdtr"
    party = f"<{role}><Pty><Nm>{escape(nfc(name))}</Nm></Pty></{role}>" if name else ""
    held = f"<{role}Acct>{_account_text(account_from_key(account))}</{role}Acct>" if account else ""
    return f"<RltdPties>{party}{held}</RltdPties>"


def _return_info_text(detail: EntryDetail) -> str:
    """RtrInf, as `_add_return_info` builds it."""
    reason = f"<Rsn>{_code_text(detail.return_reason)}</Rsn>" if detail.return_reason else ""
    lines = "".join(
        f"<AddtlInf>{escape(part)}</AddtlInf>"
        for part in textwrap.wrap(nfc(detail.return_reason_text or ""), _ADDTL_INF_MAX)
    )
    return f"<RtrInf>{reason}{lines}</RtrInf>"


def _amount_text(amount: Decimal, currency: str) -> str:
    return f'<Amt Ccy="{escape_attribute(currency)}">{_wire(amount, currency)}</Amt>'


def _wire(amount: Decimal, currency: str) -> str:
    """`wire_amount`, without its parse when the amount is positive and written with exactly
    the currency's minor units already (what `wire_amount` would check, then write unchanged)."""
    written = format(amount, "f")
    units = MINOR_UNITS.get(currency)
    if units == 0:
        plain = written.isdigit()
    elif units is not None:
        whole, _, fraction = written.partition(".")
        plain = whole.isdigit() and fraction.isdigit() and len(fraction) == units
    else:
        plain = False
    if plain and amount > 0:
        return written
    return wire_amount(amount, currency)


def _code_text(code: str) -> str:
    """A code-or-proprietary choice, as `_add_code` writes it."""
    kind = "Cd" if len(code) <= _CODE_MAX else "Prtry"
    return f"<{kind}>{escape(code)}</{kind}>"


def _account_text(account: Account) -> str:
    """A CashAccount's content, as `add_account` writes it."""
    if account.iban:
        return f"<Id><IBAN>{escape(account.iban)}</IBAN></Id>"
    if not account.number:
        raise InvalidMessage("account has neither an IBAN nor a number")
    scheme = ""
    if account.scheme:
        kind = "Cd" if account.scheme in ISO_ACCOUNT_SCHEMES else "Prtry"
        scheme = f"<SchmeNm><{kind}>{escape(account.scheme)}</{kind}></SchmeNm>"
    return f"<Id><Othr><Id>{escape(account.number)}</Id>{scheme}</Othr></Id>"


# --- The element-by-element builder: the reference of the text above, and its way to refuse ---


def build_camt054_elements(notification: Notification) -> etree._Element:
    """`build_camt054`, one `SubElement` at a time."""
    sub = etree.SubElement
    root = etree.Element(_TAG["Document"], nsmap={None: _OUT.namespace})
    body = sub(root, _TAG["BkToCstmrDbtCdtNtfctn"])
    created = format_datetime(notification.created_at, "GrpHdr/CreDtTm")
    header = sub(body, _TAG["GrpHdr"])
    sub(header, _TAG["MsgId"]).text = notification.msg_id
    sub(header, _TAG["CreDtTm"]).text = created
    ntfctn = sub(body, _TAG["Ntfctn"])
    sub(ntfctn, _TAG["Id"]).text = notification.msg_id
    sub(ntfctn, _TAG["CreDtTm"]).text = created
    add_account(sub(ntfctn, _TAG["Acct"]), _TAG, account_from_key(notification.account))
    for entry in notification.entries:
        _add_entry(ntfctn, entry)
    return root


def _add_entry(parent: etree._Element, entry: Entry) -> None:
    """One Ntry with its transaction details."""
    sub = etree.SubElement
    if entry.credit_debit not in (_CREDIT, _DEBIT):
        raise InvalidMessage(f"entry credit_debit {entry.credit_debit!r} is not CRDT or DBIT")
    ntry = sub(parent, _TAG["Ntry"])
    if entry.entry_ref:
        sub(ntry, _TAG["NtryRef"]).text = entry.entry_ref
    _add_amount(ntry, entry.amount, entry.currency)
    sub(ntry, _TAG["CdtDbtInd"]).text = entry.credit_debit
    _add_code(sub(ntry, _TAG["Sts"]), entry.status)
    for tag, day in (("BookgDt", entry.booking_date), ("ValDt", entry.value_date)):
        if day is not None:
            sub(sub(ntry, _TAG[tag]), _TAG["Dt"]).text = day.isoformat()
    if entry.account_servicer_ref:
        sub(ntry, _TAG["AcctSvcrRef"]).text = entry.account_servicer_ref
    _add_bank_transaction_code(ntry, entry)
    if entry.details:
        details = sub(ntry, _TAG["NtryDtls"])
        for detail in entry.details:
            _add_detail(details, detail, entry.credit_debit)


def _add_bank_transaction_code(ntry: etree._Element, entry: Entry) -> None:
    """PMNT / ICDT (our debits) or RCDT (credits) / DMCT, or ICDT/RRTN for a returned payment."""
    sub = etree.SubElement
    returned = any(d.return_reason or d.return_reason_text for d in entry.details)
    family = "ICDT" if returned or entry.credit_debit == _DEBIT else "RCDT"
    domain = sub(sub(ntry, _TAG["BkTxCd"]), _TAG["Domn"])
    sub(domain, _TAG["Cd"]).text = "PMNT"
    fmly = sub(domain, _TAG["Fmly"])
    sub(fmly, _TAG["Cd"]).text = family
    sub(fmly, _TAG["SubFmlyCd"]).text = "RRTN" if returned else "DMCT"


def _add_detail(parent: etree._Element, detail: EntryDetail, credit_debit: str) -> None:
    """One TxDtls: references, amount, counterparty, remittance and return reason."""
    sub = etree.SubElement
    tx = sub(parent, _TAG["TxDtls"])
    refs = (
        ("MsgId", detail.msg_id),
        ("AcctSvcrRef", detail.account_servicer_ref),
        ("PmtInfId", detail.pmt_inf_id),
        ("EndToEndId", detail.end_to_end_id),
    )
    if any(value for _, value in refs):
        refs_el = sub(tx, _TAG["Refs"])
        for tag, value in refs:
            if value:
                sub(refs_el, _TAG[tag]).text = value
    _add_amount(tx, detail.amount, detail.currency)
    sub(tx, _TAG["CdtDbtInd"]).text = credit_debit
    _add_counterparty(tx, detail, credit_debit)
    if detail.remittance or detail.structured_ref:
        info = sub(tx, _TAG["RmtInf"])
        if detail.remittance:
            sub(info, _TAG["Ustrd"]).text = nfc(detail.remittance)
        if detail.structured_ref:
            creditor_ref = sub(sub(info, _TAG["Strd"]), _TAG["CdtrRefInf"])
            sub(creditor_ref, _TAG["Ref"]).text = detail.structured_ref
    if detail.return_reason or detail.return_reason_text:
        _add_return_info(sub(tx, _TAG["RtrInf"]), detail)


def _add_return_info(info: etree._Element, detail: EntryDetail) -> None:
    """RtrInf: Rsn (Cd, or Prtry past a code's length) and AddtlInf lines of at most 105."""
    if detail.return_reason:
        _add_code(etree.SubElement(info, _TAG["Rsn"]), detail.return_reason)
    for part in textwrap.wrap(nfc(detail.return_reason_text or ""), _ADDTL_INF_MAX):
        etree.SubElement(info, _TAG["AddtlInf"]).text = part


def _add_counterparty(tx: etree._Element, detail: EntryDetail, credit_debit: str) -> None:
    """RltdPties: the debtor of a credit, the creditor of a debit."""
    if not detail.counterparty_name and not detail.counterparty_account:
        return
    sub = etree.SubElement
    role = "Dbtr" if credit_debit == _CREDIT else "Cdtr"
    parties = sub(tx, _TAG["RltdPties"])
    if detail.counterparty_name:
        party = sub(sub(parties, _TAG[role]), _TAG["Pty"])
        sub(party, _TAG["Nm"]).text = nfc(detail.counterparty_name)
    if detail.counterparty_account:
        account = account_from_key(detail.counterparty_account)
        add_account(sub(parties, _TAG[f"{role}Acct"]), _TAG, account)


def _add_amount(parent: etree._Element, amount: Decimal, currency: str) -> None:
    etree.SubElement(parent, _TAG["Amt"], Ccy=currency).text = wire_amount(amount, currency)


def _add_code(parent: etree._Element, code: str) -> None:
    """A code-or-proprietary choice: `Cd` for an ISO-length code, else `Prtry`."""
    kind = "Cd" if len(code) <= _CODE_MAX else "Prtry"
    etree.SubElement(parent, _TAG[kind]).text = code


# --- Reading ------------------------------------------------------------------------------------


def read_camt054(root: etree._Element, entries: Sequence[Entry] | None = None) -> Notification:
    """Read a camt.054 (.02, .04 or .08) notifying one account.

    `entries`, when given, were read already as the file streamed in (see
    `gateway.iso20022.streaming`): `root` then holds the notification without its Ntry.
    """
    root = document_of(root)
    kind = message_type(root)
    if kind.family != "camt.054":
        raise InvalidMessage(f"expected a camt.054 notification, got {kind.name_id}")
    ns = namespace_of(root)
    body = find(root, ns, "BkToCstmrDbtCdtNtfctn")
    header = find(body, ns, "GrpHdr") if body is not None else None
    if body is None or header is None:
        raise InvalidMessage(f"{kind.name_id}: <BkToCstmrDbtCdtNtfctn/GrpHdr> is missing")
    notifications = findall(body, ns, "Ntfctn")
    accounts = {read_account(find(ntfctn, ns, "Acct"), ns) for ntfctn in notifications}
    if len(accounts) != 1 or None in accounts:
        raise InvalidMessage(
            f"{kind.name_id}: expected notifications for one identified account, "
            f"found {len(notifications)} Ntfctn for {len(accounts)} account(s)"
        )
    if entries is None:
        entries = [
            read_entry(ntry, ns) for ntfctn in notifications for ntry in findall(ntfctn, ns, "Ntry")
        ]
    return Notification(
        msg_id=required_text(header, ns, "MsgId", "GrpHdr"),
        created_at=parse_datetime(required_text(header, ns, "CreDtTm", "GrpHdr"), "CreDtTm"),
        account=str(accounts.pop()),
        entries=tuple(entries),
    )


# An entry's paths, and those of its parts read with it (its status code, its dates, its
# details blocks): one walk of the entry instead of one per part.
_ENTRY_PATHS = (
    "AcctSvcrRef",
    "NtryRef",
    "Amt",
    "CdtDbtInd",
    "Sts",
    "Sts/Cd",
    "Sts/Prtry",
    "BookgDt",
    "BookgDt/Dt",
    "BookgDt/DtTm",
    "ValDt",
    "ValDt/Dt",
    "ValDt/DtTm",
    "NtryDtls",
    "NtryDtls/Btch",
    "NtryDtls/TxDtls",
)
_DETAIL_PATHS = (
    "Amt",
    "AmtDtls/TxAmt/Amt",
    "AmtDtls/InstdAmt/Amt",
    "CdtDbtInd",
    "Refs/EndToEndId",
    "Refs/MsgId",
    "Refs/PmtInfId",
    "Refs/AcctSvcrRef",
    *(
        path
        for role in ("Dbtr", "Cdtr")
        for path in (
            f"RltdPties/{role}",
            f"RltdPties/{role}/Nm",
            f"RltdPties/{role}/Pty/Nm",
            f"RltdPties/{role}/Agt/FinInstnId/Nm",
            *account_paths(f"RltdPties/{role}Acct"),
        )
    ),
    "RmtInf/Ustrd",
    "RmtInf/Strd/CdtrRefInf/Ref",
    "RtrInf/Rsn",
    "RtrInf/Rsn/Cd",
    "RtrInf/Rsn/Prtry",
    "RtrInf/AddtlInf",
)


def read_entry(ntry: etree._Element, ns: str | None) -> Entry:
    """One Ntry."""
    at = picker(ns, _ENTRY_PATHS).pick(ntry)
    detail_picker = picker(ns, _DETAIL_PATHS)
    reference = at.text("AcctSvcrRef")
    entry_ref = at.text("NtryRef")
    where = f"entry {reference or entry_ref or '?'}"
    amount, currency = read_amount(at.first("Amt"), where)
    credit_debit = at.required("CdtDbtInd", where)
    if at.one("NtryDtls"):
        batch = at.first("NtryDtls/Btch")
        transactions = [(tx, batch) for tx in at.all("NtryDtls/TxDtls")]
    else:
        transactions = [
            (tx, batch)
            for details, batch in _detail_blocks(ntry, ns)
            for tx in findall(details, ns, "TxDtls")
        ]
    only = (amount, currency) if len(transactions) == 1 else None
    return Entry(
        amount=amount,
        currency=currency,
        credit_debit=credit_debit,
        status=_status(at, ns, where),
        booking_date=date_choice_in(at, "BookgDt", ns, f"{where} BookgDt"),
        value_date=date_choice_in(at, "ValDt", ns, f"{where} ValDt"),
        account_servicer_ref=reference,
        details=tuple(
            _read_detail(detail_picker.pick(tx), batch, ns, credit_debit, only, where)
            for tx, batch in transactions
        ),
        entry_ref=entry_ref,
    )


def _detail_blocks(
    ntry: etree._Element, ns: str | None
) -> list[tuple[etree._Element, etree._Element | None]]:
    """Each NtryDtls with its Btch (looked up once: a block may hold 100,000 TxDtls)."""
    return [(details, find(details, ns, "Btch")) for details in findall(ntry, ns, "NtryDtls")]


def _status(at: Picked, ns: str | None, where: str) -> str:
    """Entry status: plain text up to .04, `Cd`/`Prtry` from .05 on."""
    element = at.first("Sts")
    if element is None:
        raise InvalidMessage(f"{where}: <Sts> is missing")
    value = code_or_proprietary_in(at, "Sts", ns) or (element.text or "").strip()
    if not value:
        raise InvalidMessage(f"{where}: <Sts> is empty")
    return value


def _read_detail(
    tx: Picked,
    batch: etree._Element | None,
    ns: str | None,
    credit_debit: str,
    only: tuple[Decimal, str] | None,
    where: str,
) -> EntryDetail:
    """One TxDtls; the batch supplies MsgId/PmtInfId when the references lack them."""
    amount, currency = _detail_amount(tx, only, where)
    role = "Dbtr" if credit_debit == _CREDIT else "Cdtr"
    remittance = tx.texts("RmtInf/Ustrd")
    reason_lines = tx.texts("RtrInf/AddtlInf")
    return EntryDetail(
        amount=amount,
        currency=currency,
        end_to_end_id=tx.text("Refs/EndToEndId"),
        msg_id=tx.text("Refs/MsgId") or text(batch, ns, "MsgId"),
        pmt_inf_id=tx.text("Refs/PmtInfId") or text(batch, ns, "PmtInfId"),
        account_servicer_ref=tx.text("Refs/AcctSvcrRef"),
        counterparty_name=_party_name(tx, f"RltdPties/{role}", ns),
        counterparty_account=read_account_in(tx, f"RltdPties/{role}Acct", ns),
        remittance=" ".join(remittance) if remittance else None,
        structured_ref=tx.text("RmtInf/Strd/CdtrRefInf/Ref"),
        return_reason=code_or_proprietary_in(tx, "RtrInf/Rsn", ns),
        return_reason_text=" ".join(reason_lines) or None,
        credit_debit=_contradiction(tx.text("CdtDbtInd"), credit_debit),
    )


def _contradiction(stated: str | None, entry: str) -> str | None:
    """A detail's CdtDbtInd, kept only when it contradicts its entry's (to be refused later)."""
    return stated if stated is not None and stated != entry else None


def _detail_amount(tx: Picked, only: tuple[Decimal, str] | None, where: str) -> tuple[Decimal, str]:
    """Amt (.04+), else AmtDtls TxAmt or InstdAmt (.02), else the entry's when it has one TxDtls."""
    for path in ("Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/InstdAmt/Amt"):
        element = tx.first(path)
        if element is not None:
            return read_amount(element, f"{where} TxDtls")
    if only is not None:
        return only
    raise InvalidMessage(f"{where}: a TxDtls has no amount and the entry has several")


_PARTY_PATHS = ("Nm", "Pty/Nm", "Agt/FinInstnId/Nm")


def _party_name(tx: Picked, path: str, ns: str | None) -> str | None:
    """The name of the party at `path`: `Nm` (.02/.04), `Pty/Nm` or `Agt/FinInstnId/Nm` (.08),
    picked with the transaction (the party alone when the transaction has several there)."""
    if not tx.one(path):
        party = tx.first(path)
        if party is None:
            return None
        at = picker(ns, _PARTY_PATHS).pick(party)
        return at.text("Nm") or at.text("Pty/Nm") or at.text("Agt/FinInstnId/Nm")
    return (
        tx.text(f"{path}/Nm") or tx.text(f"{path}/Pty/Nm") or tx.text(f"{path}/Agt/FinInstnId/Nm")
    )


def read_amount(
    element: etree._Element | None, where: str, name: str = "Amt"
) -> tuple[Decimal, str]:
    """An amount element's value and its Ccy attribute; `name` is its tag, for errors."""
    if element is None or not element.text:
        raise InvalidMessage(f"{where}: <{name}> is missing")
    currency = element.get("Ccy")
    if not currency:
        raise InvalidMessage(f"{where}: <{name}> has no Ccy")
    currency = parse_currency(currency, f"{where} <{name}>")
    return parse_amount(element.text, f"{where} amount"), currency
