"""`gateway files`: the file-exchange partners' folders, scanned on demand."""

from __future__ import annotations

import json
from collections import Counter

import click

from gateway.commands import admin
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
    from gateway.bootstrap import file_partners

    wiring = admin(ctx)
    if partner is not None:
        names: tuple[str, ...] = (wiring.file_partner(partner).name,)
    else:
        names = file_partners(wiring.settings)
    if not names:
        raise ConfigError('no partner is reached by file exchange (transport = "files")')
    results: dict[str, dict[str, int]] = {}
    for scanner in wiring.scanners(names):
        try:
            outcome: Counter[str] = scanner.scan()
        finally:
            scanner.close()
        results[scanner.partner] = dict(sorted(outcome.items()))
    if as_json:
        click.echo(json.dumps(results, sort_keys=True))
        return
    for name, counted in results.items():
        counts = ", ".join(f"{key} {value}" for key, value in counted.items()) or "nothing waiting"
        click.echo(f"{name}: {counts}")
