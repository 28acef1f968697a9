"""Sub-commands of `gateway`, one module per area; gateway/cli.py registers them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import Settings
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.adapters.db import Database


def existing_database(settings: Settings) -> Database:
    """The gateway's database, refusing to create an empty one by mistake (a wrong
    GATEWAY_HOME or db_path would otherwise be taken for a gateway with no history)."""
    from gateway.adapters.db import Database  # the sqlite adapter only when a command needs it

    if not settings.db_file.exists():
        raise GatewayError(f"no gateway database at {settings.db_file} yet; start `gateway run`")
    return Database(settings.db_file)
