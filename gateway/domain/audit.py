"""The audit trail's chain: how a row is encoded and sealed, and how a trail is verified.

Every admin action is one row: `seq` (1, 2, 3, ... without gaps), `at` (UTC), `actor`, `via`
(`console` or `cli`), `action`, `subject`, `detail` (a JSON object) and `prev_hash`, the
`row_hash` of the row before it (64 zeros before the first row). A row's own hash is

    row_hash = hex(SHA-256(canonical(row)))

where `canonical(row)` is the UTF-8 encoding of the JSON array

    [seq, at, actor, via, action, subject, detail, prev_hash]

written with no spaces (separators "," and ":"), non-ASCII characters as themselves
(ensure_ascii false), `seq` as a JSON integer, `at` as the string
`YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (ISO 8601, UTC, microseconds), and `detail` as the string
holding the detail object's own canonical JSON (keys sorted, no spaces, non-ASCII as itself),
exactly as stored in the row. For example, the first row of a trail:

    [1,"2026-11-29T10:00:00.000000+00:00","lan","console","dlq.replay","MSG-1","{\\"queue\\":\\"outbox\\"}","000...000"]

Any change to a row's columns changes its hash (the row reads "changed"); removing a row leaves
a gap in `seq` or a `prev_hash` no row carries; swapping rows breaks both. The last row's seq
and hash are also kept apart as the chain's head, so that removing rows at the end shows too.
Nothing here does I/O: the storage adapters seal rows with `seal`, `gateway audit verify`
checks what they read back with `verify`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

ZERO_HASH = "0" * 64


class SealedRow(Protocol):
    """The columns of one audit row, as read back from storage."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def via(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def detail_json(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def row_hash(self) -> str: ...


def canonical_detail(detail: Mapping[str, str]) -> str:
    """A detail object as the canonical JSON text a row keeps and is sealed with."""
    return json.dumps(
        {str(k): str(v) for k, v in detail.items()},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )


def canonical_time(moment: datetime) -> str:
    """`at` as sealed: ISO 8601 in UTC with microseconds."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(
    *,
    seq: int,
    at: datetime,
    actor: str,
    via: str,
    action: str,
    subject: str,
    detail_json: str,
    prev_hash: str,
) -> bytes:
    """The bytes a row's hash is taken over (see the module's docstring)."""
    fields = [seq, canonical_time(at), actor, via, action, subject, detail_json, prev_hash]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def seal(
    *,
    seq: int,
    at: datetime,
    actor: str,
    via: str,
    action: str,
    subject: str,
    detail_json: str,
    prev_hash: str,
) -> str:
    """The row's hash: hex SHA-256 of its canonical encoding."""
    return hashlib.sha256(
        canonical(
            seq=seq,
            at=at,
            actor=actor,
            via=via,
            action=action,
            subject=subject,
            detail_json=detail_json,
            prev_hash=prev_hash,
        )
    ).hexdigest()


def row_seal(row: SealedRow, seq: int | None = None) -> str:
    """The hash a row read back should carry (had it stood at `seq`, when given)."""
    return seal(
        seq=row.seq if seq is None else seq,
        at=row.at,
        actor=row.actor,
        via=row.via,
        action=row.action,
        subject=row.subject,
        detail_json=row.detail_json,
        prev_hash=row.prev_hash,
    )


@dataclass(frozen=True, slots=True)
class Break:
    """The first place where a trail is not what was appended."""

    # The position (seq) where the chain breaks.
    seq: int
    # `changed`, `removed` or `reordered`.
    kind: str
    message: str


def verify(rows: Sequence[SealedRow], head: tuple[int, str]) -> Break | None:  # noqa: PLR0911 - one return per kind of break
    """The first break in a trail read back in seq order (None when it is intact), judged
    against the kept head (the last seq and hash appended)."""
    position = {row.row_hash: row.seq for row in rows}
    previous = ZERO_HASH
    for expected, row in enumerate(rows, start=1):
        if row.seq > expected:
            return Break(expected, "removed", f"row {expected} was removed")
        if row_seal(row) != row.row_hash:
            return _unsealed(row, position, len(rows) + head[0] + 1)
        if row.seq != expected:
            return Break(expected, "changed", f"row {expected} was changed (its seq)")
        if row.prev_hash != previous:
            after = position.get(row.prev_hash)
            if after is not None:
                return Break(
                    row.seq,
                    "reordered",
                    f"row {row.seq} was appended after row {after}, which now stands elsewhere:"
                    " rows were reordered",
                )
            return Break(
                expected - 1,
                "changed",
                f"row {expected - 1} was changed and sealed again (row {row.seq} does not follow"
                " it)",
            )
        previous = row.row_hash
    last_seq, last_hash = head
    if last_seq > len(rows):
        return Break(
            len(rows) + 1,
            "removed",
            f"rows {len(rows) + 1} to {last_seq} were removed from the end of the trail",
        )
    if last_seq == len(rows) and last_hash != previous:
        return Break(last_seq, "changed", f"row {last_seq} differs from the chain's kept head")
    if last_seq < len(rows):
        return Break(last_seq + 1, "changed", f"row {last_seq + 1} was not appended by the gateway")
    return None


def _unsealed(row: SealedRow, position: Mapping[str, int], most: int) -> Break:
    """Why a row's own hash does not match: moved to another seq, or changed."""
    after = position.get(row.prev_hash)
    if after is not None and after >= row.seq:
        return Break(
            row.seq,
            "reordered",
            f"row {row.seq} was appended after row {after}, which now stands after it: rows"
            " were reordered",
        )
    for seq in range(1, most + 1):
        if seq != row.seq and row_seal(row, seq) == row.row_hash:
            kind = "removed" if after is None and seq > row.seq else "reordered"
            what = "rows before it were removed" if kind == "removed" else "rows were reordered"
            return Break(row.seq, kind, f"row {seq} was moved to position {row.seq}: {what}")
    return Break(row.seq, "changed", f"row {row.seq} was changed after it was appended")
