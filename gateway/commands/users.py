"""`gateway users add|disable|enable|list`: who may use the operations console."""

from __future__ import annotations

import sys

import click

from gateway.commands import existing_database
from gateway.config import Settings
from gateway.errors import GatewayError


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise GatewayError(
            "no terminal to ask the password on: give it on standard input with --password-stdin"
        )
    value: str = click.prompt("password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def users() -> None:
    """Console users and their roles: viewer (looks) or operator (also replays, drops,
    reprocesses)."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["viewer", "operator"]), required=True, help="What they may do."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_obj
def users_add(settings: Settings, name: str, role: str, password_stdin: bool) -> None:
    """Add a console user (the password is asked twice, or read from standard input)."""
    from gateway.adapters.web.passwords import Argon2Hasher
    from gateway.service.audit import cli_actor
    from gateway.service.users import add_user

    password = _password(password_stdin)
    storage = existing_database(settings)
    add_user(
        storage, Argon2Hasher(), name=name, role=role, password=password, actor=cli_actor(),
        via="cli",
    )  # fmt: skip
    click.echo(f"added {role} {name}")


@users.command("disable")
@click.argument("name")
@click.pass_obj
def users_disable(settings: Settings, name: str) -> None:
    """Disable a user: no new login, and their open sessions end at their next request."""
    from gateway.service.audit import cli_actor
    from gateway.service.users import set_disabled

    set_disabled(
        existing_database(settings), name=name, disabled=True, actor=cli_actor(), via="cli"
    )
    click.echo(f"disabled {name}")


@users.command("enable")
@click.argument("name")
@click.pass_obj
def users_enable(settings: Settings, name: str) -> None:
    """Enable a disabled user again."""
    from gateway.service.audit import cli_actor
    from gateway.service.users import set_disabled

    set_disabled(
        existing_database(settings), name=name, disabled=False, actor=cli_actor(), via="cli"
    )
    click.echo(f"enabled {name}")


@users.command("list")
@click.pass_obj
def users_list(settings: Settings) -> None:
    """The console's users, their roles and whether they are disabled."""
    found = existing_database(settings).queries.users()
    if not found:
        raise GatewayError("no console users yet: `gateway users add NAME --role operator`")
    for user in found:
        state = "disabled" if user.disabled else "enabled"
        click.echo(f"{user.name:<24}{user.role:<10}{state:<10}since {user.created_at:%Y-%m-%d}")
