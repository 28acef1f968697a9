"""The published JSON Schemas of payment-order/1 and ledger-posting/1."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from gateway.domain.orders import Category, order_from_payload
from gateway.domain.postings import LedgerPosting, PostingKind

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ICT = timezone(timedelta(hours=7))


def _load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    return schema


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_load(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


ORDER = _validator("payment-order-1")
POSTING = _validator("ledger-posting-1")


def _order() -> dict[str, Any]:
    example: dict[str, Any] = copy.deepcopy(_load("payment-order-1")["examples"][0])
    return example


def _error_path(validator: Draft202012Validator, payload: Any) -> tuple[Any, ...]:
    """Where the most relevant error points, as the gateway reports it."""
    error = best_match(validator.iter_errors(payload))
    assert error is not None, "payload was expected to be refused"
    return tuple(error.absolute_path)


@pytest.mark.parametrize("name", ["payment-order-1", "ledger-posting-1"])
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    """Each published schema is itself a valid draft 2020-12 schema."""
    schema = _load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", ["payment-order-1", "ledger-posting-1"])
def test_examples_are_valid(name: str) -> None:
    """Every example in a schema passes that schema."""
    validator = _validator(name)
    examples = _load(name)["examples"]
    assert len(examples) >= 2
    for example in examples:
        assert list(validator.iter_errors(example)) == []


def test_every_order_property_is_described() -> None:
    """An integrator reads a description on every property, nested ones included."""
    schema = _load("payment-order-1")
    party = schema["$defs"]["party"]["properties"]
    branches = party["account"]["oneOf"]
    described = [
        *schema["properties"].values(),
        *schema["properties"]["budget"]["properties"].values(),
        *party.values(),
        *(prop for branch in branches for prop in branch["properties"].values()),
    ]
    assert len(described) >= 20  # the walk found the properties, nested ones included
    assert [prop for prop in described if not prop.get("description")] == []


def test_order_example_is_accepted_by_the_domain() -> None:
    """The schema's examples are orders the domain accepts too."""
    examples = _load("payment-order-1")["examples"]
    assert len(examples) >= 2
    ids = [order_from_payload(example).order_id for example in examples]
    assert ids == [example["order_id"] for example in examples]


def test_category_enum_matches_the_domain() -> None:
    """The schema lists exactly the domain's categories."""
    enum = _load("payment-order-1")["properties"]["category"]["enum"]
    assert sorted(enum) == sorted(category.value for category in Category)


def test_iban_account_and_default_scheme_pass() -> None:
    """An IBAN account, and a domestic number without a scheme, are both valid accounts."""
    order = _order()
    order["creditor"]["account"] = {"iban": "DE89370400440532013000"}
    order["creditor"]["agent_bic"] = "COBADEFFXXX"
    order["currency"] = "EUR"
    order["amount"] = "1250.50"
    assert list(ORDER.iter_errors(order)) == []
    order["creditor"]["account"] = {"number": "8506205123456"}
    assert list(ORDER.iter_errors(order)) == []


def test_order_id_with_spaces_and_punctuation_inside_passes() -> None:
    """ISO 20022 restricted characters are allowed, spaces only inside."""
    order = _order()
    order["order_id"] = "PL/2026-11 (A).1,2'+?:"
    assert list(ORDER.iter_errors(order)) == []


def test_float_amount_is_refused_at_amount() -> None:
    """A JSON number for the amount is refused, pointing at `amount`."""
    order = _order()
    order["amount"] = 606000.0
    assert _error_path(ORDER, order) == ("amount",)
    order["amount"] = 606000
    assert _error_path(ORDER, order) == ("amount",)


@pytest.mark.parametrize("amount", ["1e6", "-606000", "606,000", "606 000", "", "12.123456"])
def test_malformed_amount_strings_are_refused(amount: str) -> None:
    """Exponents, signs, separators and too many decimals are not decimal strings."""
    order = _order()
    order["amount"] = amount
    assert _error_path(ORDER, order) == ("amount",)


def test_order_id_of_36_characters_is_refused() -> None:
    """An order_id longer than 35 characters cannot become an EndToEndId."""
    order = _order()
    order["order_id"] = "B" * 36
    assert _error_path(ORDER, order) == ("order_id",)
    order["order_id"] = "B" * 35
    assert list(ORDER.iter_errors(order)) == []


@pytest.mark.parametrize(
    "order_id", [" BTXH2611-1", "BTXH2611-1 ", "BTXH_2611", "BTXH#1", "Đ1", ""]
)
def test_order_id_outside_the_restricted_set_is_refused(order_id: str) -> None:
    """Leading or trailing spaces and characters outside ISO 20022's set are refused."""
    order = _order()
    order["order_id"] = order_id
    assert _error_path(ORDER, order) == ("order_id",)


