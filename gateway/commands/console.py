"""`gateway console`: the operations console, a web page for treasury admins."""

from __future__ import annotations

import click

from gateway.commands import existing_database
from gateway.config import Settings


@click.command()
@click.option("--port", type=int, default=None, help="Port (default: the console_port setting).")
@click.option(
    "--address", default=None, help="Address to bind (default: console_address, 127.0.0.1)."
)
@click.pass_obj
def console(settings: Settings, port: int | None, address: str | None) -> None:
    """Serve the operations console until Ctrl-C: overview, search and timelines, files,
    parked and quarantined work, reconciliation and the audit trail, for users added with
    `gateway users add`."""
    from gateway.bootstrap import console_server

    storage = existing_database(settings)
    address = address or settings.console_address
    port = settings.console_port if port is None else port
    if not storage.queries.users():
        click.echo(
            "no console users yet: add one with `gateway users add NAME --role operator`", err=True
        )
    scheme = "https" if settings.console_tls_cert else "http"
    click.echo(f"console at {scheme}://{address}:{port}/ ; Ctrl-C stops", err=True)
    console_server(settings, storage, address=address, port=port).run()
