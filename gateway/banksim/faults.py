"""A misbehaving bank: replies duplicated, delayed, out of order, or dropped and resent later.

Faults are chosen per reply from a plan such as `duplicate=0.1,delay=0.1,reorder=0.2,drop=0.05`
(`GATEWAY_BANKSIM_FAULTS`). A delayed or dropped reply is kept in the bank's own database until
it is due, so a bank simulator that is killed still sends it after its restart, as a real bank
resends reports it failed to deliver.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.errors import ConfigError

log = structlog.get_logger("gateway.banksim")

Reply = tuple[str, str, bytes]
Send = Callable[[Reply], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held_replies (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    body     BLOB NOT NULL,
    due_at   REAL NOT NULL,
    fault    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fault_counts (
    fault  TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Probability of each fault per reply (reorder: per file), and the delays they use."""

    duplicate: float = 0.0
    delay: float = 0.0
    reorder: float = 0.0
    drop: float = 0.0
    # Seconds a delayed reply waits; a dropped one is resent after `resend_after` seconds.
    delay_s: tuple[float, float] = (0.5, 4.0)
    resend_after: tuple[float, float] = (5.0, 15.0)
    seed: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """`duplicate=0.1,delay=0.1,reorder=0.2,drop=0.05,seed=7`; unknown names are refused."""
        values: dict[str, float] = {}
        seed: int | None = None
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, raw = part.partition("=")
            try:
                if name == "seed":
                    seed = int(raw)
                    continue
                if name not in ("duplicate", "delay", "reorder", "drop"):
                    raise ValueError(name)
                values[name] = float(raw)
            except ValueError:
                raise ConfigError(
                    f"bank simulator fault {part!r}: expected duplicate|delay|reorder|drop="
                    "probability or seed=integer"
                ) from None
            if not 0.0 <= values[name] <= 1.0:
                raise ConfigError(f"bank simulator fault {part!r}: probability outside 0..1")
        return cls(
            duplicate=values.get("duplicate", 0.0),
            delay=values.get("delay", 0.0),
            reorder=values.get("reorder", 0.0),
            drop=values.get("drop", 0.0),
            seed=seed,
        )

    @property
    def active(self) -> bool:
        """True when any fault may happen."""
        return any((self.duplicate, self.delay, self.reorder, self.drop))


class ReplyFaults:
    """Sits between the bank's decisions and the channel back to the gateway."""

    def __init__(self, plan: FaultPlan, path: Path, send: Send) -> None:
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._send = send
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.executescript(_SCHEMA)

    def deliver(self, replies: Sequence[Reply]) -> None:
        """Send one file's replies, misbehaving as the plan says."""
        ordered = list(replies)
        if len(ordered) > 1 and self._rng.random() < self._plan.reorder:
            ordered.reverse()
            self._count("reorder")
        for reply in ordered:
            roll = self._rng.random()
            if roll < self._plan.drop:
                self._hold(reply, self._rng.uniform(*self._plan.resend_after), "drop")
                continue
            if roll < self._plan.drop + self._plan.delay:
                self._hold(reply, self._rng.uniform(*self._plan.delay_s), "delay")
                continue
            self._send(reply)
            if self._rng.random() < self._plan.duplicate:
                self._send(reply)
                self._count("duplicate")

    def flush_due(self) -> int:
        """Send the held replies whose time has come; returns how many."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, msg_id, kind, body, fault FROM held_replies WHERE due_at <= ?"
                " ORDER BY due_at",
                (time.time(),),
            ).fetchall()
        for seq, msg_id, kind, body, fault in rows:
            self._send((msg_id, kind, bytes(body)))
            with self._lock:
                self._conn.execute("DELETE FROM held_replies WHERE seq = ?", (seq,))
            log.info("bank.reply_released", msg_id=msg_id, fault=fault)
        return len(rows)

    def held(self) -> int:
        """Replies waiting to be sent."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM held_replies").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """How often each fault happened."""
        return read_fault_counts(self._conn)

    def _hold(self, reply: Reply, seconds: float, fault: str) -> None:
        msg_id, kind, body = reply
        with self._lock:
            self._conn.execute(
                "INSERT INTO held_replies (msg_id, kind, body, due_at, fault)"
                " VALUES (?, ?, ?, ?, ?)",
                (msg_id, kind, body, time.time() + seconds, fault),
            )
        self._count(fault)
        log.info("bank.reply_held", msg_id=msg_id, fault=fault, seconds=round(seconds, 1))

    def _count(self, fault: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO fault_counts (fault, n) VALUES (?, 1)"
                " ON CONFLICT(fault) DO UPDATE SET n = n + 1",
                (fault,),
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()


def read_fault_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Fault counts from a bank database (for the soak's report)."""
    try:
        rows = conn.execute("SELECT fault, n FROM fault_counts ORDER BY fault").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {str(fault): int(n) for fault, n in rows}