def test_unknown_category_is_refused() -> None:
    """A category outside the enum is refused at `category`."""
    order = _order()
    order["category"] = "pension"
    error = best_match(ORDER.iter_errors(order))
    assert error is not None
    assert tuple(error.absolute_path) == ("category",)
    assert "pension" in error.message


def test_extra_property_is_refused_and_named() -> None:
    """An unknown top-level property is refused, and the message names it."""
    order = _order()
    order["urgency"] = "high"
    error = best_match(ORDER.iter_errors(order))
    assert error is not None
    assert tuple(error.absolute_path) == ()
    assert error.validator == "additionalProperties"
    assert "urgency" in error.message


def test_priority_is_optional_normal_or_urgent() -> None:
    """`priority` may be left out (an order written before it existed is valid as it was), or
    be `normal` or `urgent`; anything else is refused and named; the domain reads it, with
    `normal` for an order without it."""
    order = _order()
    order.pop("priority", None)
    assert ORDER.is_valid(order)
    assert order_from_payload(order).priority.value == "normal"
    assert not order_from_payload(order).urgent
    for value in ("normal", "urgent"):
        assert ORDER.is_valid({**order, "priority": value})
    assert order_from_payload({**order, "priority": "urgent"}).urgent
    for bad in ("URGENT", "high", "", 1, None):
        assert _error_path(ORDER, {**order, "priority": bad}) == ("priority",)


def test_extra_party_property_is_refused() -> None:
    """Parties are closed objects too."""
    order = _order()
    order["creditor"]["phone"] = "0912345678"
    assert _error_path(ORDER, order) == ("creditor",)


def test_missing_creditor_account_is_refused() -> None:
    """A creditor without an account is refused at `creditor`."""
    order = _order()
    del order["creditor"]["account"]
    error = best_match(ORDER.iter_errors(order))
    assert error is not None
    assert tuple(error.absolute_path) == ("creditor",)
    assert "account" in error.message


def test_account_with_both_iban_and_number_is_refused() -> None:
    """An account is an IBAN or a domestic number, never both."""
    order = _order()
    order["creditor"]["account"] = {"iban": "DE89370400440532013000", "number": "123"}
    assert _error_path(ORDER, order)[:2] == ("creditor", "account")


@pytest.mark.parametrize("bic", ["VBAAVN", "vbaavnvx", "VBAAVNVX1", "VBAA1NVX"])
def test_malformed_bic_is_refused(bic: str) -> None:
    """A BIC is 8 or 11 characters with a letter country code."""
    order = _order()
    order["creditor"]["agent_bic"] = bic
    assert _error_path(ORDER, order) == ("creditor", "agent_bic")


@pytest.mark.parametrize("value", ["10/11/2026", "2026-11-31", "2026-1-10", "20261110"])
def test_malformed_execution_date_is_refused(value: str) -> None:
    """The execution date is a real YYYY-MM-DD date."""
    order = _order()
    order["requested_execution_date"] = value
    assert _error_path(ORDER, order) == ("requested_execution_date",)


def test_wrong_schema_name_and_missing_fields_are_refused() -> None:
    """The contract name is fixed, and required fields must be present."""
    order = _order()
    order["schema"] = "payment-order/2"
    assert _error_path(ORDER, order) == ("schema",)
    for field in ("order_id", "category", "debtor", "creditor", "amount", "currency"):
        order = _order()
        del order[field]
        error = best_match(ORDER.iter_errors(order))
        assert error is not None
        assert error.validator == "required"
        assert field in error.message


def test_remittance_of_141_characters_is_refused() -> None:
    """Remittance is at most 140 characters."""
    order = _order()
    order["remittance"] = "x" * 141
    assert _error_path(ORDER, order) == ("remittance",)


# ledger-posting/1


def _posting(kind: PostingKind, **changes: Any) -> LedgerPosting:
    fields: dict[str, Any] = {
        "kind": kind,
        "subject": "BTXH2611-000042",
        "order_id": "BTXH2611-000042",
        "end_to_end_id": "BTXH2611-000042",
        "msg_id": "PL2611100001",
        "status": "ACSC",
        "reason_code": None,
        "reason_text": None,
        "amount": Decimal("540000"),
        "currency": "VND",
        "value_date": date(2026, 11, 10),
        "bank_ref": "VBA2611T000042",
        "occurred_at": datetime(2026, 11, 10, 9, 15, 2, tzinfo=ICT),
    }
    fields.update(changes)
    return LedgerPosting(**fields)


