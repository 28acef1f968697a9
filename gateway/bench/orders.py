"""The benchmark's payment orders: a district treasury's month, scaled up.

One social-assistance run of 3,631 beneficiaries (one batch_ref, one file), utility bills without
a batch_ref (grouped by category), supplier transfers in small batches, and the rest in large
batches of 2,000 to 20,000 orders, as a province's runs would be. About 0.2% go to accounts the
bank refuses, so rejections travel the same path as settlements. The same count and seed always
give the same orders.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from gateway.demo.month import (
    ORDER_SCHEMA,
    TREASURY_ACCOUNT,
    TREASURY_BIC,
    TREASURY_NAME,
    next_business_day,
)

BENEFIT_RUN = 3_631
LARGE_BATCHES = (5_000, 10_000, 20_000, 2_000)
_BICS = ("VBAAVNVX", "BFTVVNVX", "BIDVVNVX", "ICBVVNVX")
_NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Thu Dung", "Đỗ Minh Đức")
_BILLS = ("electricity", "water", "telecom")


@dataclass(frozen=True, slots=True)
class BenchOrders:
    """The orders to publish, in publishing order, and the accounts the bank refuses."""

    orders: list[dict[str, Any]]
    closed: frozenset[str]
    # Orders per file-to-be (batch_ref or bill category), for the printed mix.
    mix: dict[str, int]

    @staticmethod
    def body(order: dict[str, Any]) -> bytes:
        """An order as the treasury core publishes it."""
        return json.dumps(order, ensure_ascii=False).encode("utf-8")


def execution_day(today: date) -> date:
    """A business day comfortably ahead of every partner's cut-off, so no order is moved."""
    return next_business_day(today + timedelta(days=2))


def _sizes(count: int) -> Iterator[tuple[str, str | None, int]]:
    """(kind, batch_ref or None, size) of each group, summing to `count`."""
    left = count
    benefit = min(BENEFIT_RUN, left)
    yield "benefit", "BTXH-RUN", benefit
    left -= benefit
    bills = min(left, max(3, count // 100))
    for index, category in enumerate(_BILLS):
        share = bills // 3 + (1 if index < bills % 3 else 0)
        if share:
            yield category, None, share
    left -= bills
    suppliers = min(left, max(0, count // 50))
    batch = 0
    while suppliers > 0:
        size = min(suppliers, 5 + (batch * 7) % 46)
        yield "supplier", f"NCC-{batch:04d}", size
        suppliers -= size
        left -= size
        batch += 1
    batch = 0
    while left > 0:
        size = min(left, LARGE_BATCHES[batch % len(LARGE_BATCHES)])
        yield "large", f"LOT-{batch:04d}", size
        left -= size
        batch += 1


def generate(count: int, today: date, seed: int = 13, prefix: str = "B") -> BenchOrders:
    """`count` orders in the mix above, ids `<prefix>0000001`..."""
    rng = random.Random(seed)
    execution = execution_day(today).isoformat()
    orders: list[dict[str, Any]] = []
    closed: list[str] = []
    mix: dict[str, int] = {}
    for kind, batch_ref, size in _sizes(count):
        mix[batch_ref or kind] = size
        category = {"benefit": "social_benefit", "supplier": "supplier", "large": "social_benefit"}
        for _ in range(size):
            index = len(orders)
            account = f"86{seed % 100:02d}{index:09d}"
            if rng.random() < 0.002:
                closed.append(account)
            order: dict[str, Any] = {"schema": ORDER_SCHEMA, "order_id": f"{prefix}{index:07d}"}
            if batch_ref is not None:
                order["batch_ref"] = batch_ref
            order.update(
                {
                    "category": category.get(kind, kind),
                    "debtor": {
                        "name": TREASURY_NAME,
                        "account": {"number": TREASURY_ACCOUNT, "scheme": "BBAN"},
                        "agent_bic": TREASURY_BIC,
                    },
                    "creditor": {
                        "name": rng.choice(_NAMES),
                        "account": {"number": account, "scheme": "BBAN"},
                        "agent_bic": rng.choice(_BICS),
                    },
                    "amount": str(rng.randrange(100, 5000) * 1000),
                    "currency": "VND",
                    "requested_execution_date": execution,
                    "remittance": f"Chi trả {kind} - hồ sơ {index}",
                }
            )
            orders.append(order)
    return BenchOrders(orders, frozenset(closed), mix)


def urgent_order(index: int, today: date, seed: int = 13) -> dict[str, Any]:
    """One urgent supplier payment (`priority: urgent`), id `URG00001`..."""
    rng = random.Random(seed * 100_003 + index)
    return {
        "schema": ORDER_SCHEMA,
        "order_id": f"URG{index:05d}",
        "category": "supplier",
        "priority": "urgent",
        "debtor": {
            "name": TREASURY_NAME,
            "account": {"number": TREASURY_ACCOUNT, "scheme": "BBAN"},
            "agent_bic": TREASURY_BIC,
        },
        "creditor": {
            "name": rng.choice(_NAMES),
            "account": {"number": f"87{index:011d}", "scheme": "BBAN"},
            "agent_bic": rng.choice(_BICS),
        },
        "amount": str(rng.randrange(1000, 50_000) * 1000),
        "currency": "VND",
        "requested_execution_date": execution_day(today).isoformat(),
        "remittance": f"Thanh toán khẩn {index}",
    }
