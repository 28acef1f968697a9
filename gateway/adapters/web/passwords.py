"""Argon2id password hashes (argon2-cffi: the reference C implementation, maintained)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Hasher:
    """The `Hasher` port on Argon2id with the library's defaults (RFC 9106's second
    recommended profile: 64 MiB, 3 passes, 4 lanes)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    def hash(self, password: str) -> str:
        """The encoded hash (`$argon2id$v=19$m=...`)."""
        return self._hasher.hash(password)

    def verify(self, encoded: str, password: str) -> bool:
        """Whether the password matches; False for a mismatch or an unreadable hash."""
        try:
            return self._hasher.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
