"""Trust in a partner's pinned certificates, judged when a file is received: current and next,
each within its window, whatever time the file claims for itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.profile.inbound import InboundPolicy
from gateway.profile.signature import PinnedCertificate, SignaturePolicy
from gateway.signing import (
    KeyPair,
    SignatureError,
    TrustedCertificate,
    generate_keypair,
    sign,
    trusted,
    verify_for_partner,
)
from gateway.signing.policy import VerifiedFile
from tests.security.corpus import notification

SWITCH = datetime(2026, 7, 1, tzinfo=UTC)
SINCE = datetime(2024, 1, 1, tzinfo=UTC)
POLICY = SignaturePolicy()
SECOND = timedelta(seconds=1)


def verify(data: bytes, pinned: list[TrustedCertificate], received: datetime) -> VerifiedFile:
    """Verify as the inbound path does, received at `received`, with the default tolerance."""
    return verify_for_partner(data, POLICY, pinned, received, inbound=InboundPolicy())


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
    """Received up to the switch, the current key is accepted; from the switch, the next one."""
    pinned = pins(current, following)
    before = sign(notification(1, created=SWITCH - timedelta(minutes=5)), current)
    after = sign(notification(2, created=SWITCH), following)
    assert verify(before, pinned, SWITCH).key_id == pinned[0].key_id
    assert verify(after, pinned, SWITCH).key_id == pinned[1].key_id


def test_the_old_key_is_retired_one_second_after_the_switch(
    current: KeyPair, following: KeyPair
) -> None:
    """A file of the current key received one second after its window is refused, even when it
    states a creation time inside the window."""
    pinned = pins(current, following)
    late = sign(notification(3, created=SWITCH - timedelta(minutes=1)), current)
    assert verify(late, pinned, SWITCH).key_id == pinned[0].key_id
    with pytest.raises(SignatureError, match=r"is expired at receipt 2026-07-01 00:00 UTC"):
        verify(late, pinned, SWITCH + SECOND)


def test_the_next_key_is_refused_until_its_window_opens(
    current: KeyPair, following: KeyPair
) -> None:
    """A file of the next key received one second before the switch is refused, even when it is
    dated inside the next key's window (a key cannot sign early by dating its file forward)."""
    pinned = pins(current, following)
    early = sign(notification(4, created=SWITCH), following)
    with pytest.raises(SignatureError, match=r"is not yet valid at receipt 2026-06-30 23:59 UTC"):
        verify(early, pinned, SWITCH - SECOND)
    assert verify(early, pinned, SWITCH).key_id == pinned[1].key_id


def test_an_expired_certificate_verifies_nothing_new_whatever_the_file_states() -> None:
    """A certificate that expired on 2025-01-01 does not verify a file received today, even one
    stating it was created in 2024 while the certificate was valid."""
    expired = KeyPair(
        *generate_keypair(
            "bank-old",
            valid_from=datetime(2023, 1, 1, tzinfo=UTC),
            valid_until=datetime(2025, 1, 1, tzinfo=UTC),
        )
    )
    old = sign(notification(5, created=datetime(2024, 6, 1, tzinfo=UTC)), expired)
    with pytest.raises(SignatureError, match=r"is expired at receipt"):
        verify(old, [trusted(expired.cert_pem)], datetime.now(UTC))


def test_a_stale_file_is_refused_by_the_partners_tolerance(current: KeyPair) -> None:
    """A genuine file created more than max_age before its receipt is refused by name."""
    pinned = [trusted(current.cert_pem)]
    received = datetime(2026, 11, 26, tzinfo=UTC)
    data = sign(notification(6, created=received - timedelta(days=7, seconds=1)), current)
    with pytest.raises(SignatureError, match=r"more than 168 hours before .*max_age_hours"):
        verify(data, pinned, received)
    assert verify(data, pinned, received - timedelta(seconds=1)).key_id == pinned[0].key_id


def test_a_file_from_the_future_is_refused_past_the_clock_skew(current: KeyPair) -> None:
    """A file stating a creation time more than max_ahead after its receipt is refused."""
    pinned = [trusted(current.cert_pem)]
    received = datetime(2026, 11, 26, tzinfo=UTC)
    data = sign(notification(7, created=received + timedelta(minutes=15)), current)
    assert verify(data, pinned, received).key_id == pinned[0].key_id
    with pytest.raises(SignatureError, match=r"more than 15 minutes after .*max_ahead_minutes"):
        verify(data, pinned, received - SECOND)


def test_the_tolerance_is_the_partners_own(current: KeyPair) -> None:
    """A partner whose tolerance is 30 days accepts a file of 20 days ago."""
    received = datetime(2026, 11, 26, tzinfo=UTC)
    data = sign(notification(8, created=received - timedelta(days=20)), current)
    relaxed = InboundPolicy(max_age=timedelta(days=30))
    verified = verify_for_partner(
        data, POLICY, [trusted(current.cert_pem)], received, inbound=relaxed
    )
    assert verified.created_at == received - timedelta(days=20)
