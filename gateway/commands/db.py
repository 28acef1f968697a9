"""`gateway db`: the gateway's database schema, its version and its upgrades."""

from __future__ import annotations

import click

from gateway.commands import existing_database
from gateway.config import Settings


@click.group()
def db() -> None:
    """The gateway's database (SQLite by default, PostgreSQL by GATEWAY_DB_URL)."""


@db.command("status")
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Which database, and its schema version against the newest this gateway ships.

    A database upgraded by a newer gateway than this one is named so, exit 1 (as every other
    command refuses it)."""
    from gateway.service.ports import SchemaTooNew

    settings: Settings = ctx.obj
    storage = existing_database(settings, upgrade=False)  # closed as the command ends
    applied, newest = storage.schema()
    if applied > newest:
        raise SchemaTooNew.at(applied, newest, f"database {storage.describe()}")
    state = "up to date" if applied == newest else f"{newest - applied} upgrade(s) pending"
    click.echo(f"database {storage.describe()}: schema version {applied} of {newest}, {state}")


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the schema migrations the database lacks (`gateway run` also does at start).

    A database upgraded by a newer gateway than this one is refused, never written to."""
    settings: Settings = ctx.obj
    storage = existing_database(settings, upgrade=False)  # closed as the command ends
    applied = storage.upgrade()
    version, _ = storage.schema()
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    click.echo(f"database {storage.describe()}: schema version {version} ({done})")
