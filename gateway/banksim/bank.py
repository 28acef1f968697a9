"""The simulated bank's decisions: verify, check, settle or reject, and report back signed."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import structlog
from lxml import etree

from gateway.banksim.messages import (
    ReturnLine,
    StatementBalances,
    build_camt052,
    build_camt053,
    build_pacs004,
)
from gateway.banksim.record import BankRecord, BookedEntry
from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.camt054 import build_camt054, camt054_debits_document
from gateway.iso20022.model import (
    CreditTransfer,
    Entry,
    EntryDetail,
    Notification,
    Pain001Content,
    StatusReport,
)
from gateway.iso20022.pain001 import read_pain001
from gateway.iso20022.pain002 import build_pain002, pain002_statuses_document
from gateway.iso20022.xml import parse_xml
from gateway.iso20022.xmltext import OwnDocument
from gateway.profile.signature import SignaturePolicy
from gateway.signing import (
    KeyPair,
    KeyRing,
    SignatureError,
    SignedFile,
    TrustedCertificate,
    file_bytes,
    sign_for_partner,
    verify_for_partner,
)

log = structlog.get_logger("gateway.banksim")

# Reasons the simulated bank gives, as ISO ExternalStatusReason1Code values.
REASONS = {
    "AC01": "Số tài khoản không đúng (incorrect account number)",
    "AC04": "Tài khoản đã đóng (closed account number)",
    "DS0A": "Chữ ký số không hợp lệ (data signature not valid)",
    "DUPL": "Tệp đã nhận trước đây (duplicate file: this MsgId was received before)",
    "FF01": "Tệp không đúng định dạng (invalid file format)",
}


@dataclass(frozen=True, slots=True)
class RevenueItem:
    """One collection the bank took in for the treasury (tax, fine) and reports as a credit."""

    bank_ref: str
    payer_name: str
    amount: str
    currency: str
    value_date: date
    remittance: str
    structured_ref: str | None = None


@dataclass
class AccountBook:
    """Which creditor accounts the bank knows as closed or as nonexistent."""

    closed: frozenset[str] = field(default_factory=frozenset)
    unknown: frozenset[str] = field(default_factory=frozenset)

    def decide(self, transfer: CreditTransfer) -> str | None:
        """The ISO reason code to reject with, or None to settle."""
        account = transfer.creditor_account.split(":")[-1]
        if account in self.unknown:
            return "AC01"
        if account in self.closed:
            return "AC04"
        return None


Reply = tuple[str, str, bytes]

# How the bank answers a file it already has (same MsgId, same content): `replay` sends the
# replies of the first receipt again; `dupl` answers with a group-level pain.002 RJCT, reason
# DUPL, as many banks do.
RESEND_ANSWERS = ("replay", "dupl")


def _ref(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:20].upper()
    return f"{prefix}{digest}"


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a file is handled.

    A file of 100,000 transfers makes several hundred thousand small objects (transfers,
    entries, status lines), none in a reference cycle: each is freed by its count when done
    with. The collector, triggered every few hundred allocations, would instead walk the whole
    growing heap again and again (a tenth of the bank's time). It resumes afterwards unless it
    was off already (with two partners' files handled at once, the first to finish resumes it:
    a shorter pause for the other, nothing worse).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _debit_references(msg_id: str, settled: list[CreditTransfer]) -> list[str]:
    """`_ref("VBA", msg_id, end_to_end_id)[:35]` of each settled transfer (the file hashed once)."""
    head = hashlib.sha256(f"{msg_id}|".encode())
    references = []
    for transfer in settled:
        digest = head.copy()
        digest.update(transfer.end_to_end_id.encode())
        references.append(f"VBA{digest.hexdigest()[:20].upper()}")
    return references


class BankSimulator:
    """A partner bank: takes signed pain.001 files, answers with signed pain.002 and camt.054.

    It signs and verifies as the partner's [signature] mode says (enveloped, detached or none),
    and trusts the treasury certificates it was given (current and next, each in its window).
    """

    def __init__(
        self,
        *,
        bic: str,
        account: str,
        keypair: KeyPair | None,
        trusted: Sequence[TrustedCertificate],
        record: BankRecord,
        book: AccountBook,
        policy: SignaturePolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        resend_answer: str = "replay",
    ) -> None:
        if resend_answer not in RESEND_ANSWERS:
            raise ConfigError(f"resend answer {resend_answer!r} is not one of {RESEND_ANSWERS}")
        self.resend_answer = resend_answer
        self.bic = bic
        self.account = account
        self._keypair = keypair
        self._trusted = tuple(trusted)
        self._policy = policy or SignaturePolicy(mode="enveloped")
        self.record = record
        self.book = book
        self._clock = clock

    def receive(self, raw: bytes, signature: bytes | None = None) -> list[Reply]:
        """Handle one file (with its detached signature, for a partner signing detached); a file
        seen before gets the same replies again, never a new payment."""
        with _collector_paused():
            return self._receive(raw, signature)

    def _receive(self, raw: bytes, signature: bytes | None) -> list[Reply]:
        try:
            verified = verify_for_partner(
                raw, self._policy, self._trusted, self._clock(), signature
            )
            tree = verified.document
            xsd.validate(tree)
            content = read_pain001(tree)
        except InvalidMessage as exc:
            return self._refuse_file(raw, exc)
        digest = hashlib.sha256(raw).hexdigest()
        seen = self.record.seen(content.msg_id, digest)
        if seen == "same":
            log.info("bank.file_duplicate", msg_id=content.msg_id, answer=self.resend_answer)
            if self.resend_answer == "dupl":
                return [self._duplicate_file(content.msg_id)]
            return self.record.replies_to(content.msg_id)
        if seen == "different":
            # A reused MsgId: pay nothing, and send no report that could be read as about the
            # first file. A real bank would phone; the simulator logs it loudly.
            log.error("bank.msg_id_reused", msg_id=content.msg_id)
            return []
        now = self._clock()
        decisions = [(t, self.book.decide(t)) for t in content.transfers]
        replies = [self._status_report(content, decisions, now)]
        settled = [t for t, reason in decisions if reason is None]
        booked: list[BookedEntry] = []
        if settled:
            # The bank's reference of each debit: in the camt.054 and in its book.
            references = _debit_references(content.msg_id, settled)
            replies.append(self._debit_notification(content, settled, references, now))
            day = now.date().isoformat()
            booked = [
                (
                    reference,
                    day,
                    "DBIT",
                    format(t.amount, "f"),
                    t.currency,
                    t.end_to_end_id,
                    content.msg_id,
                    t.creditor_name,
                    None,
                )
                for t, reference in zip(settled, references, strict=True)
            ]
        self.record.record(
            content.msg_id,
            digest,
            now.isoformat(),
            [
                (
                    t.end_to_end_id,
                    format(t.amount, "f"),
                    t.currency,
                    t.creditor_account,
                    "rejected" if reason else "settled",
                    reason,
                )
                for t, reason in decisions
            ],
            replies,
            booked,
        )
        log.info(
            "bank.file_processed",
            msg_id=content.msg_id,
            txs=len(decisions),
            settled=len(settled),
            rejected=len(decisions) - len(settled),
        )
        return replies

    def _status_report(
        self,
        content: Pain001Content,
        decisions: list[tuple[CreditTransfer, str | None]],
        now: datetime,
    ) -> Reply:
        rejected = sum(1 for _, reason in decisions if reason)
        group = "ACCP" if rejected == 0 else ("RJCT" if rejected == len(decisions) else "PART")
        msg_id = _ref("VBA-STS-", content.msg_id)[:35]
        statuses = [
            (
                t.end_to_end_id,
                "RJCT" if reason else "ACCP",
                t.instr_id,
                t.pmt_inf_id,
                reason,
                REASONS.get(reason) if reason else None,
            )
            for t, reason in decisions
        ]
        document = pain002_statuses_document(msg_id, now, content.msg_id, group, statuses)
        return msg_id, "pain.002", self._signed(document)

    def _duplicate_file(self, msg_id: str) -> Reply:
        """A group-level pain.002 RJCT, reason DUPL: "this MsgId was received before". Each
        answer has its own MsgId, as a bank's every report does."""
        now = self._clock()
        report = StatusReport(
            msg_id=_ref("VBA-STS-", msg_id, "DUPL", now.isoformat())[:35],
            created_at=now,
            original_msg_id=msg_id,
            original_msg_name_id="pain.001.001.09",
            group_status="RJCT",
            transactions=(),
            group_reason_code="DUPL",
            group_reason_text=REASONS["DUPL"],
        )
        return report.msg_id, "pain.002", self._signed(build_pain002(report))

    def _debit_notification(
        self,
        content: Pain001Content,
        settled: list[CreditTransfer],
        references: list[str],
        now: datetime,
    ) -> Reply:
        """The camt.054 of the settled transfers: one booked debit each, the creditor its
        counterparty (the account's number, without its scheme)."""
        msg_id = _ref("VBA-DBT-", content.msg_id)[:35]
        original = content.msg_id
        debits = [
            (
                t.amount,
                t.currency,
                reference,
                original,
                t.pmt_inf_id,
                t.end_to_end_id,
                t.creditor_name,
                t.creditor_account.split(":")[-1],
                t.remittance,
            )
            for t, reference in zip(settled, references, strict=True)
        ]
        document = camt054_debits_document(msg_id, now, self.account, now.date(), debits)
        return msg_id, "camt.054", self._signed(document)

    def revenue_notification(self, items: Iterable[RevenueItem]) -> Reply:
        """A camt.054 of credits: revenue the bank collected for the treasury."""
        items = list(items)
        now = self._clock()
        notification = Notification(
            msg_id=_ref("VBA-CDT-", *(i.bank_ref for i in items))[:35],
            created_at=now,
            account=self.account,
            entries=tuple(
                Entry(
                    amount=Decimal(i.amount),
                    currency=i.currency,
                    credit_debit="CRDT",
                    status="BOOK",
                    booking_date=i.value_date,
                    value_date=i.value_date,
                    account_servicer_ref=i.bank_ref,
                    details=(
                        EntryDetail(
                            amount=Decimal(i.amount),
                            currency=i.currency,
                            account_servicer_ref=i.bank_ref,
                            counterparty_name=i.payer_name,
                            remittance=i.remittance,
                            structured_ref=i.structured_ref,
                        ),
                    ),
                )
                for i in items
            ),
        )
        body = self._signed(build_camt054(notification))
        self.record.add_reply("revenue", notification.msg_id, "camt.054", body)
        self.record.book(
            [
                (
                    i.bank_ref,
                    i.value_date.isoformat(),
                    "CRDT",
                    i.amount,
                    i.currency,
                    None,
                    notification.msg_id,
                    i.payer_name,
                    None,
                )
                for i in items
            ]
        )
        return notification.msg_id, "camt.054", body

    def return_payment(self, end_to_end_id: str, reason: str, day: date | None = None) -> Reply:
        """A signed pacs.004 sending a settled payment back (e.g. AC04: the beneficiary's
        account was closed after the payment), booked as a credit on the account."""
        debits = [e for e in self.record.booked(end_to_end_id=end_to_end_id) if e[2] == "DBIT"]
        if not debits:
            raise InvalidMessage(f"the bank settled no payment {end_to_end_id}")
        debit_ref, _, _, amount, currency, _, original_msg_id, payer, _ = debits[0]
        now = self._clock()
        on = day or now.date()
        return_id = _ref("VBA-RTR-", debit_ref)[:35]
        line = ReturnLine(
            return_id=return_id,
            original_msg_id=original_msg_id or "",
            original_end_to_end_id=end_to_end_id,
            amount=Decimal(amount),
            currency=currency,
            settlement_date=on,
            reason_code=reason,
            reason_text=REASONS.get(reason, reason),
        )
        msg_id = _ref("VBA-RET-", return_id)[:35]
        body = self._signed(build_pacs004(msg_id, now, [line]))
        self.record.add_reply(end_to_end_id, msg_id, "pacs.004", body)
        self.record.book(
            [
                (
                    return_id,
                    on.isoformat(),
                    "CRDT",
                    amount,
                    currency,
                    end_to_end_id,
                    msg_id,
                    payer,
                    reason,
                )
            ]
        )
        log.info("bank.payment_returned", end_to_end_id=end_to_end_id, reason=reason)
        return msg_id, "pacs.004", body

    def intraday_report(self, day: date) -> Reply:
        """A signed camt.052 of the account: every entry booked on `day` so far, as the later
        camt.053 will list them (the same bank references)."""
        notification = self._day_entries(day, _ref("VBA-IDR-", self.account, day.isoformat()))
        report_id = f"VBA-IDR-{self.account[-6:]}-{day:%Y%m%d}"
        body = self._signed(build_camt052(notification, report_id))
        self.record.add_reply("intraday", notification.msg_id, "camt.052", body)
        return notification.msg_id, "camt.052", body

    def _day_entries(self, day: date, msg_id: str) -> Notification:
        """The entries booked on `day`, as a statement or an intraday report lists them."""
        return Notification(
            msg_id=msg_id[:35],
            created_at=self._clock(),
            account=self.account,
            entries=tuple(
                Entry(
                    amount=Decimal(amount),
                    currency=currency,
                    credit_debit=cd,
                    status="BOOK",
                    booking_date=day,
                    value_date=day,
                    account_servicer_ref=ref,
                    details=(
                        EntryDetail(
                            amount=Decimal(amount),
                            currency=currency,
                            end_to_end_id=e2e,
                            account_servicer_ref=ref,
                            counterparty_name=party,
                            return_reason=reason,
                        ),
                    ),
                )
                for ref, _, cd, amount, currency, e2e, _, party, reason in self.record.booked(
                    day=day.isoformat()
                )
            ),
        )

    def statement(self, day: date, opening_balance: Decimal = Decimal(0)) -> Reply:
        """A signed camt.053 of the account for one day: every entry booked that day, opening
        and closing balances (`opening_balance` is the balance before the first booking)."""
        rows = self.record.booked(day=day.isoformat())
        opening = opening_balance + self.record.net_before(day.isoformat())
        net = sum((Decimal(r[3]) if r[2] == "CRDT" else -Decimal(r[3]) for r in rows), Decimal(0))
        statement_id = f"VBA-STM-{self.account[-6:]}-{day:%Y%m%d}"
        notification = self._day_entries(day, _ref("VBA-EOD-", self.account, day.isoformat()))
        root = build_camt053(
            notification, statement_id, StatementBalances(day, opening, opening + net)
        )
        body = self._signed(root)
        self.record.add_reply("statement", notification.msg_id, "camt.053", body)
        return notification.msg_id, "camt.053", body

    def _refuse_file(self, raw: bytes, error: InvalidMessage) -> list[Reply]:
        reason = "DS0A" if isinstance(error, SignatureError) else "FF01"
        msg_id = _loose_msg_id(raw)
        log.warning("bank.file_refused", msg_id=msg_id, reason=reason, error=str(error))
        if msg_id is None:
            return []
        report = StatusReport(
            msg_id=_ref("VBA-STS-", msg_id, "refused")[:35],
            created_at=self._clock(),
            original_msg_id=msg_id,
            original_msg_name_id="pain.001.001.09",
            group_status="RJCT",
            transactions=(),
            group_reason_code=reason,
            group_reason_text=f"{REASONS[reason]}: {error}"[:105],
        )
        return [(report.msg_id, "pain.002", self._signed(build_pain002(report)))]

    def _signed(self, built: etree._Element | OwnDocument) -> bytes:
        """A reply, XSD-validated and signed enveloped when the partner signs enveloped; a
        detached signature is made as the reply goes out (`wire`), beside the body kept here.
        A reply written as canonical text is signed and sent as that text, without a pass over
        its tree (`sign_enveloped_text`)."""
        document = built if isinstance(built, OwnDocument) else OwnDocument(built)
        xsd.validate(document.root)
        pair = self._signing_key() if self._policy.mode == "enveloped" else None
        canonical = document.canonical
        return file_bytes(None if canonical else document.root, pair, canonical=canonical)

    def _signing_key(self) -> KeyPair:
        """The bank's key; a partner that signs needs one (its profile pins the certificate)."""
        if self._keypair is None:
            raise ConfigError(
                f"the simulated bank {self.bic} signs {self._policy.mode} but has no key:"
                " pin its certificate in the partner profile"
            )
        return self._keypair

    def wire(self, reply: Reply) -> SignedFile:
        """A reply as it travels: its body, and its detached signature (the `signature` header,
        or `<name>.sig` beside `<name>` in a folder) when the partner signs detached."""
        reply_id, _, body = reply
        if self._policy.mode != "detached":
            return SignedFile(body)
        ring = KeyRing(f"banksim-{self.bic}", self._signing_key())
        return sign_for_partner(
            parse_xml(body), ring, self._policy, f"{reply_id}.xml", self._clock()
        )


def _loose_msg_id(raw: bytes) -> str | None:
    """The MsgId of a file the bank refuses, read without trusting it, to address the refusal."""
    try:
        root = parse_xml(raw)
    except InvalidMessage:
        return None
    found = root.xpath("//*[local-name()='GrpHdr']/*[local-name()='MsgId']/text()")
    return str(found[0])[:35] if found else None
