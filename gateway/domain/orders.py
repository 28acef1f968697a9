"""Payment orders as the treasury core sends them (contract payment-order/1)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import orjson

from gateway.domain.money import Money
from gateway.domain.text import nfc
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
class ClearingMember:
    """A bank as a member of a clearing system (e.g. its CITAD or NAPAS code in Viet Nam)."""

    # ExternalClearingSystemIdentification1Code when 5 characters or fewer, else proprietary.
    system: str
    member_id: str


@dataclass(frozen=True, slots=True)
class Party:
    """A debtor or creditor: name, account and the bank holding it (BIC, clearing member id)."""

    name: str
    account: Account
    agent_bic: str
    agent_member: ClearingMember | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """Vietnamese budget classification: chapter, economic code, treasury code."""

    chapter: str | None = None
    economic_code: str | None = None
    treasury_code: str | None = None


_BUDGET_LABELS = (("C", "chapter"), ("E", "economic_code"), ("T", "treasury_code"))


def budget_line(budget: Budget | None) -> str:
    """Budget codes as one reference line, e.g. "C624/E7151/T2714" ('' when none).

    Real codes (3–4 characters) give 16 characters, well within a 35-character ISO reference
    such as CdtrRefInf/Ref; the longest allowed codes (12 each) give 41.
    """
    if budget is None:
        return ""
    return "/".join(
        f"{label}{getattr(budget, field)}"
        for label, field in _BUDGET_LABELS
        if getattr(budget, field)
    )


def parse_budget_line(line: str | None) -> Budget | None:
    """Read back a `budget_line`; None when the text is not one."""
    if not line:
        return None
    values: dict[str, str] = {}
    for part in line.split("/"):
        field = dict(_BUDGET_LABELS).get(part[:1])
        if field is None or len(part) < 2 or field in values:
            return None
        values[field] = part[1:]
    return Budget(**values)


class Priority(StrEnum):
    """How soon an order leaves: with its batch, or at once in a file of its own."""

    NORMAL = "normal"
    URGENT = "urgent"


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
    priority: Priority = Priority.NORMAL

    @property
    def urgent(self) -> bool:
        """An urgent order skips batching: it leaves at once, alone in its file."""
        return self.priority is Priority.URGENT

    @property
    def end_to_end_id(self) -> str:
        """The order id travels to the bank and back as the EndToEndId."""
        return self.order_id


# The canonical form is the standard library's: this encoder (one for every order: json.dumps
# with options makes one per call; a decoded order holds no cycles to check for).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), check_circular=False
)


def canonical_json(payload: dict[str, Any]) -> str:
    """The order's canonical JSON: keys sorted, no spaces, text as it is (not escaped).

    Written by orjson, which writes the same text as `_CANONICAL` for what an order holds after
    its contract check, objects and strings (a property test holds the two to the same text,
    and another that the contract admits no number), at a sixth of the time; anything orjson
    refuses (a lone surrogate, say) is written by `_CANONICAL`. Numbers would not be safe: orjson
    writes `1e-7` where the standard library writes `1e-07`, and NaN as null. The text is what
    an order's content hash is taken of: it must never change for the same content.
    """
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return _CANONICAL.encode(payload)


def content_hash(payload: dict[str, Any], canonical: str | None = None) -> str:
    """SHA-256 of the order's canonical JSON (`canonical`, when the caller has it already):
    same content, same hash."""
    text = canonical_json(payload) if canonical is None else canonical
    return hashlib.sha256(nfc(text).encode()).hexdigest()


# Characters XML 1.0 cannot carry (C0 controls except tab, newline, return; U+FFFE, U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def text_field(value: Any, where: str, max_length: int) -> str:
    """Text in NFC that fits its ISO 20022 field: refused when too long or not writable as XML."""
    text = nfc(value if type(value) is str else str(value))
    # Every character XML cannot carry is unprintable: printable text needs no search.
    bad = None if text.isprintable() else _NOT_XML.search(text)
    if bad:
        raise InvalidMessage(
            f"{where} contains character U+{ord(bad.group()):04X}, which XML cannot carry"
        )
    if len(text) > max_length:
        raise InvalidMessage(f"{where} is {len(text)} characters after NFC; at most {max_length}")
    return text


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 check digits: the rearranged IBAN, letters as numbers, modulo 97 is 1."""
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", iban):
        return False
    digits = "".join(str(int(char, 36)) for char in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def _account(data: dict[str, Any], where: str) -> Account:
    if "iban" in data:
        iban = str(data["iban"]).replace(" ", "").upper()
        if not iban_is_valid(iban):
            raise InvalidMessage(f"{where}.iban {iban} fails its check digits")
        return Account(iban=iban)
    return Account(
        number=text_field(data["number"], f"{where}.number", 34),
        scheme=text_field(data.get("scheme", "BBAN"), f"{where}.scheme", 35),
    )


def _party(data: dict[str, Any], where: str) -> Party:
    member = data.get("agent_member")
    return Party(
        name=text_field(data["name"], f"{where}.name", 140),
        account=_account(data["account"], f"{where}.account"),
        agent_bic=str(data["agent_bic"]),
        agent_member=ClearingMember(
            system=text_field(member["clearing_system"], f"{where}.agent_member", 35),
            member_id=text_field(member["member_id"], f"{where}.agent_member.member_id", 35),
        )
        if member
        else None,
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
    remittance = text_field(payload.get("remittance", ""), "remittance", 140)
    budget_data = payload.get("budget")
    budget = (
        Budget(
            **{
                key: text_field(budget_data[key], f"budget.{key}", 12)
                for key in ("chapter", "economic_code", "treasury_code")
                if key in budget_data
            }
        )
        if budget_data
        else None
    )
    return PaymentOrder(
        order_id=text_field(payload["order_id"], "order_id", 35),
        category=category,
        debtor=_party(payload["debtor"], "debtor"),
        creditor=_party(payload["creditor"], "creditor"),
        money=Money.parse(payload["amount"], payload["currency"]),
        requested_execution_date=execution,
        remittance=remittance,
        batch_ref=text_field(payload["batch_ref"], "batch_ref", 35)
        if "batch_ref" in payload
        else None,
        budget=budget,
        partner=payload.get("partner"),
        priority=_priority(payload.get("priority", Priority.NORMAL.value)),
    )


def _priority(value: Any) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        raise InvalidMessage(f"priority {value!r} is not one of normal, urgent") from None
