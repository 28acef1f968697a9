"""The end-to-end benchmark behind scripts/bench_e2e: N orders through real gateways, the bank
simulator and the broker, timed from the gateways' start to the last final posting.

The orders are published on `treasury.orders` before anything starts. Then, at the clock's zero,
`gateway run` (one, or several instances on PostgreSQL) and `gateway bank-sim` start as their
own processes, and this process consumes `treasury.ledger` as the ledger would. It stops when
every order's final posting (settled or rejected) has arrived and reports:

- orders/s from the start to the last final posting;
- when each stage finished for the whole run, read from the gateway's own records afterwards:
  intake (the last order stored), batching+build+sign (the last file built), to bank (the last
  file confirmed by the broker), reports applied (the last order in its final state), postings
  confirmed (the last posting confirmed by the broker) and postings received (by the ledger);
- the gateways' peak RSS (the kernel's high-water mark of each process);
- the checks: one final posting per order, none for an unknown order, no order with two.

With `--urgent K`, K urgent orders (`priority: urgent`) are published one by one while the bulk
run is in flight, and the latency from each publish to its file arriving at the bank (the
bank's inbox, seen through a tap queue bound beside it) is given as p50/p95/p99.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pika
import structlog

from gateway.adapters import topology
from gateway.adapters.persistence import open_storage, timings
from gateway.adapters.persistence.pg_statements import Statement, StatementStats
from gateway.adapters.persistence.postgres import fresh_schema
from gateway.adapters.rabbitmq import connect
from gateway.banksim.wiring import bank_keypair
from gateway.bench.cpu import (
    CpuMeter,
    child_pids,
    machine_seconds,
    machine_ticks,
    render_machine,
    server_groups,
)
from gateway.bench.ledger_reader import read_ledger
from gateway.bench.orders import BenchOrders, generate, urgent_order
from gateway.bench.statements import render as render_statements
from gateway.bootstrap import declare_topology, our_keypair
from gateway.config import Settings, load_settings
from gateway.contracts import check_posting
from gateway.demo.month import PARTNER
from gateway.errors import GatewayError
from gateway.runtime import Runtime
from gateway.service.channels import order_routing_key
from gateway.service.ports import INSTANCE_ROLES as ROLES
from gateway.service.ports import Storage
from gateway.soak.processes import ROOT, Child, Postgres

log = structlog.get_logger("gateway.bench")

DEFAULT_WORKDIR = ROOT / "var" / "bench"
_FINAL_KINDS = ("payment_settled", "payment_rejected")
# Seconds between two looks at the gateways' peak RSS while the run goes on.
MEMORY_WATCH_SECONDS = 1.0


def _roles(name: str, reports: int) -> list[tuple[str, list[str]]]:
    """The processes of one instance split by role: (name, `gateway` arguments)."""
    main, report = ROLES
    runs = [(f"{name}-{main}", ["run", "--role", main])]
    for n in range(1, reports + 1):
        runs.append((f"{name}-{report}" + (f"-{n}" if n > 1 else ""), ["run", "--role", report]))
    return runs


def _split(reports: int) -> str:
    if reports == 1:
        return " (each its main and reports roles in two processes)"
    return f" (each its main role in a process, its reports role in {reports})"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What one run does."""

    orders: int = 100_000
    database: str = "sqlite"
    instances: int = 1
    # Each instance's roles (main, reports) in processes of their own.
    split: bool = False
    # With split: each instance's processes for the reports role.
    reports: int = 1
    # Without split: `gateway run --reports-processes` (None: the gateway's setting, auto).
    reports_processes: str | None = None
    # Urgent orders published one by one during the bulk run (0: none).
    urgent: int = 0
    # Seconds between two urgent orders.
    urgent_gap: float = 0.1
    seed: int = 13
    # Seconds to wait for the last posting before giving up (the figures say how far it got).
    timeout: float = 900.0
    workdir: Path = DEFAULT_WORKDIR


