"""A realistic, deterministic month of one district treasury: Kho bạc Nhà nước Phú Lương.

`generate_month()` gives the payment orders the treasury core would publish in a month (the
social-assistance run, utility bills, supplier transfers), a few bodies intake must refuse, the
accounts the bank will reject, and the revenue the bank will report as camt.054 credits. The same
seed always gives the same month. Amounts are `Decimal` or decimal strings, never floats; all text
is NFC. Budget codes are illustrative, in the shape of the State Budget Index.
"""

from __future__ import annotations

import calendar
import json
import random
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

from gateway.demo import names
from gateway.demo.names import nfc
from gateway.domain.calendar import BusinessCalendar

ORDER_SCHEMA: Final = "payment-order/1"

TREASURY_NAME: Final = nfc("Kho bạc Nhà nước Phú Lương")
TREASURY_ACCOUNT: Final = "7411058271001"  # the treasury's own account at Agribank
TREASURY_BIC: Final = "VBAAVNVX"
PARTNER: Final = "agribank"
# The treasury's second account, at VietinBank (reached by file exchange), for utility bills.
BILLS_ACCOUNT: Final = "108000271446"
BILLS_BIC: Final = "ICBVVNVX"
BILLS_PARTNER: Final = "vietinbank"
TREASURY_CODE: Final = "2714"  # illustrative code of the Phú Lương treasury office

# Social assistance: the standard amount (Decree 20/2021/ND-CP as amended by Decree 76/2024/ND-CP,
# 500,000 VND from 1 July 2024) times each beneficiary's coefficient; most are at 1.0.
SOCIAL_STANDARD: Final = Decimal(500_000)
SOCIAL_COEFFICIENTS: Final[tuple[tuple[Decimal, int], ...]] = (
    (Decimal("1.0"), 78),
    (Decimal("1.5"), 14),
    (Decimal("2.0"), 5),
    (Decimal("2.5"), 3),
)
CARE_ALLOWANCE: Final = Decimal(250_000)  # monthly care support for some beneficiaries
CARE_ALLOWANCE_SHARE: Final = 0.08
SOCIAL_BUDGET: Final = {"chapter": "624", "economic_code": "7151", "treasury_code": TREASURY_CODE}

# Banks of the beneficiaries: BIC, share (percent), account prefix, digits after the prefix.
BENEFICIARY_BANKS: Final[tuple[tuple[str, int, tuple[str, ...], int], ...]] = (
    ("VBAAVNVX", 70, ("8506205", "8507205"), 6),  # Agribank, 13 digits
    ("BFTVVNVX", 8, ("0391000",), 6),  # Vietcombank, 13 digits
    ("BIDVVNVX", 8, ("3951000",), 7),  # BIDV, 14 digits
    ("ICBVVNVX", 8, ("1088",), 8),  # VietinBank, 12 digits
    ("LVBKVNVX", 6, ("0601",), 6),  # LPBank, 10 digits
)

# Utility companies: category, name, (BIC, account) pairs they are paid on.
UTILITIES: Final[tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]] = (
    (
        "electricity",
        nfc("Công ty Điện lực Thái Nguyên"),
        (("BFTVVNVX", "0391000458812"), ("ICBVVNVX", "108800214456")),
    ),
    ("water", nfc("Công ty Cổ phần Nước sạch Thái Nguyên"), (("BIDVVNVX", "39510000667021"),)),
    ("telecom", nfc("Viễn thông Thái Nguyên (VNPT Thái Nguyên)"), (("ICBVVNVX", "108800377190"),)),
    ("telecom", nfc("Viettel Thái Nguyên"), (("BIDVVNVX", "39510000882345"),)),
)
UTILITY_BILLS: Final = {"electricity": 18, "water": 10, "telecom": 12}
UTILITY_WORDS: Final = {
    "electricity": "tiền điện",
    "water": "tiền nước",
    "telecom": "cước viễn thông",
}
UTILITY_CODES: Final = {"electricity": "6501", "water": "6502", "telecom": "6601"}
UNIT_CHAPTERS: Final = {"commune": "805", "school": "622", "health": "623"}
# Bill amounts in VND by (category, unit kind): low, high.
UTILITY_RANGES: Final[dict[tuple[str, str], tuple[int, int]]] = {
    ("electricity", "commune"): (3_000_000, 15_000_000),
    ("electricity", "school"): (1_500_000, 25_000_000),
    ("electricity", "health"): (500_000, 4_000_000),
    ("water", "commune"): (500_000, 3_000_000),
    ("water", "school"): (500_000, 3_000_000),
    ("water", "health"): (300_000, 1_500_000),
    ("telecom", "commune"): (400_000, 2_500_000),
    ("telecom", "school"): (300_000, 2_000_000),
    ("telecom", "health"): (300_000, 1_200_000),
}
SUPPLIER_TRANSFERS: Final = 5
SUPPLIER_BANKS: Final = ("BFTVVNVX", "BIDVVNVX", "ICBVVNVX", "VBAAVNVX")

