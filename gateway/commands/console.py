"""`gateway console`: the operations console, a web page for treasury admins."""

from __future__ import annotations

import click

from gateway.adapters.web.serving import check_tls, listen
from gateway.commands import existing_database
from gateway.config import Settings


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port (default: the console_port setting; 0: any free port, said on start).",
)
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
    check_tls(settings)
    sockets = listen(address, port)
    try:
        server = console_server(settings, storage, address=address, port=port)
        scheme = "https" if settings.console_tls_cert else "http"
        bound = sockets[0].getsockname()[1]
        click.echo(f"console at {scheme}://{address}:{bound}/ ; Ctrl-C stops", err=True)
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
