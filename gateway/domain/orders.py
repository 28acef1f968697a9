"""Payment orders as the treasury core sends them (contract payment-order/1)."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from gateway.domain.money import Money
from gateway.errors import InvalidMessage

ORDER_SCHEMA = "payment-order/1"


class Category(StrEnum):
    """What an order pays for; each maps to its ISO 20022 purpose code."""

    SOCIAL_BENEFIT = "social_benefit"
    ELECTRICITY = "electricity"
    WATER = "water"
    TELECOM = "telecom"
    SALARY = "salary"
    SUPPLIER = "supplier"
    TAX = "tax"
    GOVERNMENT = "government"

    @property
    def purpose(self) -> str:
        """ISO 20022 ExternalPurpose1Code for this category."""
        return _PURPOSE[self]


_PURPOSE = {
    Category.SOCIAL_BENEFIT: "SSBE",
    Category.ELECTRICITY: "ELEC",
    Category.WATER: "WTER",
    Category.TELECOM: "PHON",
    Category.SALARY: "SALA",
    Category.SUPPLIER: "SUPP",
    Category.TAX: "TAXS",
    Category.GOVERNMENT: "GOVT",
}


def nfc(text: str) -> str:
    """Text in Unicode NFC, the form every length check and every file uses."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True, slots=True)
class Account:
    """An IBAN, or a domestic account number with its scheme (Vietnamese accounts are not IBAN)."""

    iban: str | None = None
    number: str | None = None
    scheme: str | None = None

    @property
    def key(self) -> str:
        """The account as one string, for routing and grouping."""
        return self.iban or f"{self.scheme}:{self.number}"


@dataclass(frozen=True, slots=True)
class Party:
    """A debtor or creditor: name, account and the BIC of the bank holding it."""

    name: str
    account: Account
    agent_bic: str


@dataclass(frozen=True, slots=True)
class Budget:
    """Vietnamese budget classification: chapter, economic code, treasury code."""

    chapter: str | None = None
    economic_code: str | None = None
    treasury_code: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """One instruction to pay, as accepted at intake."""

    order_id: str
    category: Category
    debtor: Party
    creditor: Party
    money: Money
    requested_execution_date: date
    remittance: str
    batch_ref: str | None = None
    budget: Budget | None = None
    partner: str | None = None

    @property
    def end_to_end_id(self) -> str:
        """The order id travels to the bank and back as the EndToEndId."""
        return self.order_id


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of the order's canonical JSON: same content, same hash."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(nfc(canonical).encode()).hexdigest()


def _account(data: dict[str, Any], where: str) -> Account:
    if "iban" in data:
        return Account(iban=str(data["iban"]).replace(" ", "").upper())
    return Account(number=str(data["number"]), scheme=str(data.get("scheme", "BBAN")))


def _party(data: dict[str, Any], where: str) -> Party:
    return Party(
        name=nfc(str(data["name"])),
        account=_account(data["account"], f"{where}.account"),
        agent_bic=str(data["agent_bic"]),
    )


def order_from_payload(payload: dict[str, Any]) -> PaymentOrder:
    """Build the domain order from a payload already checked against the JSON Schema.

    The checks the schema cannot express (exact decimals, real dates, text after NFC) live here.
    """
    try:
        category = Category(payload["category"])
    except ValueError:
        raise InvalidMessage(f"category {payload['category']!r} is not known") from None
    try:
        execution = date.fromisoformat(payload["requested_execution_date"])
    except ValueError:
        raise InvalidMessage(
            f"requested_execution_date {payload['requested_execution_date']!r} is not a date"
        ) from None
    remittance = nfc(payload.get("remittance", ""))
    if len(remittance) > 140:
        raise InvalidMessage(f"remittance is {len(remittance)} characters after NFC; at most 140")
    budget_data = payload.get("budget")
    budget = (
        Budget(
            chapter=budget_data.get("chapter"),
            economic_code=budget_data.get("economic_code"),
            treasury_code=budget_data.get("treasury_code"),
        )
        if budget_data
        else None
    )
    debtor = _party(payload["debtor"], "debtor")
    creditor = _party(payload["creditor"], "creditor")
    for role, party in (("debtor", debtor), ("creditor", creditor)):
        if len(party.name) > 140:
            raise InvalidMessage(f"{role}.name is {len(party.name)} characters; at most 140")
    return PaymentOrder(
        order_id=payload["order_id"],
        category=category,
        debtor=debtor,
        creditor=creditor,
        money=Money.parse(payload["amount"], payload["currency"]),
        requested_execution_date=execution,
        remittance=remittance,
        batch_ref=payload.get("batch_ref"),
        budget=budget,
        partner=payload.get("partner"),
    )
