"""The relay micro-benchmark behind scripts/bench_relay: confirmed postings per second of the
outbox relay alone.

N ledger postings (as settlements write them) are put in a fresh outbox, SQLite or this
checkout's PostgreSQL; then the relay drains them to `treasury.ledger` on the broker, each row
marked sent only once the broker confirmed its message, and the clock stops when the outbox is
empty. The relay runs as `gateway run` wires it (pipelined confirms, RELAY_BATCH messages
claimed at once, RELAY_WINDOW awaiting their confirm, on PostgreSQL up to RELAY_BATCHES batches
a drain, each taken and marked while the broker confirms the next); with `--compare` the same
is done for a smaller count with the publisher that waits for each confirm, as the relay did
before. The CPU seconds the relay, RabbitMQ and PostgreSQL spent while draining are printed
beside each rate: on two cores the three share them.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.adapters import topology
from gateway.adapters.confirms import PipelinedPublisher
from gateway.adapters.persistence import open_storage
from gateway.adapters.persistence.postgres import fresh_schema
from gateway.adapters.rabbitmq import Publisher, connect
from gateway.bench.cpu import (
    CpuMeter,
    machine_seconds,
    machine_ticks,
    render_machine,
    server_groups,
)
from gateway.bench.e2e import checkout_commit, machine_load
from gateway.bootstrap import RELAY_BATCH, RELAY_BATCHES, RELAY_WINDOW, declare_topology
from gateway.config import load_settings
from gateway.domain.postings import LedgerPosting, PostingKind
from gateway.service.postings import posting_message
from gateway.service.relay import RelayService
from gateway.soak.processes import ROOT, Postgres


@dataclass
class RelayRun:
    """One drain of the whole outbox."""

    publisher: str
    postings: int
    seconds: float
    confirmed: int
    # CPU seconds spent while draining: the relay (this process), RabbitMQ, PostgreSQL.
    cpu_s: dict[str, float] = field(default_factory=dict)
    # The machine's CPU time in the same span by kind (busy, idle, iowait, steal).
    machine_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Confirmed postings per second."""
        return self.confirmed / self.seconds if self.seconds else 0.0


@dataclass
class RelayResult:
    """The runs, and where they ran."""

    database: str
    runs: list[RelayRun] = field(default_factory=list)
    load: str = ""
    commit: str = ""

    def render(self) -> str:
        """The table scripts/bench_relay prints."""
        lines = [
            "bench_relay: the outbox relay alone, postings to treasury.ledger",
            f"  commit {self.commit or '?'}; load before the run: {self.load or '?'}",
            f"  database {self.database}; relay batch {RELAY_BATCH}, window {RELAY_WINDOW},"
            f" on PostgreSQL up to {RELAY_BATCHES} batches a drain",
        ]
        for run in self.runs:
            lines.append(
                f"  {run.publisher:<34} {run.confirmed:>7} of {run.postings:>7} confirmed"
                f" in {run.seconds:6.2f} s: {run.rate:>9,.0f} postings/s"
            )
            if run.cpu_s:
                spent = ", ".join(f"{name} {sec:.2f}" for name, sec in run.cpu_s.items())
                offered = (os.cpu_count() or 1) * run.seconds
                lines.append(
                    f"  {'':<34} CPU seconds: {spent}; total {sum(run.cpu_s.values()):.2f}"
                    f" of {os.cpu_count()} CPUs x {run.seconds:.2f} s = {offered:.2f}"
                )
            if run.machine_s:
                lines.append(f"  {'':<34} {render_machine(run.machine_s)}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """Everything, for --json."""
        return {
            "database": self.database,
            "load": self.load,
            "commit": self.commit,
            "relay_batch": RELAY_BATCH,
            "relay_window": RELAY_WINDOW,
            "runs": [{**run.__dict__, "postings_per_s": round(run.rate, 1)} for run in self.runs],
        }


def _postings(count: int, start: int) -> list[Any]:
    now = datetime.now(UTC)
    return [
        posting_message(
            LedgerPosting(
                kind=PostingKind.PAYMENT_SETTLED,
                subject=f"RB{n:08d}",
                order_id=f"RB{n:08d}",
                end_to_end_id=f"RB{n:08d}",
                msg_id="KBNN-20261201-AGRIBANK-0000001",
                status="BOOK",
                reason_code=None,
                reason_text=None,
                amount=Decimal(606000),
                currency="VND",
                value_date=date(2026, 12, 1),
                bank_ref=f"VBA{n:020d}",
                occurred_at=now,
                budget={"chapter": "624", "economic_code": "7151", "treasury_code": "2714"},
            )
        )
        for n in range(start, start + count)
    ]


def run_relay_bench(
    postings: int, database: str, compare: int, workdir: Path | None = None
) -> RelayResult:
    """Fill and drain the outbox once per publisher; the figures."""
    settings = load_settings(ROOT)
    result = RelayResult(database=database, load=machine_load(), commit=checkout_commit())
    declare_topology(settings)
    folder = Path(tempfile.mkdtemp(prefix="bench-relay-", dir=workdir))
    db_url = ""
    if database == "postgres":
        db_url = fresh_schema(Postgres(dict(os.environ)).start(), "gateway_bench")
    storage = open_storage(db_url, folder / "gateway.db")
    plan = [("pipelined confirms (gateway run)", postings)]
    if compare:
        plan.append(("one confirm awaited at a time", compare))
    start = 0
    try:
        for name, count in plan:
            _purge_ledger(settings.amqp_url)
            now = datetime.now(UTC)
            messages = _postings(count, start)
            start += count
            for offset in range(0, count, 5000):
                with storage.unit_of_work() as uow:
                    for message in messages[offset : offset + 5000]:
                        uow.outbox.enqueue(message, now)
            pipelined = name.startswith("pipelined")
            publisher: Any = (
                PipelinedPublisher(settings.amqp_url, window=RELAY_WINDOW)
                if pipelined
                else Publisher(settings.amqp_url)
            )
            relay = (
                RelayService(storage, publisher, batch=RELAY_BATCH, batches=RELAY_BATCHES)
                if pipelined
                else RelayService(storage, publisher, batch=500)
            )
            confirmed = 0
            meter = _cpu_meter(database)
            try:
                publisher.keepalive()
                meter.start()
                machine = machine_ticks()
                began = time.perf_counter()
                while (done := relay.drain()) > 0:
                    confirmed += done
                seconds = time.perf_counter() - began
                cpu = meter.read()
                spent = machine_seconds(machine, machine_ticks())
            finally:
                publisher.close()
            result.runs.append(RelayRun(name, count, seconds, confirmed, cpu, spent))
        _purge_ledger(settings.amqp_url)
    finally:
        storage.close()
    return result


def _cpu_meter(database: str) -> CpuMeter:
    """The CPU of the relay (this process), the broker and PostgreSQL: on two cores the three
    share them, and their total bounds the rate as much as any one of them."""
    return CpuMeter(server_groups(database, ROOT), own="relay")


def _purge_ledger(url: str) -> None:
    conn = connect(url)
    try:
        conn.channel().queue_purge(topology.LEDGER_QUEUE)
    finally:
        conn.close()
