"""Values for the storage contract: times, orders, files, messages, evidence, and a way to run
workers at once. Typed as they cross the port (Decimal, aware datetime, date, enums)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from gateway.service.channels import LEDGER_EXCHANGE
from gateway.service.ports import (
    NewOrder,
    OutboundFile,
    OutboxMessage,
    ReturnRecord,
    Revenue,
    StatementEntryRecord,
    StatementRecord,
)

HANOI = timezone(timedelta(hours=7))
# Microsecond precision on purpose: a backend that truncates times shows it here.
T0 = datetime(2026, 11, 2, 1, 30, 15, 123456, tzinfo=UTC)
DAY = date(2026, 11, 2)
PARTNER = "VBA"
OTHER_PARTNER = "BIDV"
GROUP = "VBA|2026-11-02|social"
JOIN_SECONDS = 60


def at(seconds: float) -> datetime:
    """T0 plus some seconds (UTC)."""
    return T0 + timedelta(seconds=seconds)


def sha256(raw: bytes) -> str:
    """The hex digest the port keys inbound files by."""
    return hashlib.sha256(raw).hexdigest()


def order_id(n: int) -> str:
    """A treasury order id."""
    return f"ORD-2026-{n:07d}"


def new_order(
    n: int = 1,
    *,
    partner: str = PARTNER,
    group_key: str = GROUP,
    category: str = "social",
    amount: str = "606000",
    currency: str = "VND",
    content_hash: str | None = None,
) -> NewOrder:
    """A valid order as intake stores it."""
    payload = f'{{"order_id": "{order_id(n)}", "amount": "{amount}", "ghi_chú": "Trợ cấp"}}'
    return NewOrder(
        order_id=order_id(n),
        content_hash=content_hash or sha256(payload.encode()),
        payload=payload,
        partner=partner,
        group_key=group_key,
        category=category,
        amount=Decimal(amount),
        currency=currency,
    )


def outbound_file(msg_id: str, *, partner: str = PARTNER, ctrl_sum: str = "606000") -> OutboundFile:
    """A pain.001 file as built."""
    return OutboundFile(
        msg_id=msg_id,
        partner=partner,
        message_type="pain.001.001.09",
        nb_of_txs=1,
        ctrl_sum=Decimal(ctrl_sum),
        sha256=sha256(msg_id.encode()),
    )


def message(
    n: int, *, exchange: str = LEDGER_EXCHANGE, routing_key: str = "posting.settled"
) -> OutboxMessage:
    """An outbox message; its body is not valid UTF-8 on purpose (bytes must stay bytes)."""
    return OutboxMessage(
        message_id=f"msg-{n:04d}",
        exchange=exchange,
        routing_key=routing_key,
        body=b"\x00\xff posting " + str(n).encode(),
        headers={"order_id": order_id(n), "kind": "settled"},
    )


def statement(
    statement_id: str,
    *,
    partner: str = PARTNER,
    account: str = "1500201091234",
    day: date = DAY,
    opening: str | None = "-1250000.50",
    closing: str | None = "0.00",
) -> StatementRecord:
    """A camt.053 statement as kept."""
    return StatementRecord(
        partner=partner,
        statement_id=statement_id,
        msg_id=f"MSG-{statement_id}",
        account=account,
        stmt_date=day,
        currency="VND",
        opening=None if opening is None else Decimal(opening),
        closing=None if closing is None else Decimal(closing),
        balances=[{"type": "OPBD", "amount": opening}, {"type": "CLBD", "amount": closing}],
    )


def entry(bank_ref: str, statement_id: str, *, amount: str = "606000.00") -> StatementEntryRecord:
    """One entry of a statement."""
    return StatementEntryRecord(
        partner=PARTNER,
        bank_ref=bank_ref,
        statement_id=statement_id,
        credit_debit="DBIT",
        status="BOOK",
        amount=Decimal(amount),
        currency="VND",
        value_date=DAY,
        end_to_end_id=f"E2E-{bank_ref}",
        return_reason=None,
    )


def revenue(bank_ref: str, *, amount: str = "1500000", day: date | None = DAY) -> Revenue:
    """A collection credited to the treasury."""
    return Revenue(
        partner=PARTNER,
        bank_ref=bank_ref,
        msg_id="CAMT054-1",
        amount=Decimal(amount),
        currency="VND",
        value_date=day,
        payer="Công ty TNHH Hòa Bình",
    )


def returned(bank_ref: str, n: int, *, amount: str = "606000", day: date = DAY) -> ReturnRecord:
    """A settled payment that came back."""
    return ReturnRecord(
        partner=PARTNER,
        bank_ref=bank_ref,
        order_id=order_id(n),
        msg_id="PACS004-1",
        amount=Decimal(amount),
        currency="VND",
        value_date=day,
        reason_code="AC04",
        reason_text="Closed account",
    )


def same_decimal(got: Decimal | None, wanted: str) -> bool:
    """Equal in value AND in written form (sign, digits, exponent)."""
    return got is not None and got.as_tuple() == Decimal(wanted).as_tuple()


class UndoError(Exception):
    """Raised inside a unit of work to roll it back."""


def run_threads(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run the workers at once (started together); their results, or the exceptions raised."""
    results: list[Any] = [None] * len(workers)
    start = threading.Barrier(len(workers))

    def runner(index: int, work: Callable[[], Any]) -> None:
        try:
            start.wait(timeout=JOIN_SECONDS)
            results[index] = work()
        except BaseException as exc:  # handed back to the test to assert on
            results[index] = exc

    threads = [
        threading.Thread(target=runner, args=(i, work), daemon=True)
        for i, work in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a worker is stuck"
    return results


def draining(relay: Any) -> Callable[[], int]:
    """A worker for `run_threads`: drains the relay until it finds nothing; how many it sent."""

    def drain() -> int:
        sent = 0
        while count := relay.drain():
            sent += count
        return sent

    return drain