@dataclass
class BenchResult:
    """What the run measured."""

    config: BenchConfig
    orders: int = 0
    mix: dict[str, int] = field(default_factory=dict)
    publish_s: float = 0.0
    elapsed_s: float = 0.0
    complete: bool = False
    stages: dict[str, float | None] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    # Each instance's processes together, the most at one look: their resident memories
    # summed (a shared library's pages counted in each), and their proportional shares (PSS:
    # a page shared by n processes counted 1/n in each).
    together_rss_mb: dict[str, float] = field(default_factory=dict)
    together_pss_mb: dict[str, float] = field(default_factory=dict)
    files: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    postings: dict[str, int] = field(default_factory=dict)
    urgent_ms: dict[str, float] = field(default_factory=dict)
    urgent_files_shared: int = 0
    # CPU seconds each process (group) spent from the start to the last final posting.
    cpu_s: dict[str, float] = field(default_factory=dict)
    # The machine's CPU time in the same span by kind (busy, idle, iowait, steal): a run that
    # loses CPU to the hypervisor (steal) is slower with the same work.
    machine_s: dict[str, float] = field(default_factory=dict)
    load: str = ""
    commit: str = ""
    # The reports processes each `gateway run` started (without --split).
    started_reports: int = 0
    # With PostgreSQL: the statements that took the most time, or why none were measured.
    statements: list[Statement] = field(default_factory=list)
    statements_note: str = ""

    @property
    def rate(self) -> float:
        """Orders per second from the start to the last final posting."""
        return self.orders / self.elapsed_s if self.elapsed_s else 0.0

    def as_json(self) -> dict[str, Any]:
        """Everything, for --json."""
        data = asdict(self)
        data["config"]["workdir"] = str(self.config.workdir)
        data["orders_per_s"] = round(self.rate, 1)
        return data

    def render(self) -> str:
        """The table scripts/bench_e2e prints."""
        c = self.config
        lines = [
            "bench_e2e: orders from treasury.orders to final ledger postings",
            f"  commit {self.commit or '?'}; load before the run: {self.load or '?'}",
            f"  orders {self.orders} in {self.files} files ({_mix(self.mix)}),"
            f" database {c.database}, gateway instances {c.instances}"
            + (_split(c.reports) if c.split else _started(self.started_reports)),
            f"  orders published before the start in {self.publish_s:.1f} s (not counted)",
            f"  {'COMPLETE' if self.complete else 'INCOMPLETE'}: {self.rate:,.0f} orders/s"
            f" ({self.elapsed_s:.1f} s from the gateways' start to the last final posting)",
            "  stages: when each finished for the whole run (s after the start), and the time"
            " it added after the stage before",
        ]
        previous = 0.0
        for name, at in self.stages.items():
            if at is None:
                lines.append(f"    {name:<34}{'-':>9}")
                continue
            lines.append(f"    {name:<34}{at:>8.1f}s  (+{max(0.0, at - previous):.1f}s)")
            previous = max(previous, at)
        rss = ", ".join(f"{name} {mb:.0f} MB" for name, mb in self.peak_rss_mb.items())
        lines.append(f"  peak RSS: {rss}")
        if c.split or self.started_reports:  # an instance of more than one process
            together = ", ".join(
                f"{name} RSS {mb:.0f} MB, PSS {self.together_pss_mb.get(name, 0.0):.0f} MB"
                for name, mb in self.together_rss_mb.items()
            )
            lines.append(
                f"  each instance's processes together (at most, looked at once a second):"
                f" {together}"
            )
        if self.cpu_s:
            spent = ", ".join(f"{name} {sec:.1f}" for name, sec in self.cpu_s.items())
            cores = os.cpu_count() or 1
            lines.append(
                f"  CPU seconds in the run: {spent}; total {sum(self.cpu_s.values()):.1f}"
                f" of {cores} CPUs x {self.elapsed_s:.1f} s = {cores * self.elapsed_s:.1f}"
            )
        if self.machine_s:
            lines.append("  " + render_machine(self.machine_s))
        lines += render_statements(self.statements, self.statements_note)
        lines.append("  postings received by the ledger: " + _mix(self.postings))
        if self.urgent_ms:
            u = self.urgent_ms
            lines.append(
                f"  urgent orders {c.urgent}: publish -> file at the bank p50 {u['p50']:.0f} ms,"
                f" p95 {u['p95']:.0f} ms, p99 {u['p99']:.0f} ms, max {u['max']:.0f} ms"
                f" (arrived {int(u['arrived'])}; files carrying more than one order:"
                f" {self.urgent_files_shared})"
            )
            steps = [k.removesuffix(" p50") for k in u if k.endswith(" p50")]
            lines.append(
                "    by step (p50/p99 ms): "
                + ", ".join(f"{k} {u[k + ' p50']:.0f}/{u[k + ' p99']:.0f}" for k in steps)
            )
        lines.append("  checks (all must be 0)")
        lines += [f"    {name:<44}{n:>8}" for name, n in self.checks.items()]
        clean = self.complete and not any(self.checks.values())
        lines.append(f"  {'PASS' if clean else 'FAIL'}")
        return "\n".join(lines)


