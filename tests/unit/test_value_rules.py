"""ISO 20022 value rules enforced by the readers themselves, XSD or not: amounts, currencies,
lengths and dates; and an entry's agreement with its own details."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.errors import InvalidMessage
from gateway.iso20022.consistency import entry_problem
from gateway.iso20022.model import Entry, EntryDetail
from gateway.iso20022.reading import read_file
from gateway.iso20022.xml import parse_amount, parse_date, parse_datetime
from gateway.reasons import REASON_MAX, bounded, fault
from tests.unit.test_pacs004 import RETURN

# pacs.004.001.11: no XSD is shipped for it, so the reader's rules are all that stand.
PACS004 = RETURN.format(version="11").encode()


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "-540000",
        "+540000",
        "1E+999999999999999999",
        "1E+300000000",
        "5.4e5",
        "NaN",
        "Infinity",
        "540_000",
        "５４００００",
        "540000.",
        ".5",
        "1234567890123456789",
        "1.123456",
        "",
    ],
)
def test_an_amount_outside_iso_rules_is_refused(value: str) -> None:
    """Only plain ASCII digits, at most 18 of them and 5 after the point, no sign or exponent."""
    with pytest.raises(InvalidMessage, match=r"amount"):
        parse_amount(value, "amount")


@pytest.mark.parametrize("value", ["0", "540000", "1500.00", "123456789012345678", "0.12345"])
def test_an_amount_within_iso_rules_is_read_exactly(value: str) -> None:
    """A valid amount comes back as the exact Decimal written."""
    assert parse_amount(value, "amount") == Decimal(value)


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00", "9999-12-31T23:59:59+07:00", "2026-02-30T00:00:00", "20261110T0900"],
)
def test_a_date_time_out_of_range_or_shape_is_refused(value: str) -> None:
    """Year 1 (which overflows with an offset), year 9999 and impossible days are refused."""
    with pytest.raises(InvalidMessage, match=r"CreDtTm: .* (out of range|not an ISO date-time)"):
        parse_datetime(value, "CreDtTm")


def test_dates_are_read_with_their_range() -> None:
    """A date, with or without a zone, within range; year 0001 is not."""
    assert parse_date("2026-11-10", "d").isoformat() == "2026-11-10"
    assert parse_date("2026-11-10+07:00", "d").isoformat() == "2026-11-10"
    with pytest.raises(InvalidMessage, match=r"out of range"):
        parse_date("0001-01-01", "d")


def _pacs004(old: str, new: str) -> bytes:
    assert old.encode() in PACS004
    return PACS004.replace(old.encode(), new.encode(), 1)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (">606000<", ">abc<", r"'abc' is not an amount"),
        (">606000<", ">-606000<", r"'-606000' is not an amount"),
        (">606000<", ">1E+999999999999999999<", r"is not an amount"),
        ('Ccy="VND"', 'Ccy="vnd"', r"currency 'vnd' is not three capital letters"),
        (
            ">BTXH2611-000001</OrgnlEndToEndId>",
            ">" + "E" * 36 + "</OrgnlEndToEndId>",
            r"<OrgnlEndToEndId> is 36 characters long; ISO 20022 allows 35",
        ),
        (">2025-11-26<", ">0001-01-01<", r"IntrBkSttlmDt: '0001-01-01' is out of range"),
        (
            ">2025-11-26T10:15:00+07:00<",
            ">0001-01-01T00:00:00<",
            r"CreDtTm: '0001-01-01T00:00:00' is out of range",
        ),
    ],
)
def test_a_pacs004_without_xsd_is_held_to_iso_rules(old: str, new: str, reason: str) -> None:
    """pacs.004 has no XSD installed: the reader refuses what the XSD would have."""
    with pytest.raises(InvalidMessage, match=reason):
        read_file(_pacs004(old, new))


def test_no_validate_still_applies_the_value_rules() -> None:
    """`parse --no-validate` reads a file without its XSD, never without the value rules."""
    with pytest.raises(InvalidMessage, match=r"is not an amount"):
        read_file(_pacs004(">606000<", ">1E+300000000<"), validate=False)


def entry(amount: str, currency: str, *details: EntryDetail, direction: str = "DBIT") -> Entry:
    """A booked entry with the given details."""
    day = datetime(2026, 11, 10, tzinfo=UTC).date()
    return Entry(Decimal(amount), currency, direction, "BOOK", day, day, "REF-1", details)


def detail(amount: str, currency: str = "VND", direction: str | None = None) -> EntryDetail:
    """One transaction detail."""
    return EntryDetail(Decimal(amount), currency, "E2E-1", credit_debit=direction)


@pytest.mark.parametrize(
    ("checked", "reason"),
    [
        (entry("540000", "USD", detail("540000")), r"540000 USD but its detail 1 is in VND"),
        (entry("1", "VND", detail("540000")), r"is 1 VND but its 1 detail\(s\) add up to 540000"),
        (entry("540000", "VND", detail("540000", direction="CRDT")), r"DBIT but .* a CRDT"),
        (
            entry("1000", "VND", detail("600"), detail("500")),
            r"its 2 detail\(s\) add up to 1100 VND",
        ),
    ],
)
def test_an_entry_at_odds_with_its_details_is_named(checked: Entry, reason: str) -> None:
    """Currency, direction and total of the details must be the entry's."""
    problem = entry_problem(checked)
    assert problem is not None
    assert re.search(reason, problem)


def test_an_entry_agreeing_with_its_details_has_no_problem() -> None:
    """A batch entry whose details add up, and an entry without details, are fine."""
    assert entry_problem(entry("1000", "VND", detail("600"), detail("400"))) is None
    assert entry_problem(entry("1000", "VND")) is None


def test_a_reason_is_one_bounded_line() -> None:
    """Control characters are escaped and a long reason is cut, saying so."""
    forged = "transform 'x\nurn:x: valid camt.054.001.08 from bank-a\r\x1b[2J\u2028\u202e'"
    line = bounded(forged)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\u2028" not in line and "\u202e" not in line
    assert "\\n" in line and "\\u001b" in line
    long = bounded("key " + "K" * 5_000_000 + " is not pinned")
    assert len(long) == REASON_MAX and long.endswith("...(truncated)")


def test_a_fault_is_its_class_and_a_bounded_message() -> None:
    """An unexpected exception becomes its class name and message, never a stack."""
    assert fault(OverflowError("date value out of range")) == (
        "OverflowError: date value out of range"
    )
    assert fault(MemoryError()) == "MemoryError"