CLOSED_ACCOUNTS: Final = 4
UNKNOWN_ACCOUNTS: Final = 2

# Fixed-date public holidays (lunar ones, such as Tết, are not modelled).
VN_CALENDAR: Final = BusinessCalendar("VN")


@dataclass(frozen=True)
class RevenueCollection:
    """A tax or fine collected by the bank and credited to the treasury (a camt.054 credit)."""

    bank_ref: str
    payer_name: str
    amount: Decimal
    value_date: date
    kind: str  # "tax" | "fine"
    budget: dict[str, str]
    remittance: str


@dataclass(frozen=True)
class DemoMonth:
    """Everything the demo needs for one month of the district treasury."""

    orders: list[dict[str, Any]]  # payment-order/1 payloads, ready to publish as JSON
    invalid_orders: list[bytes]  # raw bodies that intake must refuse
    closed_accounts: frozenset[str]  # creditor account numbers the bank says are closed (AC04)
    unknown_accounts: frozenset[str]  # creditor account numbers the bank does not know (AC01)
    revenue: list[RevenueCollection]
    treasury_account: str  # the treasury's own account number at the partner bank
    partner: str  # the partner profile holding the treasury account
    # Partner whose treasury account pays the utility bills (the same as `partner`, or VietinBank).
    bills_partner: str = PARTNER

    @property
    def partners(self) -> tuple[str, ...]:
        """The partner banks this month's orders go to."""
        return tuple(dict.fromkeys((self.partner, self.bills_partner)))


def is_business_day(day: date) -> bool:
    """Monday to Friday and not a Vietnamese public holiday (Tết and the lunar ones included)."""
    return VN_CALENDAR.is_business_day(day)


def next_business_day(day: date) -> date:
    """The day itself when it is a business day, else the next one."""
    return VN_CALENDAR.next_business_day(day)


def business_days(year: int, month: int) -> list[date]:
    """The business days of a month, in order."""
    last = calendar.monthrange(year, month)[1]
    days = (date(year, month, d) for d in range(1, last + 1))
    return [day for day in days if is_business_day(day)]


def _vnd(amount: Decimal) -> str:
    """A VND amount as the contract writes it: whole dong, no exponent."""
    return format(amount.quantize(Decimal(1)), "f")


def _party(name: str, number: str, bic: str) -> dict[str, Any]:
    return {"name": name, "account": {"number": number, "scheme": "BBAN"}, "agent_bic": bic}


def _treasury(partner: str = PARTNER) -> dict[str, Any]:
    if partner == BILLS_PARTNER:
        return _party(TREASURY_NAME, BILLS_ACCOUNT, BILLS_BIC)
    return _party(TREASURY_NAME, TREASURY_ACCOUNT, TREASURY_BIC)


