"""The demo month of Kho bạc Nhà nước Phú Lương: realistic, valid and deterministic."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.demo import DemoMonth, RevenueCollection, generate_month
from gateway.demo.month import business_days, next_business_day
from gateway.demo.names import KINH_FAMILY_NAMES, MINORITY_FAMILY_NAMES
from gateway.domain.orders import order_from_payload
from gateway.errors import InvalidMessage

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "payment-order-1.schema.json").read_text(
        "utf-8"
    )
)
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
UTILITIES = {"electricity", "water", "telecom"}


@pytest.fixture(scope="module")
def month() -> DemoMonth:
    return generate_month()


def _by_category(month: DemoMonth, *categories: str) -> list[dict[str, Any]]:
    return [order for order in month.orders if order["category"] in categories]


def _refusal(body: bytes) -> str:
    """Which intake layer refuses a body: 'json', 'schema' or 'domain' (or '' if none does)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "json"
    if not isinstance(payload, dict) or any(VALIDATOR.iter_errors(payload)):
        return "schema"
    try:
        order_from_payload(payload)
    except InvalidMessage:
        return "domain"
    return ""


def test_counts_by_category(month: DemoMonth) -> None:
    """3,631 benefit payouts, about 40 utility bills and a few supplier transfers."""
    counts = Counter(order["category"] for order in month.orders)
    assert counts["social_benefit"] == 3631
    assert 35 <= sum(counts[c] for c in UTILITIES) <= 45
    assert all(counts[c] > 0 for c in UTILITIES)
    assert 4 <= counts["supplier"] <= 6
    assert set(counts) == UTILITIES | {"social_benefit", "supplier"}


def test_benefit_total_is_about_2_2_billion_and_amounts_vary(month: DemoMonth) -> None:
    """The run totals 2.1–2.3 billion VND, about 606,000 each, in varied whole-dong amounts."""
    amounts = [Decimal(order["amount"]) for order in _by_category(month, "social_benefit")]
    total = sum(amounts, Decimal(0))
    assert Decimal(2_100_000_000) <= total <= Decimal(2_300_000_000)
    assert Decimal(580_000) <= total / len(amounts) <= Decimal(630_000)
    assert len(set(amounts)) >= 5
    assert all(amount == amount.to_integral_value() for amount in amounts)
    assert min(amounts) >= Decimal(500_000)
    assert all(amount % 250_000 == 0 for amount in amounts)  # 500,000 × halves, 250,000 extras


def test_benefit_run_is_one_batch_on_the_10th(month: DemoMonth) -> None:
    """Benefits share one batch_ref and the execution date of 10 November 2026 (a Tuesday)."""
    benefits = _by_category(month, "social_benefit")
    assert {order["batch_ref"] for order in benefits} == {"BTXH-PL-2026-11"}
    assert {order["requested_execution_date"] for order in benefits} == {"2026-11-10"}
    assert all(
        order["remittance"].startswith("Trợ cấp xã hội tháng 11/2026 - ") for order in benefits
    )
    others = [order for order in month.orders if order["category"] != "social_benefit"]
    assert others
    assert [order["order_id"] for order in others if "batch_ref" in order] == []


def test_execution_on_a_weekend_10th_moves_to_monday() -> None:
    """10 October 2026 is a Saturday: the run is executed on Monday the 12th."""
    october = generate_month(2026, 10, beneficiaries=30)
    dates = {o["requested_execution_date"] for o in _by_category(october, "social_benefit")}
    assert dates == {"2026-10-12"}
    assert next_business_day(date(2026, 11, 10)) == date(2026, 11, 10)
    assert next_business_day(date(2027, 1, 1)) == date(2027, 1, 4)  # holiday, then a weekend


def test_beneficiary_banks(month: DemoMonth) -> None:
    """Most beneficiaries bank with Agribank; the rest with four other Vietnamese banks."""
    bics = Counter(
        order["creditor"]["agent_bic"] for order in _by_category(month, "social_benefit")
    )
    assert set(bics) == {"VBAAVNVX", "BFTVVNVX", "BIDVVNVX", "ICBVVNVX", "LVBKVNVX"}
    assert 0.65 <= bics["VBAAVNVX"] / bics.total() <= 0.75
    numbers = [order["creditor"]["account"]["number"] for order in month.orders]
    benefit_numbers = numbers[: bics.total()]
    assert len(set(benefit_numbers)) == len(benefit_numbers)
    assert all(n.isdigit() and 10 <= len(n) <= 14 for n in numbers)


