"""Money: exact decimals, minor units refused rather than rounded."""

from decimal import Decimal

import pytest

from gateway.domain.money import Money
from gateway.errors import InvalidMessage


def test_vnd_has_no_minor_units() -> None:
    """A VND amount is an integer on the wire."""
    assert Money.parse("606000", "VND").wire() == "606000"


def test_trailing_zero_decimals_are_accepted() -> None:
    """'150000.00' VND is the same amount as 150000, not an excess decimal."""
    assert Money.parse("150000.00", "VND").amount == Decimal(150000)


@pytest.mark.parametrize(
    ("amount", "currency", "needle"),
    [
        ("606000.50", "VND", "VND allows 0"),
        ("10.123", "EUR", "EUR allows 2"),
        ("-5", "VND", "positive"),
        ("0", "VND", "positive"),
        ("abc", "VND", "not a decimal"),
        ("NaN", "VND", "positive"),
        ("100", "XXX", "not supported"),
    ],
)
def test_bad_amounts_are_refused_with_the_reason(amount: str, currency: str, needle: str) -> None:
    """Each bad amount is refused with a message naming what is wrong."""
    with pytest.raises(InvalidMessage, match=needle):
        Money.parse(amount, currency)


def test_eur_keeps_two_decimals() -> None:
    """EUR is written with exactly two decimals."""
    assert Money.parse("12.5", "EUR").wire() == "12.50"
