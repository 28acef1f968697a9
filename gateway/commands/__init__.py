"""Sub-commands of `gateway`, one module per area; gateway/cli.py registers them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.bootstrap import Admin
    from gateway.service.ports import Storage


def existing_database(settings: Settings, *, upgrade: bool = True) -> Storage:
    """The gateway's database (see `gateway.bootstrap.existing_storage`), opened only when a
    command needs it."""
    from gateway.bootstrap import existing_storage

    return existing_storage(settings, upgrade=upgrade)


def admin(ctx: click.Context) -> Admin:
    """The admin wiring (gateway.bootstrap.Admin) of this command's settings, built when a
    command needs it (so that `--help` stays instant)."""
    from gateway.bootstrap import Admin

    settings: Settings = ctx.obj
    return Admin(settings)
