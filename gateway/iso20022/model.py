"""Plain data the builders take and the readers return, free of XML."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from gateway.domain.orders import Category, Party, PaymentOrder


@dataclass(frozen=True, slots=True)
class PaymentGroup:
    """One PmtInf: orders sharing debtor account, execution date and category or batch."""

    pmt_inf_id: str
    debtor: Party
    execution_date: date
    category: Category
    orders: tuple[PaymentOrder, ...]


@dataclass(frozen=True, slots=True)
class OutboundBatch:
    """Everything needed to build one pain.001 file."""

    msg_id: str
    created_at: datetime
    initiating_party: str
    groups: tuple[PaymentGroup, ...]


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One CdtTrfTxInf as a bank reads it from a pain.001."""

    pmt_inf_id: str
    instr_id: str | None
    end_to_end_id: str
    amount: Decimal
    currency: str
    creditor_name: str
    creditor_account: str
    creditor_agent_bic: str | None
    debtor_account: str
    purpose: str | None
    remittance: str | None


@dataclass(frozen=True, slots=True)
class Pain001Content:
    """A pain.001 as a bank reads it."""

    msg_id: str
    created_at: datetime
    nb_of_txs: int
    ctrl_sum: Decimal | None
    initiating_party: str | None
    transfers: tuple[CreditTransfer, ...]


@dataclass(frozen=True, slots=True)
class TxStatus:
    """A transaction-level status line of a pain.002 (TxInfAndSts)."""

    original_end_to_end_id: str | None
    status: str
    original_instr_id: str | None = None
    original_pmt_inf_id: str | None = None
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A pain.002 customer payment status report."""

    msg_id: str
    created_at: datetime
    original_msg_id: str
    original_msg_name_id: str
    group_status: str | None
    transactions: tuple[TxStatus, ...]
    group_reason_code: str | None = None
    group_reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class EntryDetail:
    """One TxDtls inside a camt.054 entry."""

    amount: Decimal
    currency: str
    end_to_end_id: str | None = None
    msg_id: str | None = None
    pmt_inf_id: str | None = None
    account_servicer_ref: str | None = None
    counterparty_name: str | None = None
    counterparty_account: str | None = None
    remittance: str | None = None
    structured_ref: str | None = None
    return_reason: str | None = None
    # The return's RtrInf/AddtlInf lines joined: why the payment came back, in the bank's words.
    return_reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One Ntry of a camt.054 notification."""

    amount: Decimal
    currency: str
    credit_debit: str
    status: str
    booking_date: date | None
    value_date: date | None
    account_servicer_ref: str | None
    details: tuple[EntryDetail, ...] = field(default_factory=tuple)
    entry_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A camt.054 bank-to-customer debit/credit notification."""

    msg_id: str
    created_at: datetime
    account: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Balance:
    """One Bal of a camt.053 statement: type code (OPBD, CLBD, ...), signed by CdtDbtInd."""

    type: str
    amount: Decimal
    currency: str
    credit_debit: str
    date: date | None


@dataclass(frozen=True, slots=True)
class AccountStatement:
    """One Stmt of a camt.053: an account's balances and booked entries for a period."""

    statement_id: str
    account: str
    created_at: datetime | None
    balances: tuple[Balance, ...]
    entries: tuple[Entry, ...]
    electronic_sequence: str | None = None
    from_date: date | None = None
    to_date: date | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """A camt.053 bank-to-customer statement, one or more accounts."""

    msg_id: str
    created_at: datetime
    statements: tuple[AccountStatement, ...]


@dataclass(frozen=True, slots=True)
class IntradayReport:
    """A camt.052 bank-to-customer account report: bookings (and pending entries) during the
    day, one `AccountStatement` per `Rpt` (its `statement_id` is the report's `Id`)."""

    msg_id: str
    created_at: datetime
    reports: tuple[AccountStatement, ...]


@dataclass(frozen=True, slots=True)
class ReturnedTransaction:
    """One TxInf of a pacs.004: a settled payment coming back, with its original ids."""

    amount: Decimal
    currency: str
    return_id: str | None = None
    original_msg_id: str | None = None
    original_instr_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    settlement_date: date | None = None
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentReturn:
    """A pacs.004 payment return."""

    msg_id: str
    created_at: datetime
    original_msg_id: str | None
    transactions: tuple[ReturnedTransaction, ...]
