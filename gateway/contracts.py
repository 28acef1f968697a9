"""The JSON contracts (payment-order/1, ledger-posting/1) checked against their schemas."""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable
from datetime import date
from functools import cache
from typing import Any

import fastjsonschema
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from gateway.errors import InvalidMessage
from gateway.paths import schemas_dir

_lock = threading.Lock()


@cache
def _validator(name: str) -> Draft202012Validator:
    with _lock:
        path = schemas_dir() / f"{name}.schema.json"
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidMessage(f"contract schema {path} is missing") from None
        return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


def _is_date(value: str) -> bool:
    """The `date` format as jsonschema checks it: YYYY-MM-DD, and a real day."""
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


@cache
def _fast(name: str) -> Callable[[Any], Any]:
    """The same schema compiled to Python by fastjsonschema: the hot path's yes-or-no.

    The contracts use only keywords whose meaning is the same in draft 7 (which fastjsonschema
    implements) as in 2020-12; tests/unit/test_contract_schemas.py holds both to the same
    verdicts. A refusal is explained by jsonschema's own message."""
    with _lock:
        schema = json.loads((schemas_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        return fastjsonschema.compile(first_match(schema), formats={"date": _is_date})


# Tried first where a contract offers forms that exclude each other: Vietnamese bank accounts
# are domestic numbers, so that form decides almost every order at its first try.
_COMMON_FORM = "Domestic account number"


def first_match(schema: Any) -> Any:
    """The schema with each `oneOf` whose forms exclude each other written as `anyOf`.

    For forms no value can satisfy two of, "exactly one" and "at least one" accept the same
    values; fastjsonschema stops an `anyOf` at the first form that fits, where a `oneOf` tries
    every form and raises (and catches) an exception for each that does not. The common form
    is tried first. Any other `oneOf` is kept as it is."""
    if isinstance(schema, list):
        return [first_match(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: value if key in _DATA_KEYWORDS else first_match(value) for key, value in schema.items()
    }
    forms = out.get("oneOf")
    if isinstance(forms, list) and len(forms) > 1 and _exclusive(forms):
        del out["oneOf"]
        out["anyOf"] = sorted(forms, key=lambda form: form.get("title") != _COMMON_FORM)
    return out


def _exclusive(forms: list[Any]) -> bool:
    """True when no value can fit two of these forms (a conservative proof: False may be wrong,
    True never is)."""
    return all(_apart(a, b) for i, a in enumerate(forms) for b in forms[i + 1 :])


# Keywords whose values are data, not schemas: never rewritten.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


def _apart(a: Any, b: Any) -> bool:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return False
    if "$ref" in a or "$ref" in b:
        return False  # in draft 7 a `$ref` overrides the keywords beside it
    types_a, types_b = _types(a), _types(b)
    if types_a is not None and types_b is not None and not types_a & types_b:
        return True  # no value has two JSON types
    if types_a == types_b == {"object"}:
        return _needs_what_other_forbids(a, b) or _needs_what_other_forbids(b, a)
    return False


def _types(form: dict[str, Any]) -> set[str] | None:
    declared = form.get("type")
    if isinstance(declared, str):
        names = {declared}
    elif isinstance(declared, list) and all(isinstance(name, str) for name in declared):
        names = set(declared)
    else:
        return None  # any type
    # Every integer is a number: a form of numbers admits the integers too.
    return names | {"integer"} if "number" in names else names


def _needs_what_other_forbids(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """An object fitting `a` has a property that `b` does not allow."""
    if b.get("additionalProperties") is not False or "patternProperties" in b:
        return False
    allowed = set(b.get("properties", {}))
    return any(name not in allowed for name in a.get("required", []))


def _check(name: str, payload: Any) -> None:
    try:
        _fast(name)(payload)
    except fastjsonschema.JsonSchemaException:
        pass  # jsonschema says why (or, where the two differ, has the last word)
    except FileNotFoundError:
        pass  # jsonschema names the missing schema
    else:
        return
    error = best_match(_validator(name).iter_errors(payload))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(document)"
        raise InvalidMessage(f"{name}: {where}: {error.message}")


# How orjson says a document is nested past its limit (1,024 levels).
_TOO_DEEP = "depth limit exceeded"


def parse_order_json(body: bytes) -> dict[str, Any]:
    """Decode an order message and check it against payment-order/1."""
    try:
        text = body.decode("utf-8")
        # Lengths are ISO 20022's, counted in NFC: normalise before the schema counts them.
        # Without `\u` escapes every string of the order is written as it is in the text, and
        # NFC leaves JSON's ASCII punctuation alone: one call over the text does what a walk
        # over every decoded string does.
        escaped = "\\u" in text
        if not escaped:
            text = unicodedata.normalize("NFC", text)
        # orjson: a fifth of the standard library's time. Stricter, and each refusal is one no
        # order could pass anyway: a lone surrogate (not text), NaN, a number that overflows a
        # double (the contract admits no number; an integer past 64 bits is read as a float,
        # which the schema refuses as it refused the integer).
        payload = orjson.loads(text)
        # Every string in NFC, walked value by value (recursively: within the try).
        normalised: Any = _nfc(payload) if escaped else payload
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"order is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:  # orjson's JSONDecodeError is this one's subclass
        if exc.msg.startswith(_TOO_DEEP):
            raise InvalidMessage("order is nested too deeply to be a payment order") from None
        raise InvalidMessage(
            f"order is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # the walk of an escaped order nested past Python's stack
        raise InvalidMessage("order is nested too deeply to be a payment order") from None
    if not isinstance(normalised, dict):
        raise InvalidMessage(f"order must be a JSON object, got {type(normalised).__name__}")
    _check("payment-order-1", normalised)
    return normalised


def _nfc(value: Any) -> Any:
    """Every string of a decoded JSON value in Unicode NFC."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {_nfc(key): _nfc(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nfc(item) for item in value]
    return value


def check_posting(body: dict[str, Any]) -> None:
    """Check a posting against ledger-posting/1 (used by tests and the ledger sink)."""
    _check("ledger-posting-1", body)
