"""`python -m gateway.soak` (scripts/soak): run the fault harness and print its table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway import logs
from gateway.errors import GatewayError
from gateway.progress import Progress
from gateway.soak.harness import ALL_POINTS, BANK_FAULTS, DEFAULT_WORKDIR, SoakConfig, run_soak


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--orders", default=10_000, show_default=True, help="Orders to publish.")
@click.option("--seed", default=5, show_default=True, help="Seed of orders and schedule.")
@click.option("--batch-size", default=200, show_default=True, help="Orders per file.")
@click.option("--publish-seconds", default=150.0, show_default=True, help="Spread of publishing.")
@click.option("--kills", default=12, show_default=True, help="Random SIGKILLs of the gateway.")
@click.option(
    "--crash-points/--no-crash-points", default=True, help="Die once at each crash point."
)
@click.option("--broker-restarts", default=2, show_default=True, help="Graceful restarts.")
@click.option("--broker-kills", default=2, show_default=True, help="SIGKILLs of the broker.")
@click.option("--bank-outage", default=15.0, show_default=True, help="Seconds the bank is down.")
@click.option("--db-lock", default=8.0, show_default=True, help="Seconds the database is locked.")
@click.option("--disk-full", default=8.0, show_default=True, help="Seconds the disk is full.")
@click.option(
    "--bank-faults",
    default=BANK_FAULTS,
    show_default=True,
    help="Bank simulator misbehaviour (probabilities per reply).",
)
@click.option("--workdir", type=click.Path(path_type=Path), default=None, help="Default var/soak.")
@click.option(
    "--db",
    "database",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
    help="The gateways' database: SQLite, or this checkout's PostgreSQL (scripts/postgres).",
)
@click.option(
    "--instances",
    default=1,
    show_default=True,
    help="Gateway processes sharing the work (more than one needs --db postgres).",
)
@click.option(
    "--postgres-restarts", default=1, show_default=True, help="Graceful PostgreSQL restarts."
)
@click.option("--postgres-kills", default=1, show_default=True, help="SIGKILLs of PostgreSQL.")
@click.option("--pkcs11", is_flag=True, help="Our key in a SoftHSM2 token made under the workdir.")
@click.option(
    "--cluster",
    default=0,
    show_default=True,
    help="Run on a cluster of this many RabbitMQ nodes (scripts/broker cluster); broker faults"
    " become node kills and a node cut off.",
)
@click.option("--node-kills", default=6, show_default=True, help="SIGKILLs of a random node.")
@click.option(
    "--node-pauses", default=1, show_default=True, help="Nodes cut off by SIGSTOP for a while."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object (no progress)."
)
def main(
    orders: int,
    seed: int,
    batch_size: int,
    publish_seconds: float,
    kills: int,
    crash_points: bool,
    broker_restarts: int,
    broker_kills: int,
    bank_outage: float,
    db_lock: float,
    disk_full: float,
    bank_faults: str,
    workdir: Path | None,
    database: str,
    instances: int,
    postgres_restarts: int,
    postgres_kills: int,
    pkcs11: bool,
    cluster: int,
    node_kills: int,
    node_pauses: int,
    as_json: bool,
) -> None:
    """Publish ORDERS orders while the gateway, broker, bank and disk are broken; check."""
    config = SoakConfig(
        orders=orders,
        seed=seed,
        batch_size=batch_size,
        publish_seconds=publish_seconds,
        random_kills=kills,
        crash_points=ALL_POINTS if crash_points else (),
        broker_restarts=broker_restarts,
        broker_kills=broker_kills,
        bank_outage_s=bank_outage,
        db_lock_s=db_lock,
        disk_full_s=disk_full,
        bank_faults=bank_faults,
        workdir=workdir or DEFAULT_WORKDIR,
        database=database,
        instances=instances,
        postgres_restarts=postgres_restarts,
        postgres_kills=postgres_kills,
        pkcs11=pkcs11,
        cluster=cluster,
        node_kills=node_kills,
        node_pauses=node_pauses,
    )
    log_path = config.workdir.parent / "soak.log.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log_file:
        logs.configure("json", "info", stream=log_file)
        click.echo(f"soak: {orders} orders; harness logs in {log_path}", err=True)
        try:
            # On a terminal a line shows the faults done and the orders settling.
            result = run_soak(config, progress=Progress("soak", enabled=False if as_json else None))
        except GatewayError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    click.echo(json.dumps(result.as_json(), sort_keys=True) if as_json else result.render())
    sys.exit(0 if result.verdict.clean else 1)


if __name__ == "__main__":
    main()
