"""Transaction and file states, and the only moves between them (always forward)."""

from __future__ import annotations

from enum import StrEnum


class TxState(StrEnum):
    """Where one payment order stands."""

    RECEIVED = "received"
    BATCHED = "batched"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    SETTLED = "settled"
    REJECTED = "rejected"
    RETURNED = "returned"
    INVALID = "invalid"

    @property
    def final(self) -> bool:
        """A state the order ends in (returned may still follow settled)."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({TxState.SETTLED, TxState.REJECTED, TxState.RETURNED, TxState.INVALID})

_RANK = {
    TxState.RECEIVED: 0,
    TxState.BATCHED: 1,
    TxState.SENT: 2,
    TxState.ACKNOWLEDGED: 3,
    TxState.SETTLED: 4,
    TxState.REJECTED: 4,
    TxState.RETURNED: 5,
    TxState.INVALID: 5,
}


def can_move(current: TxState, new: TxState) -> bool:
    """True when `current → new` moves forward under DESIGN §4; late or repeated reports do not."""
    if current in (TxState.INVALID, TxState.REJECTED, TxState.RETURNED):
        return False
    if new is TxState.INVALID:
        return False
    if new is TxState.RETURNED:
        return current is TxState.SETTLED
    if current is TxState.SETTLED:
        return False
    return _RANK[new] > _RANK[current]


class FileState(StrEnum):
    """Where one outbound file stands."""

    BUILT = "built"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    PARTIALLY_REJECTED = "partially_rejected"
    REJECTED = "rejected"


def state_for_status(code: str) -> TxState | None:
    """The transaction state a pain.002 status moves to; None for codes that move nothing."""
    if code in ("ACTC", "ACCP", "ACSP", "ACWC"):
        return TxState.ACKNOWLEDGED
    if code in ("ACSC", "ACCC"):
        return TxState.SETTLED
    if code == "RJCT":
        return TxState.REJECTED
    return None
