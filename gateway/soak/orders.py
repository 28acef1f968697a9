"""The soak's payment orders: deterministic, in batches, a few to closed or unknown accounts."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from gateway.demo.month import TREASURY_ACCOUNT

# Creditor banks of the generated beneficiaries (Agribank, Vietcombank, BIDV, VietinBank).
_BICS = ("VBAAVNVX", "BFTVVNVX", "BIDVVNVX", "ICBVVNVX")
_NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Thu Dung", "Đỗ Minh Đức")


@dataclass(frozen=True, slots=True)
class SoakOrders:
    """The orders to publish, the accounts the bank refuses, and resends that must be refused."""

    orders: list[dict[str, Any]]
    closed: frozenset[str]
    unknown: frozenset[str]
    # Same order_id as an order above, other content: intake must refuse each as a conflict.
    conflicts: list[dict[str, Any]]

    def body(self, order: dict[str, Any]) -> bytes:
        """An order as the treasury core publishes it."""
        return json.dumps(order, ensure_ascii=False).encode("utf-8")


def generate(count: int, seed: int, batch_size: int = 200) -> SoakOrders:
    """`count` orders in batches of `batch_size`; about 1% to accounts the bank refuses."""
    rng = random.Random(seed)
    orders: list[dict[str, Any]] = []
    refused: list[str] = []
    for index in range(count):
        account = f"88{seed % 100:02d}{index:09d}"
        if rng.random() < 0.01:
            refused.append(account)
        orders.append(
            {
                "schema": "payment-order/1",
                "order_id": f"SOAK{seed % 1000:03d}-{index:07d}",
                "batch_ref": f"SOAK-{seed % 1000:03d}-{index // batch_size:04d}",
                "category": "social_benefit",
                "debtor": {
                    "name": "Kho bạc Nhà nước Phú Lương",
                    "account": {"number": TREASURY_ACCOUNT, "scheme": "BBAN"},
                    "agent_bic": "VBAAVNVX",
                },
                "creditor": {
                    "name": rng.choice(_NAMES),
                    "account": {"number": account, "scheme": "BBAN"},
                    "agent_bic": rng.choice(_BICS),
                },
                "amount": str(rng.randrange(100, 5000) * 1000),
                "currency": "VND",
                "requested_execution_date": "2026-12-01",
                "remittance": f"Trợ cấp xã hội tháng 12/2026 - hồ sơ {index}",
            }
        )
    conflicts = [
        {**orders[i], "amount": str(int(orders[i]["amount"]) + 1000)}
        for i in rng.sample(range(count), max(1, count // 500))
    ]
    half = len(refused) // 2
    return SoakOrders(orders, frozenset(refused[:half]), frozenset(refused[half:]), conflicts)
