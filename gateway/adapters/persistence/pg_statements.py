"""PostgreSQL's own account of a run: the statements that took the most time.

Read from `pg_stat_statements`, which `scripts/postgres` preloads in this checkout's private
cluster. That cluster trusts every role over loopback, so the benchmark reads and resets the
view as the superuser `postgres`; against any other server it says why it measured nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg

# How many statements the benchmark prints.
TOP = 8
# How much of each statement's text it prints (whitespace folded).
TEXT_CHARS = 110


@dataclass(frozen=True)
class Statement:
    """One normalised statement's account for the run."""

    calls: int
    total_ms: float
    rows: int
    text: str

    @property
    def each_ms(self) -> float:
        """Milliseconds a call, on average."""
        return self.total_ms / self.calls if self.calls else 0.0


def as_superuser(url: str) -> str:
    """The same database as the role `postgres` (the private cluster's trust rule), on its
    default search path: the view and its functions live in `public`, not in the schema a
    benchmark's URL names."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("options="))
    return urlunsplit(parts._replace(netloc=f"postgres@{host}", query=query))


class StatementStats:
    """Resets the view before a run and reads the costliest statements after it."""

    def __init__(self, url: str) -> None:
        self._url = as_superuser(url)

    def reset(self) -> str | None:
        """Start counting afresh; None, or why nothing will be measured."""
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"not measured: {first[:200]}"
        return None

    def top(self, count: int = TOP) -> list[Statement]:
        """This database's statements that took the most time since the reset."""
        with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT calls, total_exec_time, rows, query FROM pg_stat_statements"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " ORDER BY total_exec_time DESC LIMIT %s",
                (count,),
            ).fetchall()
        return [
            Statement(int(calls), float(total), int(n), _folded(text))
            for calls, total, n, text in rows
        ]


def _folded(text: str) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= TEXT_CHARS else flat[: TEXT_CHARS - 3] + "..."
