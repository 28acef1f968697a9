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
    command needs it, and closed when the command ends, however it ends (on PostgreSQL its
    pool's connections are given back to the server then, not left to the process's exit)."""
    from gateway.bootstrap import existing_storage

    storage = existing_storage(settings, upgrade=upgrade)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(storage.close)
    return storage


def admin(ctx: click.Context) -> Admin:
    """The admin wiring (gateway.bootstrap.Admin) of this command's settings, built when a
    command needs it (so that `--help` stays instant)."""
    from gateway.bootstrap import Admin

    settings: Settings = ctx.obj
    wiring = Admin(settings)
    ctx.call_on_close(wiring.close)
    return wiring
