"""Refusal reasons as they leave the gateway: bounded in length, control characters escaped.

A reason often quotes what a file holds (a key name, an algorithm, an id). Wherever a reason is
written (logs, CLI output, the database, metrics), `bounded` makes it one line of at most
REASON_MAX characters that cannot forge another line or hide text from the terminal.
"""

from __future__ import annotations

import re
from enum import StrEnum

# Longest reason kept, in characters (the cut says how much was left out).
REASON_MAX = 300

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the bidirectional
# overrides and isolates that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\u{ord(char):04x}"


def bounded(reason: str, limit: int = REASON_MAX) -> str:
    """`reason` on one line, control characters escaped, cut to at most `limit` characters."""
    if len(reason) > 4 * limit:
        # Escaping can only lengthen a text: only its head can be kept.
        reason = reason[: 4 * limit]
        cut = True
    else:
        cut = False
    escaped = _UNSAFE.sub(_escape, reason)
    if len(escaped) <= limit and not cut:
        return escaped
    return escaped[: limit - 15] + " ...(truncated)"


def fault(exc: BaseException) -> str:
    """An unexpected fault as a reason: its class and its bounded message, never a stack."""
    message = bounded(str(exc), 200)
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


class ReasonClass(StrEnum):
    """What kind of refusal a quarantined file's reason is: a few values, kept in a column of
    their own beside the reason and used as the quarantine metric's label."""

    LIMIT = "limit"
    FAULT = "fault"
    UNKNOWN_PARTNER = "unknown_partner"
    REUSED_MSG_ID = "reused_msg_id"
    SIGNATURE = "signature"
    SCHEMA = "schema"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    CONTENT = "content"


# The words that place a reason in its class: the first class whose words appear wins. The
# migration that added the column (schema/*/0004_state_columns.sql) classed older rows the same
# way; tests/contract/test_migrations.py holds the two together.
CLASS_WORDS: tuple[tuple[ReasonClass, tuple[str, ...]], ...] = (
    (ReasonClass.LIMIT, ("(limit max_",)),
    (ReasonClass.FAULT, ("fault while",)),
    (ReasonClass.UNKNOWN_PARTNER, ("unknown partner",)),
    (ReasonClass.REUSED_MSG_ID, ("reused msgid",)),
    (ReasonClass.SIGNATURE, ("signature", "signed", "certificate", "digest", "ds:")),
    (ReasonClass.SCHEMA, ("fails its xsd",)),
    (
        ReasonClass.MALFORMED,
        ("malformed xml", "doctype", "entity", "entities", "document is", "bytes;"),
    ),
    (ReasonClass.UNSUPPORTED, ("not supported", "not a supported", "not a report", "expected a")),
)


def reason_class(reason: str) -> ReasonClass:
    """The class of a refusal reason, decided once when the file is quarantined; `content`
    when none fits."""
    text = reason.lower()
    for name, words in CLASS_WORDS:
        if any(word in text for word in words):
            return name
    return ReasonClass.CONTENT
