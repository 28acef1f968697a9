"""Domain rules of orders that the JSON Schema cannot express."""

from __future__ import annotations

import pytest

from gateway.domain.orders import (
    Budget,
    budget_line,
    iban_is_valid,
    nfc,
    parse_budget_line,
    text_field,
)
from gateway.errors import InvalidMessage


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("DE89370400440532013000", True),
        ("GB82WEST12345698765432", True),
        ("DE89370400440532013001", False),
        ("DE00370400440532013000", False),
        ("de89370400440532013000", False),
        ("DE89", False),
    ],
)
def test_iban_check_digits(iban: str, valid: bool) -> None:
    """ISO 13616 mod-97 check digits decide."""
    assert iban_is_valid(iban) is valid


def test_length_is_counted_after_nfc() -> None:
    """A name in decomposed form (NFD) is measured and kept in NFC."""
    decomposed = "Nguyê\u0303n"  # e + circumflex + combining tilde
    assert len(decomposed) == 7
    assert text_field(decomposed, "name", 6) == nfc(decomposed)
    with pytest.raises(InvalidMessage, match="name is 6 characters after NFC; at most 5"):
        text_field(decomposed, "name", 5)


def test_budget_line_round_trips() -> None:
    """Budget codes survive the 35-character reference line they travel in."""
    budget = Budget(chapter="757", economic_code="2801", treasury_code="2714")
    line = budget_line(budget)
    assert line == "C757/E2801/T2714"
    assert parse_budget_line(line) == budget
    assert parse_budget_line("RF18539007547034") is None
    assert parse_budget_line(None) is None
    assert len(budget_line(Budget("A" * 12, "B" * 12, "C" * 12))) == 41