def _started(reports: int) -> str:
    if not reports:
        return " (each `gateway run` in one process)"
    more = f"{reports} more process" + ("es" if reports > 1 else "")
    return f" (each `gateway run` its main role in its process, its reports role in {more})"


def _mix(values: dict[str, int]) -> str:
    if len(values) <= 8:
        return ", ".join(f"{k} {v}" for k, v in values.items())
    kinds: dict[str, list[int]] = {}
    for key, size in values.items():
        kind = {"BTXH": "benefit run", "NCC-": "supplier batches", "LOT-": "large batches"}.get(
            key[:4], "bills by category"
        )
        kinds.setdefault(kind, []).append(size)
    parts = []
    for kind, sizes in kinds.items():
        if kind == "large batches":
            by_size = Counter(sizes)
            shown = ", ".join(f"{n}x{size}" for size, n in sorted(by_size.items(), reverse=True))
            parts.append(f"{kind} {shown}")
        else:
            parts.append(f"{kind} {sum(sizes)} in {len(sizes)}")
    return "; ".join(parts)


class _Ledger:
    """Counts postings as a ledger would take them: by posting id, final ones per order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ids: set[str] = set()
        self.redelivered = 0
        self.final_by_order: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.refused = 0
        self._seen = 0
        self.last_at = 0.0

    def handle(self, bodies: list[bytes]) -> None:
        """A chunk of postings (acked by the reader after this returns)."""
        with self._lock:
            for body in bodies:
                self._take(body)
            self.last_at = time.time()

    def _take(self, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)  # the stand-in's share of the cores kept small
            self._seen += 1
            if self._seen % 97 == 1:  # a sample checked against the contract, cheaply
                check_posting(body)
        except (ValueError, GatewayError):
            self.refused += 1
            return
        posting_id = body["posting_id"]
        if posting_id in self.ids:
            self.redelivered += 1
            return
        self.ids.add(posting_id)
        self.kinds[body["kind"]] += 1
        if body["kind"] in _FINAL_KINDS and body.get("order_id"):
            self.final_by_order[body["order_id"]] += 1

    def finals(self) -> int:
        """Orders with at least one final posting."""
        with self._lock:
            return len(self.final_by_order)


class _Tap:
    """A queue bound beside the bank's inbox: when each file reached the bank, by MsgId."""

    def __init__(self, url: str) -> None:
        self.arrived: dict[str, float] = {}
        self._url = url
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Consume until stopped (a classic, exclusive queue: gone with the connection)."""
        conn = connect(self._url)
        try:
            channel = conn.channel()
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, topology.TO_BANK_EXCHANGE, routing_key=PARTNER)
            self.ready.set()
            for method, props, _body in channel.consume(
                queue, auto_ack=True, inactivity_timeout=0.05
            ):
                if method is not None:
                    msg_id = (props.headers or {}).get("msg_id") or props.message_id
                    self.arrived.setdefault(str(msg_id), time.time())
                if stop.is_set():
                    break
        finally:
            if conn.is_open:
                conn.close()


def _ledger_consumer(settings: Settings, ledger: _Ledger) -> Callable[[threading.Event], None]:
    """The ledger's consumer of `treasury.ledger.postings`, in chunks as a ledger would take
    them (read by `ledger_reader`: what the stand-in spends is taken from the gateway's cores)."""

    def consume_ledger(stop: threading.Event) -> None:
        read_ledger(
            settings.amqp_url, topology.LEDGER_QUEUE, ledger.handle, stop, prefetch=2000, chunk=1000
        )

    return consume_ledger


class E2EBench:
    """One run: a fresh home under workdir, the orders, the processes, the figures."""

    def __init__(self, config: BenchConfig, env: dict[str, str] | None = None) -> None:
        self.config = config
        self._env = dict(env if env is not None else os.environ)
        self.home = config.workdir / "home"
        self.result = BenchResult(config=config)
        self._storage: Storage | None = None
        self._children: list[Child] = []
        self._instance_of: dict[str, str] = {}

    def _prepare(self) -> Settings:
        shutil.rmtree(self.config.workdir, ignore_errors=True)
        self.home.mkdir(parents=True)
        shutil.copytree(ROOT / "conf", self.home / "conf")
        shutil.copytree(ROOT / "schemas", self.home / "schemas")
        db_url = ""
        if self.config.database == "postgres":
            db_url = fresh_schema(Postgres(self._env).start(), "gateway_bench")
        elif self.config.instances > 1:
            raise GatewayError("several gateway instances need --db postgres")
        db_path = str(self.config.workdir / "gateway.db")
        self._env = {
            **self._env,
            "GATEWAY_HOME": str(self.home),
            "GATEWAY_DB_PATH": db_path,
            "GATEWAY_DB_URL": db_url,
            "GATEWAY_METRICS_PORT": "0",
            "GATEWAY_LOG_LEVEL": "info",
            "GATEWAY_LOG_FORMAT": "json",
        }
        self._env.pop("GATEWAY_CRASH_AT", None)
        settings = load_settings(self.home)
        settings = replace(settings, db_path=db_path, db_url=db_url, metrics_port=0)
        self._storage = open_storage(db_url, settings.db_file)  # migrated before the clock
        our_keypair(settings)
        bank_keypair(settings, settings.partners[PARTNER])
        return settings

    def _purge(self, settings: Settings) -> None:
        conn = connect(settings.amqp_url)
        try:
            channel = conn.channel()
            for queue in topology.consumed_queues(settings.partners):
                for name in (queue, topology.parking_queue(queue), topology.retry_queue(queue)):
                    channel.queue_purge(name)
        finally:
            conn.close()

    def _publish_all(self, settings: Settings, orders: BenchOrders) -> None:
        """Publish every order with publisher confirms, many in flight, before the start."""
        from gateway.adapters.confirms import PipelinedPublisher  # noqa: PLC0415

        started = time.monotonic()
        publisher = PipelinedPublisher(settings.amqp_url, window=2000)
        try:
            for order in orders.orders:
                publisher.submit(
                    topology.ORDERS_EXCHANGE,
                    f"order.{order['category']}",
                    orders.body(order),
                    message_id=order["order_id"],
                )
            outcome = publisher.flush()
        finally:
            publisher.close()
        if outcome.failed:
            raise GatewayError(f"{len(outcome.failed)} orders were not confirmed by the broker")
        self.result.publish_s = time.monotonic() - started

    def run(self) -> BenchResult:
        """Run the benchmark; processes are stopped after, whatever happens."""
        config = self.config
        self.result.load = machine_load()
        self.result.commit = checkout_commit()
        settings = self._prepare()
        declare_topology(settings)
        self._purge(settings)
        today = datetime.now(UTC).date()
        orders = generate(config.orders, today, config.seed)
        self.result.orders = len(orders.orders)
        self.result.mix = orders.mix
        book = self.home / "book.json"
        book.write_text(json.dumps({"closed": sorted(orders.closed), "unknown": []}))
        self._publish_all(settings, orders)
        expected = len(orders.orders) + config.urgent
        logs = config.workdir / "logs"
        names = (
            ["gateway"]
            if config.instances == 1
            else [f"gateway-{n}" for n in range(1, config.instances + 1)]
        )
        # With --split each instance is a process for its main role and --reports processes
        # for its reports role.
        runs = (
            [run for name in names for run in _roles(name, config.reports)]
            if config.split
            else [(name, ["run", *self._run_options()]) for name in names]
        )
        gateways = [Child(name, args, self._env, logs / f"{name}.log") for name, args in runs]
        # Which instance each gateway process is (with --split, an instance is several).
        self._instance_of = (
            {run: name for name in names for run, _ in _roles(name, config.reports)}
            if config.split
            else {name: name for name in names}
        )
        bank = Child("bank-sim", ["bank-sim", "--book", str(book)], self._env, logs / "bank.log")
        self._children = [*gateways, bank]
        ledger = _Ledger()
        runtime = Runtime()
        urgent_sent: dict[str, float] = {}
        try:
            tap = self._tap(runtime, settings)
            runtime.add("ledger", _ledger_consumer(settings, ledger))
            stats = self._count_statements(settings)
            meter = self._cpu_meter(config, gateways, bank)
            meter.start()
            machine = machine_ticks()
            t0 = time.time()
            for child in self._children:
                child.start()
            if config.urgent:
                runtime.add(
                    "urgent",
                    lambda stop: self._send_urgent(settings, today, urgent_sent, ledger, stop),
                )
            self._wait(ledger, gateways, expected, t0, logs)
            self.result.cpu_s = meter.read()
            self.result.machine_s = machine_seconds(machine, machine_ticks())
            if stats is not None:
                self._read_statements(stats)
            self._judge(ledger, orders, urgent_sent)
            self._stages(t0, ledger)
            self._urgent_figures(urgent_sent, tap)
        finally:
            for child in self._children:
                child.stop()
            runtime.stop()
            if self._storage is not None:
                self._storage.close()
        return self.result

    def _tap(self, runtime: Runtime, settings: Settings) -> _Tap | None:
        """The tap on the bank's inbox, with --urgent only (only the urgent lane's figures use
        it; otherwise its reading would take from the cores the run is measured on)."""
        if not self.config.urgent:
            return None
        tap = _Tap(settings.amqp_url)
        runtime.add("tap", tap.run)
        tap.ready.wait(10)
        return tap

    def _read_statements(self, stats: StatementStats) -> None:
        try:
            self.result.statements = stats.top()
        except GatewayError as exc:
            self.result.statements_note = str(exc)

    def _count_statements(self, settings: Settings) -> StatementStats | None:
        """With PostgreSQL, its statements counted from now on (None: not counted, and why
        is in the result)."""
        if not settings.db_url:
            return None
        stats = StatementStats(settings.db_url)
        self.result.statements_note = stats.reset() or ""
        return None if self.result.statements_note else stats

    def _run_options(self) -> list[str]:
        count = self.config.reports_processes
        return [] if count is None else ["--reports-processes", count]

    @staticmethod
    def _cpu_meter(config: BenchConfig, gateways: list[Child], bank: Child) -> CpuMeter:
        def pid_of(child: Child) -> Callable[[], list[int]]:
            # A gateway and the reports processes it started.
            return lambda: [child.pid, *child_pids(child.pid)] if child.pid else []

        groups = {child.name: pid_of(child) for child in [*gateways, bank]}
        return CpuMeter({**groups, **server_groups(config.database, ROOT)})

    def _wait(
        self, ledger: _Ledger, gateways: list[Child], expected: int, t0: float, logs: Path
    ) -> None:
        """Until every order has its final posting (or the timeout), watching peak RSS."""
        peaks = {c.name: 0.0 for c in gateways}
        deadline = time.monotonic() + self.config.timeout
        watched = 0.0
        while ledger.finals() < expected and time.monotonic() < deadline:
            # The kernel keeps each process's high-water mark: a look a second misses nothing.
            if time.monotonic() - watched >= MEMORY_WATCH_SECONDS:
                self._watch_memory(gateways, peaks)
                watched = time.monotonic()
            if not all(c.alive() for c in self._children):
                dead = [c.name for c in self._children if not c.alive()]
                raise GatewayError(f"{', '.join(dead)} stopped; see {logs}")
            time.sleep(0.05)
        self.result.complete = ledger.finals() >= expected
        self.result.elapsed_s = (ledger.last_at or time.time()) - t0
        self._watch_memory(gateways, peaks)
        self.result.peak_rss_mb = peaks

    def _watch_memory(self, gateways: list[Child], peaks: dict[str, float]) -> None:
        """Each gateway's peak RSS so far, and its reports processes' (`name reports-N`); and
        the most the processes of each instance held together at one look."""
        rss: defaultdict[str, float] = defaultdict(float)
        pss: defaultdict[str, float] = defaultdict(float)
        for child in gateways:
            peaks[child.name] = max(peaks[child.name], _memory_mb(child.pid, _PEAK))
            started = sorted(child_pids(child.pid)) if child.pid else []
            self.result.started_reports = max(self.result.started_reports, len(started))
            for number, pid in enumerate(started, start=1):
                name = f"{child.name} reports-{number}"
                peaks[name] = max(peaks.get(name, 0.0), _memory_mb(pid, _PEAK))
            instance = self._instance_of.get(child.name, child.name)
            pids = [pid for pid in (child.pid, *started) if pid is not None]
            rss[instance] += sum(_memory_mb(pid, _NOW) for pid in pids)
            pss[instance] += sum(_memory_mb(pid, _SHARE, _ROLLUP) for pid in pids)
        result = self.result
        for instance in rss:
            result.together_rss_mb[instance] = max(
                result.together_rss_mb.get(instance, 0.0), rss[instance]
            )
            result.together_pss_mb[instance] = max(
                result.together_pss_mb.get(instance, 0.0), pss[instance]
            )

    def _send_urgent(
        self,
        settings: Settings,
        today: Any,
        sent: dict[str, float],
        ledger: _Ledger,
        stop: threading.Event,
    ) -> None:
        """Urgent orders one by one, once the bulk run is well under way."""
        while ledger.finals() < min(2000, self.config.orders // 10) and not stop.is_set():
            stop.wait(0.05)
        conn = connect(settings.amqp_url)
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            for index in range(1, self.config.urgent + 1):
                if stop.is_set():
                    return
                order = urgent_order(index, today, self.config.seed)
                props = pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=order["order_id"],
                    content_type="application/json",
                )
                sent[order["order_id"]] = time.time()
                channel.basic_publish(
                    topology.ORDERS_EXCHANGE,
                    order_routing_key(order),
                    BenchOrders.body(order),
                    props,
                    mandatory=True,
                )
                stop.wait(self.config.urgent_gap)
        finally:
            if conn.is_open:
                conn.close()

    def _judge(self, ledger: _Ledger, orders: BenchOrders, urgent: dict[str, float]) -> None:
        wanted = {o["order_id"] for o in orders.orders} | set(urgent)
        finals = ledger.final_by_order
        self.result.postings = dict(sorted(ledger.kinds.items()))
        self.result.postings["redelivered (dropped by posting id)"] = ledger.redelivered
        self.result.checks = {
            "orders without a final posting": sum(1 for o in wanted if o not in finals),
            "orders with two final postings": sum(1 for n in finals.values() if n > 1),
            "final postings for unknown orders": sum(1 for o in finals if o not in wanted),
            "postings refused by the contract": ledger.refused,
        }

    def _stages(self, t0: float, ledger: _Ledger) -> None:
        storage: Any = self._storage
        ends = timings.stage_ends(storage)

        def since(key: str) -> float | None:
            moment = ends[key]
            return None if moment is None else moment.timestamp() - t0

        self.result.files = timings.file_count(storage)
        self.result.stages = {
            "intake (last order stored)": since("intake"),
            "batching+build+sign (last file)": since("built"),
            "to bank (last file confirmed)": since("sent"),
            "reports applied (last final state)": since("final"),
            "postings confirmed (last)": since("postings"),
            "postings received by the ledger": ledger.last_at - t0 if ledger.last_at else None,
        }

    def _urgent_figures(self, sent: dict[str, float], tap: _Tap | None) -> None:
        if not sent or tap is None:
            return
        traced = timings.trace(cast(Any, self._storage), "URG")
        per_file = Counter(msg_id for msg_id, _ in traced.values())
        self.result.urgent_files_shared = sum(1 for n in per_file.values() if n > 1)
        # Publish -> stored -> file built -> file confirmed by the broker -> at the bank.
        steps: list[list[float]] = [[], [], [], [], []]
        for order_id, published in sent.items():
            if order_id not in traced:
                continue
            msg_id, times = traced[order_id]
            arrived = tap.arrived.get(msg_id)
            if arrived is None or None in times:
                continue
            marks = [published, *(t.timestamp() for t in times if t is not None), arrived]
            for index in range(4):
                steps[index].append((marks[index + 1] - marks[index]) * 1000)
            steps[4].append((arrived - published) * 1000)
        total = sorted(steps[4])
        if not total:
            return
        self.result.urgent_ms = {
            "p50": _percentile(total, 50),
            "p95": _percentile(total, 95),
            "p99": _percentile(total, 99),
            "max": total[-1],
            "arrived": float(len(total)),
        }
        names = ("publish->stored", "stored->built", "built->confirmed", "confirmed->bank")
        for name, values in zip(names, steps[:4], strict=True):
            ordered = sorted(values)
            self.result.urgent_ms[f"{name} p50"] = _percentile(ordered, 50)
            self.result.urgent_ms[f"{name} p99"] = _percentile(ordered, 99)


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, int(-(-len(sorted_values) * pct // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# A process's resident memory in /proc/<pid>/status: its high-water mark, and now.
_PEAK, _NOW = "VmHWM:", "VmRSS:"
# Its proportional share (in smaps_rollup: the kernel walks its pages, a few ms a look).
_SHARE, _ROLLUP = "Pss:", "smaps_rollup"


def _memory_mb(pid: int | None, which: str, source: str = "status") -> float:
    """A process's memory from /proc/<pid>/<source> (`_PEAK`: the kernel's high-water mark of
    its resident memory; `_NOW`: its resident memory; `_SHARE` in `_ROLLUP`), in MB (0 when
    gone)."""
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(which):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_load() -> str:
    try:
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, ValueError):
        return "?"
    return f"load average {one}, {five}, {fifteen} on {os.cpu_count()} CPUs"


def checkout_commit() -> str:
    head = ROOT / ".git"
    try:
        import subprocess  # noqa: PLC0415 - only for the header line

        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "?" if not head.exists() else "git unavailable"
    return out.stdout.strip() + (" (with local changes)" if dirty.stdout.strip() else "")
