"""Schema migrations: numbered SQL files per backend, applied in order, each recorded once.

`schema/<backend>/NNNN_<name>.sql` holds the statements of version NNNN. The table
`schema_version` records every version applied, with when. A database whose newest version is
above the newest file this gateway ships was upgraded by a newer gateway: it is refused with one
line instead of being written to by code that does not know its tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

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


@dataclass(frozen=True, slots=True)
class Applier:
    """How one backend runs a migration: read the recorded version, run one statement, record
    one version (all inside the caller's transaction)."""

    current: Callable[[], int]
    run: Callable[[str], object]
    record: Callable[[int, str, datetime], object]


def pending(backend: str, current: int) -> list[Migration]:
    """What a database at version `current` still needs; SchemaTooNew when it is ahead."""
    known = shipped(backend)
    newest = known[-1].version if known else 0
    if current > newest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, newer than this gateway knows"
            f" ({newest}): run the gateway release that upgraded it, or a newer one"
        )
    return [m for m in known if m.version > current]


def upgrade(backend: str, applier: Applier, now: datetime) -> list[int]:
    """Apply every pending migration in the caller's transaction; the versions applied."""
    applied = []
    for migration in pending(backend, applier.current()):
        for statement in migration.statements:
            applier.run(statement)
        applier.record(migration.version, migration.name, now)
        applied.append(migration.version)
    return applied


def newest(backend: str) -> int:
    """The newest schema version this gateway ships for `backend`."""
    known = shipped(backend)
    return known[-1].version if known else 0
