"""`python -m gateway.soak.prefetch` (scripts/measure-prefetch): intake throughput per prefetch.

Publishes the same orders once per prefetch value into `gateway.orders` of a local broker, lets
the real intake (chunks of `intake_chunk`, one commit and one multiple-ack each) take them into a
fresh database, and prints orders per second. The gateway's default prefetch is chosen from it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import replace
from pathlib import Path

import click

from gateway import logs
from gateway.adapters import topology
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.rabbitmq import Publisher, connect, consume
from gateway.bootstrap import declare_topology
from gateway.config import Settings, load_settings
from gateway.progress import Progress
from gateway.service.intake import IntakeService
from gateway.soak.orders import generate


def _publish(settings: Settings, bodies: list[bytes]) -> None:
    publisher = Publisher(settings.amqp_url)
    try:
        for n, body in enumerate(bodies):
            publisher.publish(
                topology.ORDERS_EXCHANGE, "order.social_benefit", body, message_id=f"m{n}"
            )
    finally:
        publisher.close()


def measure(settings: Settings, prefetch: int, bodies: list[bytes], workdir: Path) -> float:
    """Orders per second taken in by intake with this prefetch."""
    conn = connect(settings.amqp_url)
    conn.channel().queue_purge(topology.ORDERS_QUEUE)
    conn.close()
    _publish(settings, bodies)
    storage = SqliteStorage(workdir / f"prefetch-{prefetch}.db")
    intake = IntakeService(storage, settings)
    stop = threading.Event()
    started = time.monotonic()
    worker = threading.Thread(
        target=consume,
        args=(settings.amqp_url, topology.ORDERS_QUEUE, intake.handle, stop),
        kwargs={"prefetch": prefetch, "chunk": settings.intake_chunk},
    )
    worker.start()
    while sum(storage.queries.orders_by_state().values()) < len(bodies):
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    stop.set()
    worker.join(10)
    return len(bodies) / elapsed


@click.command()
@click.option("--orders", default=20_000, show_default=True, help="Orders per measurement.")
@click.option(
    "--prefetch",
    "values",
    default="10,50,100,250,500,1000,2000,5000",
    show_default=True,
    help="Comma-separated prefetch values.",
)
@click.option("--rounds", default=2, show_default=True, help="Measurements per value (best kept).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print {prefetch: orders/s} as JSON (no progress)."
)
def main(orders: int, values: str, rounds: int, as_json: bool) -> None:
    """Print intake throughput for each prefetch value."""
    settings = load_settings()
    host = urllib.parse.urlparse(settings.amqp_url).hostname or ""
    if host not in ("localhost", "127.0.0.1", "::1"):
        click.echo(f"error: refusing to empty gateway.orders on {host}", err=True)
        sys.exit(1)
    logs.configure("json", "error")
    declare_topology(settings)
    soak = generate(orders, seed=11)
    bodies = [soak.body(order) for order in soak.orders]
    # On a terminal, a line says which measurement runs.
    progress = Progress("measure-prefetch", enabled=False if as_json else None)
    if not as_json:
        click.echo(f"intake throughput, {orders} orders, chunk {settings.intake_chunk}")
        click.echo(f"{'prefetch':>10}{'orders/s':>12}")
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for value in (int(v) for v in values.split(",")):
            best = 0.0
            for round_ in range(rounds):
                progress.update(f"prefetch {value}, round {round_ + 1} of {rounds}", force=True)
                workdir = Path(tmp) / f"{value}-{round_}"
                workdir.mkdir()
                best = max(best, measure(replace(settings), value, bodies, workdir))
            progress.clear()
            rates[value] = round(best)
            if not as_json:
                click.echo(f"{value:>10}{best:>12.0f}")
    if as_json:
        click.echo(json.dumps(rates))


if __name__ == "__main__":
    main()
