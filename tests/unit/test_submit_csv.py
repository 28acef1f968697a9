"""`gateway submit`'s reading of a CSV file: the separator taken from the header, quoting as
spreadsheets write it (a quote in a field doubled, a separator inside quotes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import _read_orders

HEADER = [
    "order_id", "category", "debtor_name", "debtor_account", "debtor_bic", "creditor_name",
    "creditor_account", "creditor_bic", "amount", "currency", "requested_execution_date",
    "remittance",
]  # fmt: skip
ROW = [
    "CSV-1", "supplier", "Kho bạc Nhà nước Phú Lương", "7411058271001", "VBAAVNVX",
    '"Công ty ""Minh Long"", Hà Nội; chi nhánh 2"', "1020304050", "ICBVVNVX", "1250000", "VND",
    "2026-11-12", '"HĐ 12, 13; đợt 2"',
]  # fmt: skip


@pytest.mark.parametrize("separator", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_quoted_fields_keep_their_quotes_and_separators(tmp_path: Path, separator: str) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        separator.join(HEADER) + "\r\n" + separator.join(ROW) + "\r\n", encoding="utf-8-sig"
    )
    [order] = _read_orders(path)
    assert order["creditor"]["name"] == 'Công ty "Minh Long", Hà Nội; chi nhánh 2'
    assert order["remittance"] == "HĐ 12, 13; đợt 2"
    assert (order["amount"], order["requested_execution_date"]) == ("1250000", "2026-11-12")
