#!/usr/bin/env python3
"""Benchmark: a bank's replies applied by the reports role, as the gateway applies them.

Usage: .venv/bin/python scripts/bench_apply.py [--txs 20000] [--repeat 3] [--db sqlite|postgres]

A fresh store (SQLite, or a new schema in the private PostgreSQL that `scripts/postgres` runs,
started if needed) holds one sent file of N orders (the partner agribank, as in the demo).
Then:
  pain.002  a report accepting every order (group and transaction status ACCP), applied in the
            steps `report_steps` makes (parts of 500 lines), each in `Storage.run_unit`, as
            `gateway run` applies it: acceptances move their orders together;
  camt.054  a notification booking a debit for every order (its own bank reference each),
            applied in the steps `notification_steps` makes: each order settled, its posting
            written to the outbox, its entry kept against a second application.
The file's reading, parsing and signature checks are not included (the end-to-end benchmark
has them). Printed: microseconds a line (or entry), wall and this process's CPU, for each of
`--repeat` runs, each on a new store; on PostgreSQL also the server's CPU (all its processes),
so that what is left of the wall time is the waiting between the two. Figures only: this script
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.adapters.persistence import open_storage  # noqa: E402
from gateway.adapters.persistence.postgres import fresh_schema  # noqa: E402
from gateway.bench.cpu import cpu_seconds, postgres_pids  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.iso20022.model import Entry, EntryDetail, Notification, StatusReport, TxStatus  # noqa: E402
from gateway.logs import configure  # noqa: E402
from gateway.service.notifications import Step, notification_steps  # noqa: E402
from gateway.service.ports import NewOrder, OutboundFile, Storage  # noqa: E402
from gateway.service.reports import report_steps  # noqa: E402
from gateway.soak.processes import Postgres  # noqa: E402

NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
FILE = "KBNN-BENCH-APPLY-000001"
AMOUNT = Decimal("540000")
PARTNER = "agribank"


def _sent_file(storage: Storage, ids: list[str]) -> None:
    """N orders stored, batched into one file and sent."""
    with storage.unit_of_work() as uow:
        for order_id in ids:
            payload = f'{{"order_id": "{order_id}", "budget": {{"chapter": "622"}}}}'
            new = NewOrder(
                order_id=order_id,
                content_hash=f"h-{order_id}",
                payload=payload,
                partner=PARTNER,
                group_key="g",
                category="social_benefit",
                amount=AMOUNT,
                currency="VND",
            )
            uow.orders.add(new, NOW)
        size = len(ids)
        uow.files.add(OutboundFile(FILE, PARTNER, "pain.001.001.09", size, AMOUNT * size, ""), NOW)
        uow.orders.mark_batched([(order_id, "P-1") for order_id in ids], FILE, NOW)
        uow.files.sent(FILE, NOW)


Timing = tuple[float, float, float]  # µs a line: wall, this process's CPU, the server's CPU


def _timed(storage: Storage, steps: Iterable[Step], count: int, server: list[int]) -> Timing:
    def server_cpu() -> float:
        return sum(cpu_seconds(pid) for pid in server)

    wall, cpu, served = time.perf_counter(), time.process_time(), server_cpu()
    for step in steps:
        storage.run_unit(step)
    return (
        (time.perf_counter() - wall) / count * 1e6,
        (time.process_time() - cpu) / count * 1e6,
        (server_cpu() - served) / count * 1e6,
    )


def run_once(txs: int, database: str) -> dict[str, Timing]:
    partner = load_settings(ROOT).partners[PARTNER]
    ids = [f"BENCH-{n:07d}" for n in range(txs)]
    with tempfile.TemporaryDirectory() as folder:
        db_url, server = "", []
        if database == "postgres":
            db_url = fresh_schema(Postgres(dict(os.environ)).start(), "gateway_bench_apply")
        storage = open_storage(db_url, Path(folder) / "gateway.db")
        try:
            _sent_file(storage, ids)
            if database == "postgres":  # the server and its backends, ours now among them
                server = postgres_pids(ROOT / "var" / "postgres" / "data")
            report = StatusReport(
                msg_id="R-1",
                created_at=NOW,
                original_msg_id=FILE,
                original_msg_name_id="pain.001.001.09",
                group_status="ACCP",
                transactions=tuple(TxStatus(order_id, "ACCP") for order_id in ids),
            )
            raw = b"<pain.002 R-1/>"
            accepted = _timed(storage, report_steps(partner, report, raw, NOW), txs, server)
            entries = tuple(
                Entry(
                    amount=AMOUNT,
                    currency="VND",
                    credit_debit="DBIT",
                    status="BOOK",
                    booking_date=NOW.date(),
                    value_date=NOW.date(),
                    account_servicer_ref=f"BR-{n:07d}",
                    details=(
                        EntryDetail(
                            amount=AMOUNT,
                            currency="VND",
                            end_to_end_id=order_id,
                            account_servicer_ref=f"BR-{n:07d}",
                        ),
                    ),
                )
                for n, order_id in enumerate(ids)
            )
            account = partner.accounts[0].rsplit(":", maxsplit=1)[-1]
            notice = Notification("N-1", NOW, account, entries)
            steps = notification_steps(partner, notice, b"<camt.054 N-1/>", NOW)
            settled = _timed(storage, steps, txs, server)
            states = storage.queries.orders_by_state()
            if states != {"settled": txs}:
                raise SystemExit(f"bench_apply: the orders ended {states}, not all settled")
        finally:
            storage.close()
    return {"pain.002": accepted, "camt.054": settled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    configure(level="warning", stream=sys.stderr)  # the reports' own log lines are not figures
    runs = [run_once(args.txs, args.db) for _ in range(args.repeat)]
    shown = "SQLite" if args.db == "sqlite" else "PostgreSQL"
    columns = "wall/CPU" if args.db == "sqlite" else "wall/CPU/PostgreSQL's CPU"
    print(f"bench_apply: {args.txs:,} orders, {shown}, {args.repeat} runs ({columns} µs a line)")
    for kind in ("pain.002", "camt.054"):
        figures = ", ".join(
            "/".join(f"{value:.1f}" for value in timing[: 2 if args.db == "sqlite" else 3])
            for timing in (run[kind] for run in runs)
        )
        print(f"  {kind} applied: {figures}")


if __name__ == "__main__":
    main()