def test_every_order_is_debited_from_the_treasury(month: DemoMonth) -> None:
    """The treasury's own Agribank account is the debtor of every order."""
    assert month.treasury_account == "7411058271001"
    assert month.partner == "agribank"
    assert len(month.orders) > 3631
    for order in month.orders:
        assert order["debtor"]["account"] == {"number": month.treasury_account, "scheme": "BBAN"}
        assert order["debtor"]["agent_bic"] == "VBAAVNVX"
        assert order["debtor"]["name"] == "Kho bạc Nhà nước Phú Lương"


def test_bills_can_leave_from_the_vietinbank_account() -> None:
    """With bills_partner=vietinbank the utility bills debit the treasury's VietinBank account,
    and every other order is unchanged, still debiting Agribank."""
    both = generate_month(beneficiaries=50, bills_partner="vietinbank")
    one = generate_month(beneficiaries=50)
    assert both.partners == ("agribank", "vietinbank")
    assert one.partners == ("agribank",)
    assert [o["order_id"] for o in both.orders] == [o["order_id"] for o in one.orders]
    for moved, kept in zip(both.orders, one.orders, strict=True):
        if moved["category"] in ("electricity", "water", "telecom"):
            assert moved["debtor"]["account"]["number"] == "108000271446"
            assert moved["debtor"]["agent_bic"] == "ICBVVNVX"
            assert {**moved, "debtor": kept["debtor"]} == kept
        else:
            assert moved == kept
    with pytest.raises(ValueError, match="bills_partner"):
        generate_month(beneficiaries=5, bills_partner="bidv")


def test_business_days_follow_the_vietnamese_calendar() -> None:
    """The month's days come from the holiday library: Vietnam Cultural Day (24 November 2026)
    and Tết are not business days."""
    assert date(2026, 11, 24) not in business_days(2026, 11)
    assert next_business_day(date(2026, 2, 16)) == date(2026, 2, 23)


def test_order_ids_are_unique_and_fit_end_to_end_id(month: DemoMonth) -> None:
    """Order ids are unique and at most 35 characters."""
    ids = [order["order_id"] for order in month.orders]
    assert len(set(ids)) == len(ids)
    assert all(len(order_id) <= 35 for order_id in ids)
    assert ids[0] == "BTXH2611-000001"


def test_every_order_passes_schema_and_domain(month: DemoMonth) -> None:
    """Every order validates against payment-order/1 and is accepted by order_from_payload."""
    assert len(month.orders) > 3631
    for payload in month.orders:
        wire = json.loads(json.dumps(payload, ensure_ascii=False))
        assert wire == payload
        errors = [error.message for error in VALIDATOR.iter_errors(wire)]
        assert errors == [], (payload["order_id"], errors)
        order = order_from_payload(wire)
        assert order.money.currency == "VND"
        assert order.money.wire() == payload["amount"]


def test_no_floats_anywhere(month: DemoMonth) -> None:
    """Amounts are strings in orders and Decimal in revenue; no float appears."""

    def walk(value: Any) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    assert month.orders
    assert month.revenue
    walk(month.orders)
    walk([asdict(item) for item in month.revenue])
    assert all(isinstance(r.amount, Decimal) for r in month.revenue)


def test_utility_bills(month: DemoMonth) -> None:
    """Bills of budget-using units, 300,000–25,000,000 VND, spread over business days."""
    bills = _by_category(month, *UTILITIES)
    days = {day.isoformat() for day in business_days(2026, 11)}
    assert all(order["requested_execution_date"] in days for order in bills)
    assert len({order["requested_execution_date"] for order in bills}) >= 8
    for order in bills:
        assert Decimal(300_000) <= Decimal(order["amount"]) <= Decimal(25_000_000)
        assert "tháng 10/2026" in order["remittance"]
        assert any(unit in order["remittance"] for unit in ("UBND", "Trường", "Trạm Y tế"))
        assert order["budget"]["economic_code"] in {"6501", "6502", "6601"}
    electricity = _by_category(month, "electricity")
    assert electricity
    assert {order["creditor"]["agent_bic"] for order in electricity} <= {"BFTVVNVX", "ICBVVNVX"}


def test_supplier_transfers(month: DemoMonth) -> None:
    """A few transfers of tens of millions to Vietnamese companies."""
    suppliers = _by_category(month, "supplier")
    assert 4 <= len(suppliers) <= 6
    for order in suppliers:
        assert Decimal(10_000_000) <= Decimal(order["amount"]) <= Decimal(100_000_000)
        assert order["creditor"]["name"].startswith("Công ty")