POSTINGS = {
    "settled": _posting(PostingKind.PAYMENT_SETTLED),
    "rejected": _posting(
        PostingKind.PAYMENT_REJECTED,
        status="RJCT",
        reason_code="AC04",
        reason_text="Closed account number",
        value_date=None,
        bank_ref=None,
    ),
    "rejected, code only": _posting(
        PostingKind.PAYMENT_REJECTED, status="RJCT", reason_code="AC01", value_date=None
    ),
    "returned": _posting(
        PostingKind.PAYMENT_RETURNED,
        status="BOOK",
        reason_code="AC04",
        occurred_at=datetime(2026, 11, 12, 2, 0, 0, 123456, tzinfo=UTC),
    ),
    "revenue": _posting(
        PostingKind.REVENUE_COLLECTED,
        subject="agribank:VBA2611R000123",
        order_id=None,
        end_to_end_id=None,
        status="BOOK",
        remittance="Phạt vi phạm hành chính giao thông - QĐ số 0793/QĐ-XPVPHC",
        amount=Decimal("2000000"),
        bank_ref="VBA2611R000123",
        budget={"chapter": "618", "economic_code": "4254", "treasury_code": "2714"},
        debtor_name="Lương Văn Thắng",
    ),
    "revenue, structured ref": _posting(
        PostingKind.REVENUE_COLLECTED,
        order_id=None,
        status="BOOK",
        amount=Decimal("1250.50"),
        currency="EUR",
        budget={"structured_ref": "RF18539007547034"},
    ),
    "invalid": _posting(
        PostingKind.ORDER_INVALID,
        order_id=None,
        end_to_end_id=None,
        refused_order_id="B" * 36,
        msg_id=None,
        status="invalid",
        reason_code="INVD",
        reason_text="payment-order-1: order_id: 'BBBB…' is too long",
        amount=None,
        currency=None,
        value_date=None,
        bank_ref=None,
    ),
    "invalid, not JSON": _posting(
        PostingKind.ORDER_INVALID,
        subject="0" * 64,
        order_id=None,
        end_to_end_id=None,
        msg_id=None,
        status="invalid",
        reason_code="INVD",
        reason_text="order is not JSON: Expecting value at line 1 column 1",
        amount=None,
        currency=None,
        value_date=None,
        bank_ref=None,
    ),
}


@pytest.mark.parametrize("name", list(POSTINGS))
def test_every_posting_the_domain_emits_is_valid(name: str) -> None:
    """What LedgerPosting.to_json() emits passes ledger-posting/1, for every kind."""
    body = POSTINGS[name].to_json()
    assert list(POSTING.iter_errors(body)) == []


def test_posting_kinds_match_the_domain() -> None:
    """The schema lists exactly the domain's posting kinds, and the tests cover each."""
    enum = _load("ledger-posting-1")["properties"]["kind"]["enum"]
    assert sorted(enum) == sorted(kind.value for kind in PostingKind)
    assert {posting.kind for posting in POSTINGS.values()} == set(PostingKind)


def test_posting_fields_are_all_described_and_required() -> None:
    """Every always-emitted field is required (null when absent) and described."""
    schema = _load("ledger-posting-1")
    always = set(POSTINGS["settled"].to_json())
    assert set(schema["required"]) == always
    assert set(schema["properties"]) >= always
    undescribed = [
        name for name, prop in schema["properties"].items() if not prop.get("description")
    ]
    assert undescribed == []


def test_posting_with_float_amount_is_refused() -> None:
    """Amounts in postings are decimal strings too."""
    body = POSTINGS["settled"].to_json()
    body["amount"] = 540000.0
    assert _error_path(POSTING, body) == ("amount",)


def test_posting_without_offset_is_refused() -> None:
    """occurred_at must carry its UTC offset."""
    body = POSTINGS["settled"].to_json()
    body["occurred_at"] = "2026-11-10T09:15:02"
    assert _error_path(POSTING, body) == ("occurred_at",)


def test_posting_of_unknown_kind_or_extra_field_is_refused() -> None:
    """Kinds are closed, and so is the posting object."""
    body = POSTINGS["settled"].to_json()
    body["kind"] = "payment_cancelled"
    assert _error_path(POSTING, body) == ("kind",)
    body = POSTINGS["settled"].to_json()
    body["note"] = "x"
    assert _error_path(POSTING, body) == ()


def test_payment_posting_without_order_id_is_refused() -> None:
    """A payment outcome always names its order."""
    body = POSTINGS["settled"].to_json()
    body["order_id"] = None
    assert _error_path(POSTING, body) == ("order_id",)


def test_posting_missing_a_nullable_field_is_refused() -> None:
    """Nullable fields are present as null, never left out."""
    body = POSTINGS["settled"].to_json()
    del body["bank_ref"]
    error = best_match(POSTING.iter_errors(body))
    assert error is not None
    assert error.validator == "required"


