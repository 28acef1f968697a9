"""Property test: an order's canonical JSON, written by orjson, is the standard library's text.

The content hash that tells a replayed order from a changed one is taken of this text; an
order stored before orjson wrote it must hash the same after.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.orders import canonical_json, content_hash
from gateway.domain.text import nfc

ROOT = Path(__file__).resolve().parents[2]

# The standard library's canonical form, as the gateway wrote it before orjson.
STANDARD = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))

# Any character but a lone surrogate (which neither writer turns into UTF-8): controls, quotes,
# backslashes, line and paragraph separators, a byte order mark, astral characters.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
SPECIAL = st.sampled_from(['"', "\\", "/", "\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "😀"])
STRINGS = st.one_of(TEXT, SPECIAL, st.lists(SPECIAL | TEXT, max_size=4).map("".join))

# What a payload holds once its contract check passed: objects, strings, nulls (and booleans).
VALUES = st.recursive(
    st.none() | st.booleans() | STRINGS,
    lambda inner: st.dictionaries(STRINGS, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(payload=st.dictionaries(STRINGS, VALUES, max_size=12))
def test_canonical_json_is_the_standard_librarys_text(payload: dict[str, Any]) -> None:
    """Same text, key order included, hence the same content hash as before."""
    assert canonical_json(payload) == STANDARD.encode(payload)
    expected = hashlib.sha256(nfc(STANDARD.encode(payload)).encode()).hexdigest()
    assert content_hash(payload) == expected


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    """A lone surrogate, or an integer beyond 64 bits: written as before, not refused."""
    for payload in ({"a": "\ud800"}, {"n": 2**70}):
        assert canonical_json(payload) == STANDARD.encode(payload)


def test_the_order_contract_admits_no_number() -> None:
    """Why orjson may write an order's canonical JSON: payment-order/1 holds objects and strings
    (and nulls) only, every object closed. A number (orjson writes `1e-7` where the standard
    library writes `1e-07`) would need this test, and `canonical_json`, changed first."""
    schema = json.loads((ROOT / "schemas" / "payment-order-1.schema.json").read_text())
    types: set[str] = set()
    closed: list[bool] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            types.update([kind] if isinstance(kind, str) else kind or [])
            if kind == "object" or "properties" in node:
                closed.append(node.get("additionalProperties") is False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert types <= {"object", "string", "null"}, types
    assert closed and all(closed)
