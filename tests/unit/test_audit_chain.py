"""The audit chain's rules: every row sealed by the one before; an edited, removed or reordered
row is found, and named, by `verify`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.domain.audit import ZERO_HASH, canonical, canonical_detail, seal, verify
from gateway.service.ports import AuditRecord

T0 = datetime(2026, 11, 29, 3, 0, 0, 123456, tzinfo=UTC)


def chain(n: int) -> list[AuditRecord]:
    """n sealed rows, as an adapter appends them."""
    rows: list[AuditRecord] = []
    previous = ZERO_HASH
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "at": T0 + timedelta(minutes=seq),
            "actor": "Nguyễn Thị Hường" if seq % 2 else "lan",
            "via": "console",
            "action": "dlq.replay",
            "subject": f"msg-{seq}",
            "detail_json": canonical_detail({"queue": "outbox", "lý do": "sửa"}),
            "prev_hash": previous,
        }
        previous = seal(**fields)  # type: ignore[arg-type]
        rows.append(AuditRecord(**fields, row_hash=previous))  # type: ignore[arg-type]
    return rows


def head(rows: list[AuditRecord]) -> tuple[int, str]:
    return rows[-1].seq, rows[-1].row_hash


def test_canonical_encoding_is_exactly_as_documented() -> None:
    """The bytes hashed are the JSON array of the documented fields, compact, UTF-8."""
    encoded = canonical(
        seq=1,
        at=T0,
        actor="Hường",
        via="cli",
        action="users.add",
        subject="an",
        detail_json=canonical_detail({"role": "viewer"}),
        prev_hash=ZERO_HASH,
    )
    assert (
        encoded
        == (
            '[1,"2026-11-29T03:00:00.123456+00:00","Hường","cli","users.add","an",'
            '"{\\"role\\":\\"viewer\\"}","' + ZERO_HASH + '"]'
        ).encode()
    )


def test_an_intact_trail_verifies() -> None:
    """A trail as appended has no break; so has an empty one."""
    rows = chain(5)
    assert verify(rows, head(rows)) is None
    assert verify([], (0, ZERO_HASH)) is None


def test_an_edited_row_is_found() -> None:
    """A row whose column was changed is named as changed."""
    rows = chain(5)
    rows[2] = replace(rows[2], actor="mallory")
    broken = verify(rows, head(rows))
    assert broken is not None and (broken.seq, broken.kind) == (3, "changed")


def test_an_edited_and_resealed_row_is_found() -> None:
    """A row changed and sealed again breaks the link from the row after it."""
    rows = chain(5)
    edited = replace(rows[1], subject="other")
    names = ("seq", "at", "actor", "via", "action", "subject", "detail_json", "prev_hash")
    edited = replace(edited, row_hash=seal(**{k: getattr(edited, k) for k in names}))
    rows[1] = edited
    broken = verify(rows, head(rows))
    assert broken is not None and (broken.seq, broken.kind) == (2, "changed")


def test_a_removed_row_is_found() -> None:
    """A row deleted from the middle leaves a gap that is named."""
    rows = chain(5)
    del rows[3]
    broken = verify(rows, (5, chain(5)[-1].row_hash))
    assert broken is not None and (broken.seq, broken.kind) == (4, "removed")


def test_removed_last_rows_are_found_by_the_head() -> None:
    """Rows removed from the end are found by the kept head."""
    rows = chain(5)
    broken = verify(rows[:3], head(rows))
    assert broken is not None and (broken.seq, broken.kind) == (4, "removed")


def test_reordered_rows_are_found() -> None:
    """Two rows swapped (their seq exchanged) are named as reordered."""
    rows = chain(5)
    second, third = rows[1], rows[2]
    swapped = [rows[0], replace(third, seq=2), replace(second, seq=3), rows[3], rows[4]]
    broken = verify(swapped, head(rows))
    assert broken is not None and (broken.seq, broken.kind) == (2, "reordered")


def test_a_removed_row_with_the_rest_renumbered_is_found() -> None:
    """Deleting a row and renumbering those after it still names a removal."""
    rows = chain(5)
    renumbered = [*rows[:2], *(replace(r, seq=r.seq - 1) for r in rows[3:])]
    broken = verify(renumbered, head(rows))
    assert broken is not None and broken.kind == "removed" and broken.seq == 3
