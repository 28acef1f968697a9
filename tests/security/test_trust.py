"""Trust in a partner's pinned certificates: current and next, each within its window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.profile.signature import PinnedCertificate, SignaturePolicy
from gateway.signing import (
    KeyPair,
    SignatureError,
    TrustedCertificate,
    generate_keypair,
    sign,
    trusted,
)
from gateway.signing import verify_for_partner as verify
from tests.security.corpus import notification

SWITCH = datetime(2026, 7, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 26, tzinfo=UTC)
SINCE = datetime(2024, 1, 1, tzinfo=UTC)
POLICY = SignaturePolicy()


@pytest.fixture(scope="module")
def current() -> KeyPair:
    """The bank's key until SWITCH."""
    return KeyPair(*generate_keypair("bank 2026", valid_from=SINCE))


@pytest.fixture(scope="module")
def following() -> KeyPair:
    """The bank's key from SWITCH on."""
    return KeyPair(*generate_keypair("bank 2027", valid_from=SINCE))


def pins(current: KeyPair, following: KeyPair) -> list[TrustedCertificate]:
    """Both certificates pinned, the first until SWITCH and the second from it."""
    return [
        trusted(current.cert_pem, PinnedCertificate("current.pem", not_after=SWITCH)),
        trusted(following.cert_pem, PinnedCertificate("next.pem", not_before=SWITCH)),
    ]


def test_a_bank_rotates_without_downtime(current: KeyPair, following: KeyPair) -> None:
    """Before the switch the current key is accepted, after it the next one."""
    pinned = pins(current, following)
    before = sign(notification(1, created=SWITCH - timedelta(hours=1)), current)
    after = sign(notification(2, created=SWITCH + timedelta(hours=1)), following)
    assert verify(before, POLICY, pinned, NOW).key_id == pinned[0].key_id
    assert verify(after, POLICY, pinned, NOW).key_id == pinned[1].key_id


def test_each_key_is_refused_outside_its_window(current: KeyPair, following: KeyPair) -> None:
    """The old key after the switch and the new key before it are both refused, with dates."""
    pinned = pins(current, following)
    late = sign(notification(3, created=SWITCH + timedelta(days=1)), current)
    early = sign(notification(4, created=SWITCH - timedelta(days=1)), following)
    with pytest.raises(SignatureError, match=r"was expired at the message's time 2026-07-02"):
        verify(late, POLICY, pinned, NOW)
    with pytest.raises(SignatureError, match=r"was not yet valid at the message's time 2026-06-30"):
        verify(early, POLICY, pinned, NOW)


def test_a_future_creation_time_counts_as_now(current: KeyPair, following: KeyPair) -> None:
    """A file claiming a creation time after now is judged at now: the next key may not sign
    early by dating its file into its window."""
    pinned = pins(current, following)
    forward = sign(notification(5, created=SWITCH + timedelta(days=30)), following)
    with pytest.raises(SignatureError, match=r"not yet valid at the message's time 2026-06-01"):
        verify(forward, POLICY, pinned, SWITCH - timedelta(days=30))
