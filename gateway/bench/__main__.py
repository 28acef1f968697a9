"""`python -m gateway.bench e2e|relay` (scripts/bench_e2e, scripts/bench_relay): print figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway import logs
from gateway.bench.e2e import DEFAULT_WORKDIR, BenchConfig, E2EBench
from gateway.bench.relay import run_relay_bench
from gateway.errors import GatewayError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Benchmarks of the gateway on this machine's broker and database (figures only)."""


@main.command()
@click.option("--orders", default=100_000, show_default=True, help="Bulk orders, preloaded.")
@click.option(
    "--db",
    "database",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
    help="SQLite (a fresh file), or this checkout's PostgreSQL (a fresh schema gateway_bench).",
)
@click.option("--instances", default=1, show_default=True, help="`gateway run` processes.")
@click.option(
    "--split", is_flag=True, help="Each instance as two processes: `--role main`, `--role reports`."
)
@click.option(
    "--reports",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --split: the processes of each instance that run `--role reports`.",
)
@click.option(
    "--reports-processes",
    default=None,
    metavar="N|auto",
    help="Without --split: `gateway run --reports-processes` (default: the gateway's own"
    " setting, auto: one per core beyond the first).",
)
@click.option("--urgent", default=0, show_default=True, help="Urgent orders sent one by one.")
@click.option("--urgent-gap", default=0.1, show_default=True, help="Seconds between them.")
@click.option("--seed", default=13, show_default=True, help="Seed of the orders.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds before giving up.")
@click.option("--workdir", type=click.Path(path_type=Path), default=None, help="Default var/bench.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def e2e(
    orders: int,
    database: str,
    instances: int,
    split: bool,
    reports: int,
    reports_processes: str | None,
    urgent: int,
    urgent_gap: float,
    seed: int,
    timeout: float,
    workdir: Path | None,
    as_json: bool,
) -> None:
    """N orders end to end: gateway(s), bank simulator and a ledger consumer."""
    logs.configure("console", "warning")
    config = BenchConfig(
        orders=orders,
        database=database,
        instances=instances,
        split=split,
        reports=reports,
        reports_processes=reports_processes,
        urgent=urgent,
        urgent_gap=urgent_gap,
        seed=seed,
        timeout=timeout,
        workdir=workdir or DEFAULT_WORKDIR,
    )
    if reports > 1 and not split:
        raise click.UsageError("--reports needs --split (the roles in processes of their own)")
    if split and reports_processes is not None:
        raise click.UsageError("--reports-processes is for `gateway run`, not --split")
    try:
        result = E2EBench(config).run()
    except GatewayError as exc:
        click.echo(f"bench_e2e: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result.as_json(), indent=2) if as_json else result.render())


@main.command()
@click.option("--postings", default=50_000, show_default=True, help="Postings in the outbox.")
@click.option(
    "--db",
    "database",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
    help="SQLite (a fresh file), or this checkout's PostgreSQL (a fresh schema gateway_bench).",
)
@click.option(
    "--compare",
    default=5_000,
    show_default=True,
    help="Postings also drained with a confirm awaited per message (0: not done).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def relay(postings: int, database: str, compare: int, as_json: bool) -> None:
    """Confirmed postings per second of the outbox relay alone."""
    logs.configure("console", "warning")
    try:
        result = run_relay_bench(postings, database, compare)
    except GatewayError as exc:
        click.echo(f"bench_relay: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result.as_json(), indent=2) if as_json else result.render())


if __name__ == "__main__":
    main()
