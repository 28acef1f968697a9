"""Named crash points: the fault harness makes the gateway die at an exact step of its work.

`GATEWAY_CRASH_AT=name[:count]` (read once) kills the process with SIGKILL the `count`-th time
(default: the first) the code passes `hit(name)`. Unset, `hit` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import sys

# Every point the gateway offers, and the step it interrupts.
POINTS = {
    "intake.before_commit": "orders stored in the transaction, not committed",
    "intake.before_ack": "orders committed, the broker not yet told (ack)",
    "batch.before_commit": "file built, signed and written to the outbox, state not committed",
    "batch.after_commit": "file committed, not yet published",
    "relay.published_unconfirmed": "file handed to the broker, its confirm not awaited",
    "relay.confirmed_unmarked": "broker confirmed the message, the outbox not yet marked sent",
    "inbound.before_commit": "bank report applied in the transaction, not committed",
    "inbound.before_ack": "bank report committed, the broker not yet told (ack)",
}

_armed: dict[str, int] | None = None


def _load() -> dict[str, int]:
    spec = os.environ.get("GATEWAY_CRASH_AT", "").strip()
    if not spec:
        return {}
    name, _, count = spec.partition(":")
    if name not in POINTS:
        # A typo would make a fault test pass without any fault: refuse to start quietly.
        sys.stderr.write(f"GATEWAY_CRASH_AT names no crash point: {name!r}\n")
        os._exit(2)
    return {name: int(count or 1)}


def armed(name: str) -> bool:
    """True when the next `hit(name)` would kill the process."""
    global _armed  # noqa: PLW0603 - read once per process, on first use
    if _armed is None:
        _armed = _load()
    return _armed.get(name) == 1


def hit(name: str) -> None:
    """Die here (SIGKILL, no cleanup) when this point is armed and its count is reached."""
    global _armed  # noqa: PLW0603 - read once per process, on first use
    if _armed is None:
        _armed = _load()
    if name not in _armed:
        return
    _armed[name] -= 1
    if _armed[name] <= 0:
        sys.stderr.write(f"crash point {name} reached: killing the process\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
