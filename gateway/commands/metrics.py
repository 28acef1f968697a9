"""`gateway metrics`: the database's state in Prometheus text format, once, without a server."""

from __future__ import annotations

import click

from gateway.commands import existing_database
from gateway.config import Settings


@click.command()
@click.pass_context
def metrics(ctx: click.Context) -> None:
    """Print the state metrics (orders, files, outbox, bank reports) as Prometheus text.

    For admins without a Prometheus server, or to check what one would scrape. Only what the
    database holds is printed: counters and timings of a running gateway live in its process
    and are served by `gateway run` at http://<metrics_address>:<metrics_port>/metrics.
    """
    from gateway.adapters.prometheus import exposition, state_registry

    settings: Settings = ctx.obj
    click.echo(exposition(state_registry(existing_database(settings).queries, settings)), nl=False)