def _order(
    order_id: str,
    category: str,
    *,
    creditor: dict[str, Any],
    amount: Decimal,
    execution: date,
    remittance: str,
    budget: dict[str, str],
    batch_ref: str | None = None,
    debtor: str = PARTNER,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"schema": ORDER_SCHEMA, "order_id": order_id}
    if batch_ref is not None:
        payload["batch_ref"] = batch_ref
    payload.update(
        {
            "category": category,
            "debtor": _treasury(debtor),
            "creditor": creditor,
            "amount": _vnd(amount),
            "currency": "VND",
            "requested_execution_date": execution.isoformat(),
            "remittance": nfc(remittance),
            "budget": dict(budget),
        }
    )
    return payload


class _Accounts:
    """Fresh, unique account numbers in each bank's format."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used = {TREASURY_ACCOUNT, BILLS_ACCOUNT} | {
            acc for *_, pairs in UTILITIES for _, acc in pairs
        }

    def beneficiary_bank(self) -> str:
        banks = [bic for bic, *_ in BENEFICIARY_BANKS]
        weights = [share for _, share, *_ in BENEFICIARY_BANKS]
        return self._rng.choices(banks, weights=weights)[0]

    def new(self, bic: str) -> str:
        _, _, prefixes, digits = next(bank for bank in BENEFICIARY_BANKS if bank[0] == bic)
        while True:
            tail = self._rng.randrange(10**digits)
            number = f"{self._rng.choice(prefixes)}{tail:0{digits}d}"
            if number not in self._used:
                self._used.add(number)
                return number


def _social_run(
    rng: random.Random, accounts: _Accounts, year: int, month: int, count: int
) -> list[dict[str, Any]]:
    yymm = f"{year % 100:02d}{month:02d}"
    batch_ref = f"BTXH-PL-{year}-{month:02d}"
    execution = next_business_day(date(year, month, 10))
    coefficients = [c for c, _ in SOCIAL_COEFFICIENTS]
    weights = [w for _, w in SOCIAL_COEFFICIENTS]
    orders = []
    for n in range(1, count + 1):
        commune = rng.choice(names.COMMUNES)
        bic = accounts.beneficiary_bank()
        amount = SOCIAL_STANDARD * rng.choices(coefficients, weights=weights)[0]
        if rng.random() < CARE_ALLOWANCE_SHARE:
            amount += CARE_ALLOWANCE
        orders.append(
            _order(
                order_id=f"BTXH{yymm}-{n:06d}",
                category="social_benefit",
                creditor=_party(names.full_name(rng), accounts.new(bic), bic),
                amount=amount,
                execution=execution,
                remittance=f"Trợ cấp xã hội tháng {month}/{year} - {commune}",
                budget=SOCIAL_BUDGET,
                batch_ref=batch_ref,
            )
        )
    return orders


def _previous_period(year: int, month: int) -> str:
    return f"{month - 1}/{year}" if month > 1 else f"12/{year - 1}"


def _utility_bills(
    rng: random.Random, year: int, month: int, partner: str = PARTNER
) -> list[dict[str, Any]]:
    """Bills of the previous month's electricity, water and telecom for budget-using units."""
    period = _previous_period(year, month)
    days = business_days(year, month)
    units = [
        (kind, template.format(commune=commune, place=names.place_name(commune)))
        for commune in names.COMMUNES
        for kind, template in names.UNIT_KINDS
    ]
    bills: list[tuple[date, dict[str, Any]]] = []
    for category, count in UTILITY_BILLS.items():
        companies = [(name, pairs) for cat, name, pairs in UTILITIES if cat == category]
        for kind, unit in rng.sample(units, count):
            company, pairs = rng.choice(companies)
            bic, number = rng.choice(pairs)
            low, high = UTILITY_RANGES[(category, kind)]
            amount = Decimal(rng.randint(low // 10, high // 10) * 10)
            bill_no = f"{rng.randrange(10**7):07d}"
            remittance = (
                f"Thanh toán {UTILITY_WORDS[category]} tháng {period} - {unit} - HĐ số {bill_no}"
            )
            budget = {
                "chapter": UNIT_CHAPTERS[kind],
                "economic_code": UTILITY_CODES[category],
                "treasury_code": TREASURY_CODE,
            }
            day = rng.choice(days)
            order = _order(
                "",
                category,
                creditor=_party(company, number, bic),
                amount=amount,
                execution=day,
                remittance=remittance,
                budget=budget,
                debtor=partner,
            )
            bills.append((day, order))
    return _numbered(bills, f"DV{year % 100:02d}{month:02d}", 4)


def _supplier_transfers(
    rng: random.Random, accounts: _Accounts, year: int, month: int
) -> list[dict[str, Any]]:
    period = f"{month}/{year}"
    days = business_days(year, month)
    transfers: list[tuple[date, dict[str, Any]]] = []
    for company, goods, buyer, chapter, code in rng.sample(names.SUPPLIERS, SUPPLIER_TRANSFERS):
        bic = rng.choice(SUPPLIER_BANKS)
        amount = Decimal(rng.randint(15_000, 95_000) * 1_000)
        contract = f"{rng.randint(5, 60):02d}/{year}/HĐKT"
        remittance = f"Thanh toán HĐ số {contract} - {goods.format(period=period)} - {buyer}"
        budget = {"chapter": chapter, "economic_code": code, "treasury_code": TREASURY_CODE}
        day = rng.choice(days)
        order = _order(
            "",
            "supplier",
            creditor=_party(company, accounts.new(bic), bic),
            amount=amount,
            execution=day,
            remittance=remittance,
            budget=budget,
        )
        transfers.append((day, order))
    return _numbered(transfers, f"NCC{year % 100:02d}{month:02d}", 4)


def _numbered(
    dated: list[tuple[date, dict[str, Any]]], prefix: str, width: int
) -> list[dict[str, Any]]:
    """Orders by date (stable), given ids in that order."""
    orders = [payload for _, payload in sorted(dated, key=lambda pair: pair[0])]
    for n, payload in enumerate(orders, start=1):
        payload["order_id"] = f"{prefix}-{n:0{width}d}"
    return orders


def _invalid_orders(template: dict[str, Any], year: int, month: int) -> list[bytes]:
    """Bodies intake must refuse: decimals in VND, no creditor account, and not JSON at all."""
    yymm = f"{year % 100:02d}{month:02d}"
    decimals = json.loads(json.dumps(template))
    decimals["order_id"] = f"BTXH{yymm}-E00001"
    decimals["amount"] = "606000.50"
    no_account = json.loads(json.dumps(template))
    no_account["order_id"] = f"BTXH{yymm}-E00002"
    del no_account["creditor"]["account"]
    truncated = json.loads(json.dumps(template))
    truncated["order_id"] = f"BTXH{yymm}-E00003"
    cut = _body(truncated)
    return [_body(decimals), _body(no_account), cut[: len(cut) * 3 // 5]]


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class _RevenueKind:
    """One kind of revenue the bank collects for the treasury, and how many in a month."""

    kind: str  # "tax" | "fine"
    label: str  # opening words of the remittance
    chapter: str
    economic_code: str
    count: int
    low: int  # amount range in VND, in steps of `step`
    high: int
    step: int = 1_000
    fixed: tuple[int, ...] = ()  # set amounts (fees, fines) instead of a range
    by_company: bool = False

    def amount(self, rng: random.Random) -> Decimal:
        if self.fixed:
            return Decimal(rng.choice(self.fixed))
        return Decimal(rng.randint(self.low // self.step, self.high // self.step) * self.step)


REVENUE_KINDS: Final = (
    _RevenueKind("tax", "Nộp thuế TNCN từ tiền lương, tiền công", "754", "1001", 3,
                 1_500_000, 18_000_000, by_company=True),
    _RevenueKind("tax", "Nộp thuế TNCN hộ kinh doanh", "757", "1003", 3, 300_000, 4_500_000),
    _RevenueKind("tax", "Nộp thuế TNCN chuyển nhượng bất động sản", "757", "1006", 2,
                 4_000_000, 50_000_000),
    _RevenueKind("tax", "Nộp thuế sử dụng đất phi nông nghiệp", "757", "1602", 3,
                 200_000, 2_000_000),
    _RevenueKind("tax", "Nộp lệ phí môn bài", "757", "2863", 2, 0, 0,
                 fixed=(300_000, 500_000, 1_000_000)),
    _RevenueKind("tax", "Nộp lệ phí trước bạ nhà, đất", "757", "2801", 2, 800_000, 9_000_000),
    _RevenueKind("fine", "Phạt vi phạm hành chính giao thông", "618", "4254", 4, 0, 0,
                 fixed=(400_000, 800_000, 1_000_000, 2_000_000, 4_000_000, 6_000_000)),
    _RevenueKind("fine", "Phạt vi phạm hành chính lĩnh vực đất đai", "618", "4268", 1,
                 3_000_000, 30_000_000, step=1_000_000),
)  # fmt: skip


def _revenue(rng: random.Random, year: int, month: int) -> list[RevenueCollection]:
    days = business_days(year, month)
    drafts: list[tuple[date, str, Decimal, str, dict[str, str], str]] = []
    for spec in REVENUE_KINDS:
        for _ in range(spec.count):
            if spec.by_company:
                payer, tax_code = rng.choice(names.TAXPAYER_COMPANIES)
            else:
                payer, tax_code = names.full_name(rng), f"46{rng.randrange(10**8):08d}"
            if spec.kind == "fine":
                reference = f"QĐ số {rng.randint(100, 2999):04d}/QĐ-XPVPHC"
            else:
                reference = f"MST {tax_code}"
            remittance = nfc(f"{spec.label} - {reference} - {payer}")
            budget = {
                "chapter": spec.chapter,
                "economic_code": spec.economic_code,
                "treasury_code": TREASURY_CODE,
            }
            drafts.append(
                (rng.choice(days), spec.kind, spec.amount(rng), payer, budget, remittance)
            )
    drafts.sort(key=lambda draft: draft[0])
    sequence = rng.randint(100, 900)
    collections = []
    for day, kind, amount, payer, budget, remittance in drafts:
        sequence += rng.randint(1, 40)
        collections.append(
            RevenueCollection(
                bank_ref=f"VBA{year % 100:02d}{month:02d}R{sequence:06d}",
                payer_name=payer,
                amount=amount,
                value_date=day,
                kind=kind,
                budget=budget,
                remittance=remittance[:140],
            )
        )
    return collections


def generate_month(
    year: int = 2026,
    month: int = 11,
    seed: int = 2026,
    beneficiaries: int = 3631,
    bills_partner: str = PARTNER,
) -> DemoMonth:
    """One month of Kho bạc Nhà nước Phú Lương; the same arguments always give the same month.

    `bills_partner="vietinbank"` pays the utility bills from the treasury's VietinBank account,
    whose bank is reached by file exchange; everything else leaves from Agribank.
    """
    if bills_partner not in (PARTNER, BILLS_PARTNER):
        raise ValueError(f"bills_partner must be {PARTNER} or {BILLS_PARTNER}")
    if beneficiaries < 1:
        raise ValueError("beneficiaries must be at least 1")
    rng = random.Random(seed)
    accounts = _Accounts(rng)
    social = _social_run(rng, accounts, year, month, beneficiaries)
    utilities = _utility_bills(rng, year, month, bills_partner)
    suppliers = _supplier_transfers(rng, accounts, year, month)
    creditors = [order["creditor"]["account"]["number"] for order in social]
    rejected = rng.sample(creditors, min(len(creditors), CLOSED_ACCOUNTS + UNKNOWN_ACCOUNTS))
    revenue = _revenue(rng, year, month)
    others = sorted(utilities + suppliers, key=lambda order: order["requested_execution_date"])
    return DemoMonth(
        orders=social + others,
        invalid_orders=_invalid_orders(social[0], year, month),
        closed_accounts=frozenset(rejected[:CLOSED_ACCOUNTS]),
        unknown_accounts=frozenset(rejected[CLOSED_ACCOUNTS:]),
        revenue=revenue,
        treasury_account=TREASURY_ACCOUNT,
        partner=PARTNER,
        bills_partner=bills_partner,
    )
