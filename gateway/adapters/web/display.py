"""How the console writes amounts, times and names for a Vietnamese reader.

Amounts group thousands with `.` and write decimals after `,`, as Vietnamese does; VND has no
minor unit and carries the đồng sign: `2.752.515.310 ₫`. Other currencies keep their minor units
and their code: `1.234,50 EUR`. Times are shown in Hà Nội's time (UTC+7). Names are shown as
kept, in Unicode NFC, so that diacritics (Nguyễn Thị Hường) render as one letter each.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.domain.money import MINOR_UNITS

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
SYMBOLS = {"VND": "₫"}


def money(amount: Decimal | int | None, currency: str = "VND") -> str:
    """An amount as a Vietnamese reader expects it: `2.752.515.310 ₫`, `-1.234,50 EUR`."""
    if amount is None:
        return ""
    places = MINOR_UNITS.get(currency, 2)
    value = Decimal(amount).quantize(Decimal(1).scaleb(-places))
    sign = "-" if value < 0 else ""
    whole, _, fraction = f"{abs(value):f}".partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = sign + ".".join(groups) + ("," + fraction if fraction else "")
    return f"{text} {SYMBOLS.get(currency, currency)}"


def count(n: int | None) -> str:
    """A count with Vietnamese thousands separators: 3.631."""
    return money(Decimal(n or 0), "VND").removesuffix(" ₫")


def moment(value: datetime | None) -> str:
    """A time in Hà Nội's zone, to the second: `29/11/2026 17:05:09`."""
    if value is None:
        return ""
    return value.astimezone(HANOI).strftime("%d/%m/%Y %H:%M:%S")


def stamp(value: str | None) -> str:
    """A time written as ISO 8601 text (a parked message's header), shown as `moment` does;
    text that is no time is shown as it is."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment(parsed) if parsed.tzinfo else value


def day(value: date | str | None) -> str:
    """A date (or an ISO date's text) as Vietnamese writes it: `29/11/2026`."""
    if isinstance(value, str):
        value = date.fromisoformat(value) if value else None
    return value.strftime("%d/%m/%Y") if value else ""


def name(value: str | None) -> str:
    """A person's or unit's name as kept, composed (NFC) so each accented letter is one."""
    return unicodedata.normalize("NFC", value or "")
