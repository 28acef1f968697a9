"""Keys made in a test's SoftHSM2 token, as `gateway keys generate --pkcs11` makes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.adapters.pkcs11 import CreatedKey, create_key, token_for
from gateway.config import Settings

SINCE_2024 = datetime(2024, 1, 1, tzinfo=UTC)


def token_key(settings: Settings, label: str = "", *, curve: bool = False) -> CreatedKey:
    """A key pair and self-signed certificate made in the settings' token, valid from 2024."""
    return create_key(
        token_for(settings),
        label or settings.signing_key,
        curve=curve,
        common_name="KBNN gateway in the HSM",
        valid_from=SINCE_2024,
        valid_until=datetime.now(UTC) + timedelta(days=730),
    )
