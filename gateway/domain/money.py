"""Amounts as Decimal with ISO 4217 minor units: refused, never rounded."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gateway.errors import InvalidMessage

# ISO 4217 minor units of the currencies the gateway accepts.
MINOR_UNITS: dict[str, int] = {
    "VND": 0,
    "JPY": 0,
    "KRW": 0,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CNY": 2,
    "SGD": 2,
    "THB": 2,
}


@dataclass(frozen=True, slots=True)
class Money:
    """A positive amount in one currency, exact to the currency's minor unit."""

    amount: Decimal
    currency: str

    @classmethod
    def parse(cls, amount: str, currency: str) -> Money:
        """Read a decimal string; refuse floats' cousins, signs, and excess decimals."""
        if currency not in MINOR_UNITS:
            raise InvalidMessage(f"currency {currency!r} is not supported")
        if not isinstance(amount, str):
            raise InvalidMessage(f"amount must be a decimal string, got {type(amount).__name__}")
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise InvalidMessage(f"amount {amount!r} is not a decimal number") from None
        if not value.is_finite() or value <= 0:
            raise InvalidMessage(f"amount {amount!r} must be a positive number")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        decimals = max(0, -exponent)
        allowed = MINOR_UNITS[currency]
        if decimals > allowed and value != value.quantize(Decimal(1).scaleb(-allowed)):
            raise InvalidMessage(
                f"amount {amount} {currency} has {decimals} decimals; {currency} allows {allowed}"
            )
        return cls(value.quantize(Decimal(1).scaleb(-allowed)), currency)

    def wire(self) -> str:
        """The amount as ISO 20022 writes it: exactly the currency's minor units."""
        return format(self.amount, "f")


def total(amounts: list[Decimal]) -> Decimal:
    """Sum of exact amounts, starting from an exact zero."""
    return sum(amounts, Decimal(0))
