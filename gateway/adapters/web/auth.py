"""Sessions, CSRF tokens and login throttling for the console.

A session is a cookie signed with the console's secret (itsdangerous, HMAC-SHA1 over a
timestamped payload: it cannot be forged or extended without the secret), `HttpOnly`,
`SameSite=Strict`, `Secure` when the console is served over TLS, valid for `max_age` seconds. It
holds the user's name and the session's CSRF token; the role and whether the user is still
enabled are read from the database on every request, so `gateway users disable` ends a session
at its next request. Every POST must carry the session's CSRF token in its form (`csrf`).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "kbnn_console"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """What a session cookie holds: who (None before login) and the CSRF token."""

    user: str | None
    csrf: str


class Sessions:
    """Signs and reads session cookies."""

    def __init__(self, secret: bytes, *, max_age: int = SESSION_SECONDS, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="kbnn-console-session")
        self.max_age = max_age
        self.secure = secure

    def new(self, user: str | None = None) -> Session:
        """A fresh session with a fresh CSRF token (a login gets a new one: no fixation)."""
        return Session(user, secrets.token_urlsafe(32))

    def dump(self, session: Session) -> str:
        """The cookie's value."""
        return self._serializer.dumps({"u": session.user, "c": session.csrf})

    def load(self, value: str | None) -> Session | None:
        """The session in a cookie, or None when absent, forged or expired."""
        if not value:
            return None
        try:
            data: Any = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user = data.get("u")
        return Session(user if isinstance(user, str) else None, data["c"])

    def cookie(self) -> dict[str, Any]:
        """The cookie's attributes."""
        return {
            "key": COOKIE,
            "max_age": self.max_age,
            "httponly": True,
            "samesite": "strict",
            "secure": self.secure,
            "path": "/",
        }


def csrf_ok(session: Session | None, sent: object) -> bool:
    """Whether a form carried the session's CSRF token."""
    return (
        session is not None
        and isinstance(sent, str)
        and hmac.compare_digest(session.csrf.encode(), sent.encode())
    )


class Throttle:
    """Failed logins per user name (keys `user:...`) and per client address (`addr:...`):
    after `limit` failures of one user name, or `address_limit` from one address, within
    `window` seconds, further attempts are refused until the oldest failure leaves the window.
    The address limit is higher: behind a proxy every visitor has the proxy's address. Kept in
    the console's memory (one console process: restarting it clears the counts)."""

    def __init__(
        self,
        *,
        limit: int = 5,
        address_limit: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.address_limit = address_limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        self._failures[key] = kept
        return kept

    def wait(self, *keys: str) -> float:
        """Seconds until an attempt for these keys is allowed again (0 when it is now)."""
        with self._lock:
            now = self._clock()
            waits = [
                self.window - (now - recent[0])
                for key in keys
                if len(recent := self._recent(key, now)) >= self._limit(key)
            ]
            return max(waits, default=0.0)

    def _limit(self, key: str) -> int:
        return self.address_limit if key.startswith("addr:") else self.limit

    def failed(self, *keys: str) -> None:
        """Count one failed attempt against each key."""
        with self._lock:
            now = self._clock()
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, user_key: str) -> None:
        """A good login clears its user's failures (not the address's)."""
        with self._lock:
            self._failures.pop(user_key, None)


def load_secret(path: Path, explicit: str = "") -> bytes:
    """The console's signing secret: `explicit` (GATEWAY_CONSOLE_SECRET) when set, else the
    file, created with 32 random bytes (mode 0600) the first time."""
    if explicit:
        return explicit.encode()
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    path.touch(mode=0o600)
    path.write_bytes(value + b"\n")
    return value
