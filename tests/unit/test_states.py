"""States only move forward; late or repeated reports never move one back."""

import pytest

from gateway.domain.states import TxState, can_move, state_for_status

S = TxState


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.RECEIVED, S.BATCHED),
        (S.BATCHED, S.SENT),
        (S.SENT, S.ACKNOWLEDGED),
        (S.SENT, S.SETTLED),
        (S.ACKNOWLEDGED, S.SETTLED),
        (S.ACKNOWLEDGED, S.REJECTED),
        (S.SENT, S.REJECTED),
        (S.SETTLED, S.RETURNED),
    ],
)
def test_forward_moves(current: TxState, new: TxState) -> None:
    """Each step of the lifecycle is allowed."""
    assert can_move(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.ACKNOWLEDGED, S.SENT),
        (S.SETTLED, S.ACKNOWLEDGED),
        (S.SETTLED, S.REJECTED),
        (S.REJECTED, S.SETTLED),
        (S.REJECTED, S.ACKNOWLEDGED),
        (S.SETTLED, S.SETTLED),
        (S.ACKNOWLEDGED, S.ACKNOWLEDGED),
        (S.SENT, S.RETURNED),
        (S.RECEIVED, S.INVALID),
    ],
)
def test_backward_or_repeated_moves_are_refused(current: TxState, new: TxState) -> None:
    """A late, repeated or impossible report moves nothing."""
    assert not can_move(current, new)


def test_status_codes_map_to_states() -> None:
    """ACCP acknowledges, ACSC settles, RJCT rejects, unknown codes move nothing."""
    assert state_for_status("ACCP") is S.ACKNOWLEDGED
    assert state_for_status("ACSC") is S.SETTLED
    assert state_for_status("RJCT") is S.REJECTED
    assert state_for_status("XXXX") is None


def test_final_states() -> None:
    """Settled, rejected, returned and invalid are final."""
    assert {s for s in S if s.final} == {S.SETTLED, S.REJECTED, S.RETURNED, S.INVALID}
