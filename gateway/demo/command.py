"""`gateway demo`: the demo month as a command (the demo's own wiring is gateway/demo/run.py)."""

from __future__ import annotations

import json
import urllib.parse

import click

from gateway import logs
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.progress import Progress


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--timeout", default=110.0, show_default=True, help="Seconds to wait for the flow.")
@click.option("--verbose", is_flag=True, help="Logs on stderr instead of var/demo.log.jsonl.")
@click.option(
    "--allow-remote-broker",
    "allow_remote",
    is_flag=True,
    help="Run even though GATEWAY_AMQP_URL is not on this machine (queues are emptied).",
)
@click.option(
    "--db",
    "database",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
    help="Run on SQLite (a fresh file) or on PostgreSQL at GATEWAY_DB_URL (a fresh schema"
    " gateway_demo; scripts/demo --db postgres starts a local server).",
)
@click.pass_context
def demo(
    ctx: click.Context,
    as_json: bool,
    timeout: float,
    verbose: bool,
    allow_remote: bool,
    database: str,
) -> None:
    """Run a month of Phú Lương's payments through the gateway and a simulated bank."""
    from dataclasses import replace

    from gateway.demo.run import render, run_demo

    settings: Settings = ctx.obj
    hosts = [urllib.parse.urlparse(u).hostname or "" for u in settings.amqp_urls]
    host = next((h for h in hosts if h not in ("localhost", "127.0.0.1", "::1")), "")
    if host and not allow_remote:
        raise GatewayError(
            f"the demo empties the gateway's queues and will not do that on {host}; "
            "use a local broker (scripts/broker start) or pass --allow-remote-broker"
        )
    if database == "sqlite":
        settings = replace(settings, db_url="")
    elif settings.database != "postgresql":
        raise GatewayError(
            "--db postgres needs GATEWAY_DB_URL=postgresql://...; scripts/demo --db postgres"
            " starts a local PostgreSQL and sets it"
        )
    else:
        db_host = urllib.parse.urlparse(settings.db_url).hostname or ""
        if db_host not in ("localhost", "127.0.0.1", "::1") and not allow_remote:
            raise GatewayError(
                f"the demo replaces schema gateway_demo and will not do that on {db_host};"
                " use scripts/postgres start or pass --allow-remote-broker"
            )
    if not verbose:
        log_path = settings.path("var/demo.log.jsonl")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = ctx.with_resource(log_path.open("w", encoding="utf-8"))
        logs.configure("json", settings.log_level, stream=log_file)
        click.echo(f"demo: running; the gateway's JSON logs go to {log_path}", err=True)
    # On a terminal, a line shows how far the month is; never with --json or logs on stderr.
    progress = Progress("demo", enabled=False if as_json or verbose else None)
    result = run_demo(settings, timeout=timeout, progress=progress)
    click.echo(render(result))
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, sort_keys=True))
    unfinished = {
        state: count
        for state, count in result["by_state"].items()
        if state not in ("settled", "rejected", "returned", "invalid")
    }
    if unfinished:
        raise click.ClickException(f"the demo left orders unfinished: {unfinished}")
