"""Sub-commands of `gateway`, one module per area; gateway/cli.py registers them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.service.ports import Storage


def existing_database(settings: Settings, *, upgrade: bool = True) -> Storage:
    """The gateway's database (see `gateway.bootstrap.existing_storage`), opened only when a
    command needs it."""
    from gateway.bootstrap import existing_storage

    return existing_storage(settings, upgrade=upgrade)