def test_rejected_accounts(month: DemoMonth) -> None:
    """A handful of beneficiary accounts the bank rejects: 3–4 closed, 2–3 unknown."""
    benefit_accounts = {
        order["creditor"]["account"]["number"] for order in _by_category(month, "social_benefit")
    }
    assert 3 <= len(month.closed_accounts) <= 4
    assert 2 <= len(month.unknown_accounts) <= 3
    assert not month.closed_accounts & month.unknown_accounts
    assert month.closed_accounts | month.unknown_accounts <= benefit_accounts


def test_every_invalid_body_is_refused_for_its_own_reason(month: DemoMonth) -> None:
    """One body is not JSON, one breaks the schema, one is refused by the domain."""
    assert 2 <= len(month.invalid_orders) <= 3
    reasons = [_refusal(body) for body in month.invalid_orders]
    assert all(reasons), reasons
    assert sorted(reasons) == ["domain", "json", "schema"]


def test_invalid_bodies_are_the_expected_faults(month: DemoMonth) -> None:
    """The refused bodies are VND with decimals and a creditor without an account."""
    decimals, no_account, truncated = month.invalid_orders
    assert json.loads(decimals)["amount"] == "606000.50"
    with pytest.raises(InvalidMessage, match="decimals"):
        order_from_payload(json.loads(decimals))
    assert "account" not in json.loads(no_account)["creditor"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated)
    valid_ids = {order["order_id"] for order in month.orders}
    assert json.loads(decimals)["order_id"] not in valid_ids


def test_revenue_collections(month: DemoMonth) -> None:
    """About 20 taxes and fines, 200,000–50,000,000 VND, with unique bank references."""
    revenue = month.revenue
    assert 15 <= len(revenue) <= 25
    assert all(isinstance(item, RevenueCollection) for item in revenue)
    assert {item.kind for item in revenue} == {"tax", "fine"}
    refs = [item.bank_ref for item in revenue]
    assert len(set(refs)) == len(refs)
    assert all(ref.startswith("VBA2611R") and len(ref) <= 35 for ref in refs)
    days = set(business_days(2026, 11))
    for item in revenue:
        assert Decimal(200_000) <= item.amount <= Decimal(50_000_000)
        assert item.value_date in days
        assert set(item.budget) == {"chapter", "economic_code", "treasury_code"}
        assert len(item.remittance) <= 140
    codes = {item.budget["economic_code"] for item in revenue}
    assert {"1001", "4254"} <= codes
    assert any(item.remittance.startswith("Phạt vi phạm hành chính giao thông") for item in revenue)


def test_same_seed_same_month_other_seed_other_month() -> None:
    """The month is deterministic for a seed, and a different seed gives different data."""
    first, second = generate_month(), generate_month()
    assert first == second
    assert first.invalid_orders == second.invalid_orders
    other = generate_month(seed=7)
    assert other.orders != first.orders
    assert len(other.orders) == len(first.orders)


def test_names_are_vietnamese_with_diacritics_in_nfc(month: DemoMonth) -> None:
    """Names keep their diacritics, in NFC, from Kinh and Thái Nguyên minority families."""
    names = [order["creditor"]["name"] for order in _by_category(month, "social_benefit")]
    names += [item.payer_name for item in month.revenue]
    texts = names + [order["remittance"] for order in month.orders]
    assert all(unicodedata.is_normalized("NFC", text) for text in texts)
    assert sum(not name.isascii() for name in names) / len(names) > 0.8
    families = Counter(name.split()[0] for name in names)
    assert families["Nguyễn"] > 0
    minority_only = {n for n, _ in MINORITY_FAMILY_NAMES} - {n for n, _ in KINH_FAMILY_NAMES}
    assert sum(families[name] for name in minority_only) > 100
    people = [name for name in names if not name.startswith(("Công ty", "Hợp tác xã"))]
    assert all(len(name.split()) == 3 for name in people)


def test_smaller_runs_and_other_months() -> None:
    """The generator scales down and works across a year end."""
    small = generate_month(2027, 1, beneficiaries=10)
    benefits = _by_category(small, "social_benefit")
    assert len(benefits) == 10
    assert benefits[0]["batch_ref"] == "BTXH-PL-2027-01"
    assert "tháng 12/2026" in _by_category(small, "electricity")[0]["remittance"]
    assert all(not any(VALIDATOR.iter_errors(order)) for order in small.orders)
    with pytest.raises(ValueError, match="beneficiaries"):
        generate_month(beneficiaries=0)
