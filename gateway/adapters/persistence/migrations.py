"""Schema migrations: numbered SQL files per backend, applied in order, each recorded once.

`schema/<backend>/NNNN_<name>.sql` holds the statements of version NNNN. The table
`schema_version` records every version applied, with when. A database whose newest version is
above the newest file this gateway ships was upgraded by a newer gateway: it is refused with one
line instead of being written to by code that does not know its tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from gateway.adapters.persistence.sql import Executor
from gateway.service.ports import SchemaTooNew

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    statements: tuple[str, ...]


def statements(script: str) -> tuple[str, ...]:
    """The statements of a script: comment lines dropped, split on `;` at line ends."""
    text = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return tuple(part.strip() for part in re.split(r";\s*\n", text + "\n") if part.strip())


def shipped(backend: str) -> list[Migration]:
    """The migrations this gateway ships for `backend` (`sqlite` or `postgres`), in order."""
    folder = resources.files("gateway.adapters.persistence").joinpath("schema", backend)
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(int(match[1]), match[2], statements(entry.read_text(encoding="utf-8")))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"schema/{backend}: versions must run 1, 2, 3...; found {versions}")
    return found


def pending(backend: str, current: int) -> list[Migration]:
    """What a database at version `current` still needs; SchemaTooNew when it is ahead."""
    known = shipped(backend)
    newest = known[-1].version if known else 0
    if current > newest:
        raise SchemaTooNew.at(current, newest)
    return [m for m in known if m.version > current]


# The version table: the same statement on both backends but for the time's column type.
_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at {time} NOT NULL)"
)
_TIME_TYPE = {"sqlite": "TEXT", "postgres": "TIMESTAMPTZ"}


def current(ex: Executor, backend: str) -> int:
    """The newest version recorded in the database (0 for one from before versioning), the
    version table made when missing (inside the caller's transaction)."""
    ex.run(_VERSION_TABLE.format(time=_TIME_TYPE[backend]))
    row = ex.one("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(row[0]) if row else 0


def upgrade(ex: Executor, backend: str, now: datetime) -> list[int]:
    """Apply every pending migration in the caller's transaction; the versions applied."""
    applied = []
    for migration in pending(backend, current(ex, backend)):
        for statement in migration.statements:
            ex.run(statement)
        ex.run(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, now),
        )
        applied.append(migration.version)
    return applied


def newest(backend: str) -> int:
    """The newest schema version this gateway ships for `backend`."""
    known = shipped(backend)
    return known[-1].version if known else 0
