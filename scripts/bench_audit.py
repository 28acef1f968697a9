#!/usr/bin/env python3
"""Benchmark: the audit trail and the console's login hash, as figures (nothing is asserted).

Usage: .venv/bin/python scripts/bench_audit.py [--rows 10000] [--postgres URL]

Appends --rows audit rows (one unit of work each, as admin actions come), then times
`gateway audit verify`'s check (read back and recompute every hash) on SQLite in a temporary
folder and, with --postgres, on a fresh schema of that database; and times one Argon2id hash
with the console's parameters (what a login costs the server).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gateway.adapters.persistence import open_storage
from gateway.adapters.web.passwords import Argon2Hasher
from gateway.service.audit import check
from gateway.service.clock import utcnow
from gateway.service.ports import AuditEntry, Storage


def measure(storage: Storage, rows: int, label: str) -> None:
    started = time.perf_counter()
    for n in range(rows):
        entry = AuditEntry("lan", "console", "dlq.replay", f"msg-{n}", {"queue": "outbox"})
        with storage.unit_of_work() as uow:
            uow.audit.append(entry, utcnow())
    appended = time.perf_counter() - started
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        count, broken = check(storage.queries)
        runs.append(time.perf_counter() - started)
        assert broken is None and count == rows
    print(
        f"{label:<11} {rows} appends in {appended:.2f} s ({rows / appended:,.0f}/s);"
        f" verify of {rows} rows: median {statistics.median(runs) * 1000:.0f} ms"
        f" (runs {', '.join(f'{r * 1000:.0f}' for r in runs)} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL to measure on too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        storage = open_storage("", Path(folder) / "gateway.db")
        try:
            measure(storage, args.rows, "sqlite")
        finally:
            storage.close()
    if args.postgres:
        from gateway.adapters.persistence.postgres import fresh_schema

        storage = open_storage(fresh_schema(args.postgres, "bench_audit"), Path("unused"))
        try:
            measure(storage, args.rows, "postgresql")
        finally:
            storage.close()
    hasher = Argon2Hasher()
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        hasher.hash("a console password of some length")
        runs.append(time.perf_counter() - started)
    print(
        f"argon2id    one hash (64 MiB, 3 passes): median {statistics.median(runs) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
