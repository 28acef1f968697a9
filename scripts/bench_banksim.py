#!/usr/bin/env python3
"""Benchmark: the bank simulator's `receive` on one signed pain.001 of 20,000 transactions.

Usage: .venv/bin/python scripts/bench_banksim.py [--txs 20000] [--repeat 3]

The file is the gateway's own: orders of the end-to-end benchmark's mix
(`gateway.bench.orders.generate`: Vietnamese names, domestic accounts, 0.2% to accounts the bank
refuses as closed) written by `write_pain001`, XSD-checked and signed enveloped from its text
(`sign_enveloped_text`), as the batcher does. The bank is a `BankSimulator` as `gateway bank-sim`
wires it (enveloped signatures, the treasury's certificate trusted, its record in a fresh SQLite
file per run) with a fixed clock, so that with the keys kept in var/bench/banksim-keys the
replies are the same bytes from run to run and from commit to commit: their SHA-256 is printed
to compare two versions.

Each stage's wall time (inclusive: "camt.054" holds its build, validate and sign) is measured by
wrapping the functions `receive` calls; "rest" is what `receive` spent outside them (deciding each
transfer, the reply models, the references). "cpu" is the process's CPU time over the whole
`receive`. The run with the median total is shown, with the best total beside it. Figures only:
this script asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.banksim import bank as bank_module  # noqa: E402
from gateway.banksim.bank import AccountBook, BankSimulator, Reply  # noqa: E402
from gateway.banksim.record import BankRecord  # noqa: E402
from gateway.bench.orders import generate  # noqa: E402
from gateway.domain.orders import PaymentOrder, order_from_payload  # noqa: E402
from gateway.iso20022 import xsd  # noqa: E402
from gateway.iso20022.model import OutboundBatch, PaymentGroup  # noqa: E402
from gateway.iso20022.pain001 import write_pain001  # noqa: E402
from gateway.profile.signature import SignaturePolicy  # noqa: E402
from gateway.signing import KeyPair, ensure_keypair, trusted  # noqa: E402
from gateway.signing.xmldsig import sign_enveloped_text  # noqa: E402

KEYS = ROOT / "var" / "bench" / "banksim-keys"
CREATED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
RECEIVED = CREATED + timedelta(minutes=1)


def signed_file(count: int, treasury: KeyPair) -> tuple[bytes, frozenset[str]]:
    """One signed pain.001 of `count` orders (a PmtInf per batch or bill category)."""
    bench = generate(count, date(2026, 11, 20))
    groups: dict[str, list[PaymentOrder]] = {}
    for payload in bench.orders:
        order = order_from_payload(payload)
        groups.setdefault(order.batch_ref or order.category.value, []).append(order)
    batch = OutboundBatch(
        msg_id="BENCH-BANKSIM-0001",
        created_at=CREATED,
        initiating_party="Kho bạc Nhà nước Phú Lương",
        groups=tuple(
            PaymentGroup(
                pmt_inf_id=f"PMT-{index:04d}",
                debtor=orders[0].debtor,
                execution_date=orders[0].requested_execution_date,
                category=orders[0].category,
                orders=tuple(orders),
            )
            for index, orders in enumerate(groups.values())
        ),
    )
    written = write_pain001(batch)
    signed = sign_enveloped_text(
        written.canonical, treasury, check=lambda: xsd.validate(written.parse())
    )
    return signed, bench.closed


class Stages:
    """Inclusive wall time per call path (e.g. "camt.054/sign"), over one `receive`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.order: list[str] = []
        self._stack: list[str] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Time every call of `owner.name` under `label`, nested in the call that made it."""
        function: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            path = "/".join([*self._stack, label])
            if path not in self.seconds:
                self.order.append(path)
            self._stack.append(label)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[path] += time.perf_counter() - start
                self._stack.pop()

        setattr(owner, name, timed)


def instrument(bank: BankSimulator, stages: Stages) -> None:
    """Wrap what `receive` calls; the module-level names are those `bank.py` looks up."""
    stages.wrap(bank_module, "verify_for_partner", "verify signature (parse, limits, digest)")
    stages.wrap(xsd, "validate", "xsd validate")
    stages.wrap(bank_module, "read_pain001", "read pain.001")
    stages.wrap(bank, "_status_report", "pain.002")
    stages.wrap(bank, "_debit_notification", "camt.054")
    stages.wrap(bank_module, "pain002_statuses_document", "build")
    stages.wrap(bank_module, "camt054_debits_document", "build")
    stages.wrap(bank_module, "file_bytes", "sign")
    stages.wrap(bank.record, "seen", "record: seen")
    stages.wrap(bank.record, "book", "record: book")
    stages.wrap(bank.record, "record", "record: payments, book and replies")


def run_once(
    raw: bytes, closed: frozenset[str], bank_key: KeyPair, treasury: KeyPair, folder: Path, n: int
) -> tuple[float, float, Stages, list[Reply]]:
    """One `receive` on a fresh bank; (wall seconds, CPU seconds, stages, replies)."""
    stages = Stages()
    bank = BankSimulator(
        bic="VBAAVNVX",
        account="7411058271001",
        keypair=bank_key,
        trusted=[trusted(treasury.cert_pem)],
        record=BankRecord(folder / f"bank-{n}.db"),
        book=AccountBook(closed=closed),
        policy=SignaturePolicy(mode="enveloped"),
        clock=lambda: RECEIVED,
    )
    originals = {name: getattr(bank_module, name) for name in _WRAPPED}
    original_validate = xsd.validate
    instrument(bank, stages)
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        replies = bank.receive(raw)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        # What SQLite left in its write-ahead log is copied into the file later, in another
        # file's time: done here, and shown apart.
        checkpoint = time.perf_counter()
        bank.record._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stages.seconds["checkpoint"] = time.perf_counter() - checkpoint
    finally:
        for name, function in originals.items():
            setattr(bank_module, name, function)
        xsd.validate = original_validate
        bank.record.close()
    return wall, cpu, stages, replies


_WRAPPED = (
    "verify_for_partner",
    "read_pain001",
    "pain002_statuses_document",
    "camt054_debits_document",
    "file_bytes",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    treasury = ensure_keypair(KEYS, "treasury", "bench treasury")
    bank_key = ensure_keypair(KEYS, "bank", "bench bank")
    raw, closed = signed_file(args.txs, treasury)
    print(
        f"pain.001: {args.txs:,} transactions, {len(raw):,} bytes, {len(closed)} to closed accounts"
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-banksim-") as folder:
        # A first receive compiles the schemas and warms the caches; it is not counted.
        run_once(raw, closed, bank_key, treasury, Path(folder), 0)
        for n in range(1, args.repeat + 1):
            runs.append(run_once(raw, closed, bank_key, treasury, Path(folder), n))
    totals = [wall for wall, _, _, _ in runs]
    median = statistics.median(totals)
    wall, cpu, stages, replies = min(runs, key=lambda run: abs(run[0] - median))
    per_tx = 1e6 / args.txs
    print(f"receive, median of {len(runs)}: {wall:.3f} s wall, {cpu:.3f} s cpu,")
    print(
        f"  {wall * per_tx:.1f} µs/tx wall, {cpu * per_tx:.1f} µs/tx cpu; best {min(totals):.3f} s"
    )
    print(f"  {'stage':<52} {'s':>7} {'µs/tx':>8}")
    top = 0.0
    for path in stages.order:
        seconds = stages.seconds[path]
        depth = path.count("/")
        if depth == 0:
            top += seconds
        label = "  " * depth + path.rsplit("/", 1)[-1]
        print(f"  {label:<52} {seconds:7.3f} {seconds * per_tx:8.1f}")
    rest = wall - top
    print(f"  {'rest (decisions, reply models, references)':<52} {rest:7.3f} {rest * per_tx:8.1f}")
    after = stages.seconds["checkpoint"]
    print(f"after receive: {'SQLite WAL checkpoint':<38} {after:7.3f} {after * per_tx:8.1f}")
    for reply_id, kind, body in replies:
        digest = hashlib.sha256(body).hexdigest()[:16]
        print(f"reply {kind} {reply_id}: {len(body):,} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
