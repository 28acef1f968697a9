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

from gateway.errors import GatewayError

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
        """Start counting this database's statements afresh (the cluster's other databases
        keep theirs); None, or why nothing will be measured."""
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute(f"SELECT pg_stat_statements_reset(0, ({_THIS_DATABASE}), 0)")
        except psycopg.Error as exc:
            return f"not measured: {_first_line(exc)}"
        return None

    def top(self, count: int = TOP) -> list[Statement]:
        """This database's statements that took the most time since the reset; GatewayError
        saying why when they cannot be read."""
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
                rows = conn.execute(_TOP, (count,)).fetchall()
        except psycopg.Error as exc:
            raise GatewayError(f"not read: {_first_line(exc)}") from exc
        return [
            Statement(int(calls), float(total), int(n), _folded(text))
            for calls, total, n, text in rows
        ]


_THIS_DATABASE = "SELECT oid FROM pg_database WHERE datname = current_database()"
_TOP = (
    "SELECT calls, total_exec_time, rows, query FROM pg_stat_statements"
    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " ORDER BY total_exec_time DESC LIMIT %s"
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _folded(text: str) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= TEXT_CHARS else flat[: TEXT_CHARS - 3] + "..."
