"""The storage port's adapters: memory (unit tests only), SQLite (the default) and PostgreSQL
(several instances). `open_storage` picks one from the settings."""

from __future__ import annotations

from pathlib import Path

from gateway.errors import ConfigError
from gateway.service.ports import Storage


def open_storage(db_url: str, sqlite_file: Path, *, upgrade: bool = True) -> Storage:
    """The storage `db_url` names (`postgresql://...`, `sqlite:///path`), else SQLite at
    `sqlite_file`; its schema upgraded on opening unless `upgrade` is False."""
    if db_url.startswith(("postgresql://", "postgres://")):
        from gateway.adapters.persistence.postgres import PostgresStorage  # noqa: PLC0415 - psycopg only when used

        return PostgresStorage(db_url, upgrade=upgrade)
    from gateway.adapters.persistence.sqlite import SqliteStorage  # noqa: PLC0415 - same reason

    if not db_url:
        return SqliteStorage(sqlite_file, upgrade=upgrade)
    if db_url.startswith("sqlite:///"):
        return SqliteStorage(Path(db_url.removeprefix("sqlite://")), upgrade=upgrade)
    raise ConfigError(
        f"GATEWAY_DB_URL {db_url.split('://', 1)[0]}://... is not a database the gateway"
        " knows: use postgresql://user@host:port/dbname or sqlite:///path/to/file.db"
    )