def _variants(example: dict[str, Any]) -> list[Any]:
    """The example, and many ways of spoiling it: each field removed, retyped, emptied,
    lengthened, given an odd value; extra fields; impossible dates."""
    odd: list[Any] = [None, 0, 1.5, True, "", "x" * 200, [], {}, "2026-02-30", "2026-1-01"]
    out: list[Any] = [example, [], "order", None]

    def spoil(node: dict[str, Any], path: list[str]) -> None:
        for key, value in list(node.items()):
            removed = copy.deepcopy(example)
            target = removed
            for part in path:
                target = target[part]
            del target[key]
            out.append(removed)
            for replacement in odd:
                changed = copy.deepcopy(example)
                target = changed
                for part in path:
                    target = target[part]
                target[key] = replacement
                out.append(changed)
            if isinstance(value, dict):
                spoil(value, [*path, key])
        extra = copy.deepcopy(example)
        target = extra
        for part in path:
            target = target[part]
        target["unexpected"] = "x"
        out.append(extra)

    spoil(example, [])
    return out


@pytest.mark.parametrize("name", ["payment-order-1", "ledger-posting-1"])
def test_the_fast_check_gives_jsonschemas_verdict(name: str) -> None:
    """The compiled check intake relies on accepts and refuses exactly what jsonschema does,
    on every example and on hundreds of spoiled variants of it."""
    from gateway.contracts import _fast, _validator  # noqa: PLC0415 - the internals under test

    fast, full = _fast(name), _validator(name)
    variants = [v for example in _load(name)["examples"] for v in _variants(example)]
    assert len(variants) > 200
    for variant in variants:
        try:
            fast(variant)
            fast_ok = True
        except Exception:  # any refusal counts as one
            fast_ok = False
        assert fast_ok == full.is_valid(variant), json.dumps(variant, default=str)[:300]


ACCOUNTS: list[Any] = [
    {"number": "8506205123456"},
    {"number": "8506205123456", "scheme": "BBAN"},
    {"iban": "DE89370400440532013000"},
    {"iban": "DE89370400440532013000", "number": "8506205123456"},
    {"iban": "de89"},
    {"number": "85 06"},
    {"scheme": "BBAN"},
    {"number": "1", "scheme": ""},
    {},
    None,
    "8506205123456",
]


@pytest.mark.parametrize("account", ACCOUNTS, ids=[json.dumps(a) for a in ACCOUNTS])
def test_the_fast_check_gives_jsonschemas_verdict_on_either_account_form(account: Any) -> None:
    """Either form of account, both at once, neither, and a broken one of each: the compiled
    check (which tries the forms as `anyOf`) agrees with jsonschema (which reads `oneOf`)."""
    from gateway.contracts import _fast  # noqa: PLC0415 - the internals under test

    for party in ("debtor", "creditor"):
        order = _order()
        order[party]["account"] = copy.deepcopy(account)
        try:
            _fast("payment-order-1")(copy.deepcopy(order))
            fast_ok = True
        except Exception:  # any refusal counts as one
            fast_ok = False
        assert fast_ok == ORDER.is_valid(order)


def test_only_forms_that_exclude_each_other_are_tried_as_first_match() -> None:
    """The account's two forms, and a posting's null-or-object reason, become `anyOf` with the
    domestic number first; forms a value could fit twice stay `oneOf`."""
    from gateway.contracts import first_match  # noqa: PLC0415 - the internals under test

    account = first_match(_load("payment-order-1"))["$defs"]["party"]["properties"]["account"]
    assert "oneOf" not in account
    assert [form["title"] for form in account["anyOf"]] == ["Domestic account number", "IBAN"]
    reason = first_match(_load("ledger-posting-1"))["properties"]["reason"]
    assert "oneOf" not in reason
    assert len(reason["anyOf"]) == 2

    overlapping = [
        {"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]},
        {"oneOf": [{"type": "object", "required": ["a"]}, {"type": "object", "required": ["b"]}]},
        {"oneOf": [{"required": ["a"]}, {"type": "object", "additionalProperties": False}]},
        {"oneOf": [{"type": ["string", "null"]}, {"type": "null"}]},
        {"oneOf": [True, {"type": "null"}]},
        {"oneOf": [True]},
        {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        {"oneOf": [{"$ref": "#/$defs/x", "type": "string"}, {"type": "null"}]},
    ]
    for schema in overlapping:
        assert first_match(schema) == schema
    apart = {
        "oneOf": [
            {
                "type": "object",
                "required": ["a"],
                "additionalProperties": False,
                "properties": {"a": {}},
            },
            {
                "type": "object",
                "required": ["b"],
                "additionalProperties": False,
                "properties": {"b": {}},
            },
        ]
    }
    assert "anyOf" in first_match(apart)
    for data in ("const", "enum", "default", "examples"):
        assert first_match({data: apart}) == {data: apart}  # data, not a schema
