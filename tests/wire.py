"""Payment orders as the treasury publishes them, for tests that need a few on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Msg:
    """A broker delivery as a consuming service sees it."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)


def order(**changes: Any) -> dict[str, Any]:
    """A valid social-assistance order of Phú Lương's, changed as asked."""
    base: dict[str, Any] = {
        "schema": "payment-order/1",
        "order_id": "BTXH2611-000001",
        "batch_ref": "BTXH-PL-2026-11",
        "category": "social_benefit",
        "debtor": {
            "name": "Kho bạc Nhà nước Phú Lương",
            "account": {"number": "7411058271001", "scheme": "BBAN"},
            "agent_bic": "VBAAVNVX",
        },
        "creditor": {
            "name": "Nguyễn Thị Hồng Nhung",
            "account": {"number": "8800123456789", "scheme": "BBAN"},
            "agent_bic": "VBAAVNVX",
        },
        "amount": "540000",
        "currency": "VND",
        "requested_execution_date": "2026-11-10",
        "remittance": "Trợ cấp xã hội tháng 11/2026 - xã Yên Ninh",
    }
    base.update(changes)
    return base


def messages(*payloads: dict[str, Any]) -> list[Msg]:
    """The orders as deliveries."""
    return [Msg(json.dumps(p, ensure_ascii=False).encode()) for p in payloads]
