"""`gateway files`: the file-exchange partners' folders, scanned on demand."""

from __future__ import annotations

import json
from collections import Counter

import click

from gateway.config import Settings
from gateway.errors import ConfigError


@click.group()
def files() -> None:
    """Partners reached by file exchange (local folders or SFTP)."""


@files.command()
@click.option("--partner", default=None, help="Only this partner (default: every files partner).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@click.pass_context
def scan(ctx: click.Context, partner: str | None, as_json: bool) -> None:
    """Read the bank's reports waiting in the inbound folder now, once each.

    Files still being written are left for the next scan; each other file is claimed, applied
    and moved to processed/ or failed/ (with a .reason.txt).
    """
    from gateway.bootstrap import file_partners, inbound_service, partner_folders
    from gateway.commands import existing_database  # keeps --help instant
    from gateway.service.file_scanner import FileScanner

    settings: Settings = ctx.obj
    names = file_partners(settings)
    if partner is not None:
        if partner not in settings.partners:
            raise ConfigError(f"no partner profile named {partner!r} in conf/partners/")
        if partner not in names:
            transport = settings.partners[partner].transport
            raise ConfigError(f"partner {partner} is reached by {transport}, not by files")
        names = (partner,)
    if not names:
        raise ConfigError('no partner is reached by file exchange (transport = "files")')

    # Reports claimed here are moved to processed/: never apply them to a new, empty database.
    storage = existing_database(settings)
    inbound = inbound_service(storage, settings)
    results: dict[str, dict[str, int]] = {}
    for name in names:
        profile = settings.partners[name]
        _, folder = partner_folders(settings, profile)
        try:
            outcome: Counter[str] = FileScanner(profile, folder, inbound, storage.queries).scan()
        finally:
            folder.close()
        results[name] = dict(sorted(outcome.items()))
    if as_json:
        click.echo(json.dumps(results, sort_keys=True))
        return
    for name, counted in results.items():
        counts = ", ".join(f"{key} {value}" for key, value in counted.items()) or "nothing waiting"
        click.echo(f"{name}: {counts}")
