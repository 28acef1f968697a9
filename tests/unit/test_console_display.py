"""The console writes amounts, times and names as a Vietnamese reader expects."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal

from gateway.adapters.web.display import count, day, moment, money, name, stamp


def test_vnd_amounts_group_thousands_with_dots_and_carry_the_dong_sign() -> None:
    """2752515310 VND is written 2.752.515.310 ₫; small and zero amounts too."""
    assert money(Decimal("2752515310")) == "2.752.515.310 ₫"
    assert money(Decimal("606000"), "VND") == "606.000 ₫"
    assert money(Decimal("999"), "VND") == "999 ₫"
    assert money(Decimal(0), "VND") == "0 ₫"
    assert money(Decimal("-1500000"), "VND") == "-1.500.000 ₫"


def test_other_currencies_keep_their_minor_units_after_a_comma() -> None:
    """EUR has two decimals, written after a comma, with its code."""
    assert money(Decimal("1234.5"), "EUR") == "1.234,50 EUR"
    assert money(Decimal("1000000"), "USD") == "1.000.000,00 USD"


def test_counts_and_dates() -> None:
    """Counts group like amounts; dates and times are Hà Nội's, day first."""
    assert count(3631) == "3.631"
    assert count(None) == "0"
    assert day(date(2026, 11, 29)) == "29/11/2026"
    assert day("2026-11-02") == "02/11/2026"
    assert moment(datetime(2026, 11, 29, 17, 30, 5, tzinfo=UTC)) == "30/11/2026 00:30:05"
    assert moment(None) == ""
    assert stamp("2026-11-29T17:30:05+00:00") == "30/11/2026 00:30:05"
    assert stamp("not a time") == "not a time"
    assert stamp(None) == ""


def test_names_keep_their_diacritics_composed() -> None:
    """A decomposed name (as some systems send it) is shown composed, diacritics intact."""
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Hường")
    assert decomposed != "Nguyễn Thị Hường"
    assert name(decomposed) == "Nguyễn Thị Hường"
    assert len(name(decomposed)) == len("Nguyễn Thị Hường")
    assert name(None) == ""
