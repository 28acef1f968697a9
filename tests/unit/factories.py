"""Small factories for ISO 20022 tests: Vietnamese names, VND amounts, domestic accounts."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from gateway.domain.money import Money
from gateway.domain.orders import Account, Budget, Category, Party, PaymentOrder
from gateway.iso20022.model import OutboundBatch, PaymentGroup

HANOI = timezone(timedelta(hours=7))
CREATED_AT = datetime(2025, 3, 14, 9, 30, tzinfo=HANOI)
EXECUTION = date(2025, 3, 17)

TREASURY = Party(
    name="Kho bạc Nhà nước huyện Đông Anh",
    account=Account(number="1500201091234", scheme="BBAN"),
    agent_bic="VBAAVNVX",
)

CREDITOR_BANKS = ("VBAAVNVX", "BFTVVNVX", "BIDVVNVX", "ICBVVNVX")
NAMES = (
    "Nguyễn Thị Hồng Nhung",
    "Trần Văn Đức",
    "Lê Thị Ánh Tuyết",
    "Phạm Quốc Bảo",
    "Hoàng Thị Thu Hà",
    "Đặng Minh Khôi",
)


def order(
    n: int = 1,
    *,
    name: str | None = None,
    amount: str = "606000",
    currency: str = "VND",
    category: Category = Category.SOCIAL_BENEFIT,
    remittance: str = "Trợ cấp xã hội tháng 3/2025",
    budget: Budget | None = None,
    account: Account | None = None,
) -> PaymentOrder:
    """One payment order from the treasury to a beneficiary."""
    return PaymentOrder(
        order_id=f"ORD-2025-{n:07d}",
        category=category,
        debtor=TREASURY,
        creditor=Party(
            name=name or NAMES[n % len(NAMES)],
            account=account or Account(number=f"10{n:011d}", scheme="BBAN"),
            agent_bic=CREDITOR_BANKS[n % len(CREDITOR_BANKS)],
        ),
        money=Money.parse(amount, currency),
        requested_execution_date=EXECUTION,
        remittance=remittance,
        budget=budget,
    )


def group(
    orders: list[PaymentOrder], pmt_inf_id: str = "PMT-2025-0001", **kwargs: object
) -> PaymentGroup:
    """One PmtInf of orders from the treasury account."""
    category = kwargs.get("category", orders[0].category)
    assert isinstance(category, Category)
    return PaymentGroup(
        pmt_inf_id=pmt_inf_id,
        debtor=TREASURY,
        execution_date=EXECUTION,
        category=category,
        orders=tuple(orders),
    )


def batch(*groups: PaymentGroup, msg_id: str = "KBNN-20250314-0001") -> OutboundBatch:
    """An outbound batch from the treasury."""
    return OutboundBatch(
        msg_id=msg_id,
        created_at=CREATED_AT,
        initiating_party="Kho bạc Nhà nước",
        groups=groups,
    )


def benefits_batch(count: int, amount: str = "606000") -> OutboundBatch:
    """A monthly social-benefit run of `count` beneficiaries in one PmtInf."""
    return batch(group([order(n, amount=amount) for n in range(1, count + 1)]))


def total(amounts: list[str]) -> Decimal:
    """Exact sum of decimal strings."""
    return sum((Decimal(a) for a in amounts), Decimal(0))
