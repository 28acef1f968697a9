"""The soak: N orders through real gateways, bank simulator and broker while they are broken.

One gateway on SQLite (the default), or several instances sharing one PostgreSQL database
(`--db postgres --instances 3`). Faults, in a shuffled schedule: gateways killed (SIGKILL) at
random moments and at every named crash point (gateway.crashpoints), the broker restarted
gracefully and killed, the bank simulator misbehaving all along (duplicate, delayed,
out-of-order, dropped-then-resent replies) and down for a while; on SQLite the gateway's
database locked by another process and its disk full, on PostgreSQL the server restarted
gracefully and killed. At the end the checker compares what was published, what the gateways
hold, what the bank received and what the ledger was told.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from gateway import crashpoints
from gateway.adapters import topology
from gateway.adapters.persistence import open_storage
from gateway.adapters.persistence.postgres import fresh_schema
from gateway.adapters.rabbitmq import Publisher, connect, consume
from gateway.banksim.faults import read_fault_counts
from gateway.banksim.wiring import bank_keypair
from gateway.bootstrap import declare_topology, our_keypair
from gateway.config import Settings, load_settings
from gateway.demo.ledger_sink import LedgerSink
from gateway.demo.month import PARTNER
from gateway.errors import GatewayError, TransientError
from gateway.progress import Progress, quiet
from gateway.runtime import Runtime
from gateway.service.ports import Queries, Storage
from gateway.signing.keys import DEV_VALID_FROM
from gateway.soak.checker import Verdict, check
from gateway.soak.orders import SoakOrders, generate
from gateway.soak.processes import ROOT, Broker, Child, Cluster, Postgres

log = structlog.get_logger("gateway.soak")


# The bank simulator's misbehaviour in the default run (probabilities per reply; per file for
# reorder).
BANK_FAULTS = "duplicate=0.1,delay=0.15,reorder=0.3,drop=0.1"
ALL_POINTS = tuple(crashpoints.POINTS)
DEFAULT_WORKDIR = ROOT / "var" / "soak"


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """What a soak run does; the defaults are the run docs/reliability.md's figures come from."""

    orders: int = 10_000
    seed: int = 5
    # Orders per batch_ref, hence per file.
    batch_size: int = 200
    # Seconds over which the orders are published, while the faults happen.
    publish_seconds: float = 150.0
    # SIGKILLs of the gateway at random moments.
    random_kills: int = 12
    # Crash points the gateway is made to die at, each once.
    crash_points: tuple[str, ...] = ALL_POINTS
    broker_restarts: int = 2
    broker_kills: int = 2
    # Seconds the bank simulator is down (0: no outage).
    bank_outage_s: float = 15.0
    # Seconds another process holds the gateway's database locked (0: never).
    db_lock_s: float = 8.0
    # Seconds the gateway's disk is full (0: never; needs root to mount a small tmpfs).
    disk_full_s: float = 8.0
    bank_faults: str = BANK_FAULTS
    # Seconds to wait, after the last fault, for every order to reach a final state.
    settle_timeout: float = 300.0
    workdir: Path = DEFAULT_WORKDIR
    # "sqlite" (one gateway) or "postgres" (this checkout's private cluster, any instances).
    database: str = "sqlite"
    # Gateway processes running at once (more than one needs PostgreSQL).
    instances: int = 1
    # PostgreSQL restarts, graceful and by SIGKILL of the server (PostgreSQL runs only).
    postgres_restarts: int = 1
    postgres_kills: int = 1
    # Our signing key in a SoftHSM2 token made under workdir (PKCS#11), not in keys/.
    pkcs11: bool = False
    # Nodes of this checkout's RabbitMQ cluster (scripts/broker cluster) to run on; 0: the
    # single node. On a cluster the broker faults are node faults: SIGKILL of a random node
    # and its start, and a node paused (SIGSTOP) long enough to be cut off from the others.
    cluster: int = 0
    node_kills: int = 6
    node_pauses: int = 1
    # Seconds a paused node stays stopped: its peers (net_ticktime 10 s) and its clients
    # (heartbeat 10 s) have declared it gone by then.
    pause_s: float = 30.0


@dataclass
class SoakResult:
    """The verdict and what happened to get there."""

    verdict: Verdict
    events: Counter[str] = field(default_factory=Counter)
    bank_faults: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    config: SoakConfig | None = None

    def render(self) -> str:
        """The table docs/reliability.md shows."""
        lines = ["soak: exactly-once under faults"]
        if self.config is not None:
            key = "in a SoftHSM2 token (PKCS#11)" if self.config.pkcs11 else "in keys/"
            lines.append(f"  orders {self.config.orders}, seed {self.config.seed}, key {key}")
            lines.append(
                f"  database {self.config.database}, gateway instances {self.config.instances}"
            )
            if self.config.cluster:
                lines.append(f"  broker: a cluster of {self.config.cluster} RabbitMQ nodes")
        lines.append("  faults that happened")
        lines += [f"    {name:<44}{n:>8}" for name, n in sorted(self.events.items())]
        lines += [
            f"    bank replies: {name:<30}{n:>8}" for name, n in sorted(self.bank_faults.items())
        ]
        lines.append("  figures")
        lines += [f"    {name:<44}{n:>8}" for name, n in self.verdict.info.items()]
        lines.append("  checks (all must be 0)")
        lines += [f"    {name:<44}{n:>8}" for name, n in self.verdict.counts().items()]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  {'PASS' if self.verdict.clean else 'FAIL'} in {self.duration_s:.0f} s")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """What `render` shows, as one JSON object (`scripts/soak --json`)."""
        return {
            "pass": self.verdict.clean,
            "duration_s": round(self.duration_s, 1),
            "orders": self.config.orders if self.config else None,
            "database": self.config.database if self.config else None,
            "instances": self.config.instances if self.config else None,
            "faults": dict(sorted(self.events.items())),
            "bank_faults": dict(sorted(self.bank_faults.items())),
            "figures": dict(self.verdict.info),
            "checks": self.verdict.counts(),
            "notes": list(self.notes),
        }


class _OrderFeed:
    """Publishes the orders as the treasury core would, retrying while the broker is away."""

    def __init__(self, settings: Settings, soak: SoakOrders, seconds: float, seed: int) -> None:
        self._settings = settings
        self._soak = soak
        self._seconds = seconds
        self._rng = random.Random(seed)
        self.published: set[str] = set()
        self._lock = threading.Lock()
        self._publisher = Publisher(settings.amqp_url)
        self.done = threading.Event()
        self.hurry = threading.Event()
        self._nudges = 0

    def _publish(self, order: dict[str, Any]) -> None:
        body = self._soak.body(order)
        while True:
            try:
                self._publisher.publish(
                    topology.ORDERS_EXCHANGE,
                    f"order.{order['category']}",
                    body,
                    message_id=order["order_id"],
                )
                return
            except TransientError:
                time.sleep(0.5)

    def run(self, stop: threading.Event) -> None:
        orders = self._soak.orders
        conflicts = {c["order_id"]: c for c in self._soak.conflicts}
        step = max(1, len(orders) // max(1, int(self._seconds * 4)))
        started = time.monotonic()
        try:
            for index, order in enumerate(orders):
                if stop.is_set():
                    return
                self._publish(order)
                with self._lock:
                    self.published.add(order["order_id"])
                if self._rng.random() < 0.02:
                    self._publish(order)  # the core resends: intake must make it a no-op
                if order["order_id"] in conflicts:
                    self._publish(conflicts[order["order_id"]])  # must be refused
                if index % step == 0 and not self.hurry.is_set():
                    ahead = started + self._seconds * index / len(orders) - time.monotonic()
                    if ahead > 0:
                        stop.wait(ahead)
        finally:
            self.done.set()

    def nudge(self, count: int = 5) -> None:
        """A few more orders, so that a gateway armed with a crash point has work to die in."""
        extra = generate(count, seed=self._rng.randrange(10**6) * 1000 + 999, batch_size=count)
        for order in extra.orders:
            order["order_id"] = f"NUDGE-{self._nudges:05d}"
            self._nudges += 1
            self._publish(order)
            with self._lock:
                self.published.add(order["order_id"])

    def close(self) -> None:
        """Close the connection."""
        self._publisher.close()


class Soak:
    """One run: sets up a home under workdir, runs the faults, checks."""

    def __init__(
        self,
        config: SoakConfig,
        env: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        # How far the run is, on a terminal: the faults done, then the orders settling.
        self._progress = progress or quiet()
        self._env = dict(env if env is not None else os.environ)
        self._rng = random.Random(config.seed)
        self.result = SoakResult(verdict=Verdict(), config=config)
        self.home = config.workdir / "home"
        self._db_dir = config.workdir / "gatewaydb"
        self._mounted = False
        self._postgres = Postgres(self._env) if config.database == "postgres" else None
        self._cluster = Cluster(self._env, config.cluster) if config.cluster else None
        self._storage: Storage | None = None

    # --- setup ------------------------------------------------------------------------------

    def _prepare(self) -> Settings:
        self._unmount()
        shutil.rmtree(self.config.workdir, ignore_errors=True)
        self.home.mkdir(parents=True)
        shutil.copytree(ROOT / "conf", self.home / "conf")
        shutil.copytree(ROOT / "schemas", self.home / "schemas")
        self._db_dir.mkdir(parents=True)
        db_url = ""
        amqp_url = self._env.get("GATEWAY_AMQP_URL", "")
        if self._cluster is not None:
            amqp_url = self._cluster.start()
        if self._postgres is not None:
            db_url = fresh_schema(self._postgres.start(), "gateway_soak")
        elif self.config.disk_full_s > 0:
            self._mount()
        env = {
            **self._env,
            "GATEWAY_HOME": str(self.home),
            "GATEWAY_DB_PATH": str(self._db_dir / "gateway.db"),
            "GATEWAY_DB_URL": db_url,
            "GATEWAY_AMQP_URL": amqp_url,
            # A killed instance's claims are taken over by the others this soon.
            "GATEWAY_CLAIM_SECONDS": "10",
            "GATEWAY_BATCH_QUIET_SECONDS": "1.0",
            "GATEWAY_DEADLINE_CHECK_SECONDS": "5",
            "GATEWAY_LOG_LEVEL": "info",
            "GATEWAY_LOG_FORMAT": "json",
        }
        env.pop("GATEWAY_CRASH_AT", None)
        self._env = env
        settings = load_settings(self.home)
        settings = replace(settings, db_path=env["GATEWAY_DB_PATH"], db_url=db_url)
        if amqp_url:
            settings = replace(settings, amqp_url=amqp_url)
        self._storage = open_storage(db_url, settings.db_file)
        if self.config.pkcs11:
            settings = self._token(settings, env)
        our_keypair(settings)
        bank_keypair(settings, settings.partners[PARTNER])
        return settings

    def _token(self, settings: Settings, env: dict[str, str]) -> Settings:
        """A SoftHSM2 token under workdir holding our key (made in it, never extractable, with
        a development certificate valid from 2024); its variables go to the gateway's processes."""
        from gateway.adapters.pkcs11 import create_key, token_for  # noqa: PLC0415 - --pkcs11 only
        from gateway.adapters.softhsm import init_token, softhsm_conf  # noqa: PLC0415

        conf = softhsm_conf(self.config.workdir / "softhsm")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # before this process first loads the module
        token = init_token(conf, "kbnn-soak", "246810")
        env.update(token.environment)
        os.environ["GATEWAY_PKCS11_PIN"] = token.pin
        settings = replace(
            settings,
            key_source="pkcs11",
            pkcs11_module=token.module,
            pkcs11_token=token.label,
        )
        create_key(
            token_for(settings),
            settings.signing_key,
            curve=False,
            common_name=f"{settings.initiating_party} - gateway",
            valid_from=DEV_VALID_FROM,
            valid_until=datetime.now(UTC) + timedelta(days=730),
        )
        token_for(settings).close()
        return settings

    def _mount(self) -> None:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(self._db_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            self._mounted = True
            return
        self.result.notes.append(
            "disk full not simulated: mounting a small tmpfs for the database needs root"
            f" ({result.stderr.strip()[:80]})"
        )

    def _unmount(self) -> None:
        if self._mounted or os.path.ismount(self._db_dir):
            subprocess.run(["umount", str(self._db_dir)], capture_output=True, check=False)
            self._mounted = False

    def _purge(self, settings: Settings) -> None:
        """Empty this node's gateway queues: the soak counts only its own messages."""
        conn = connect(settings.amqp_url)
        try:
            channel = conn.channel()
            for queue in topology.consumed_queues(settings.partners):
                for name in (queue, topology.parking_queue(queue), topology.retry_queue(queue)):
                    channel.queue_purge(name)
        finally:
            conn.close()

    # --- faults -----------------------------------------------------------------------------

    def _schedule(self) -> list[tuple[str, str]]:
        config = self.config
        events: list[tuple[str, str]] = [("kill", "")] * config.random_kills
        events += [("crash", point) for point in config.crash_points]
        if self._cluster is not None:
            events += [("node_kill", "")] * config.node_kills
            events += [("node_pause", "")] * config.node_pauses
        else:
            events += [("broker_restart", "")] * config.broker_restarts
            events += [("broker_kill", "")] * config.broker_kills
        if config.bank_outage_s > 0:
            events.append(("bank_outage", ""))
        if self._postgres is not None:
            events += [("postgres_restart", "")] * config.postgres_restarts
            events += [("postgres_kill", "")] * config.postgres_kills
        else:
            if config.db_lock_s > 0:
                events.append(("db_lock", ""))
            if config.disk_full_s > 0 and self._mounted:
                events.append(("disk_full", ""))
        self._rng.shuffle(events)
        return events

    def _kill_gateway(self, gateway: Child) -> None:
        if gateway.kill():
            self.result.events["gateway SIGKILL at a random moment"] += 1
        gateway.start()

    def _crash_at(self, gateway: Child, feed: _OrderFeed, point: str) -> None:
        if gateway.kill():
            self.result.events["gateway SIGKILL to restart it armed"] += 1
        gateway.start({"GATEWAY_CRASH_AT": point})
        deadline = time.monotonic() + 30
        while gateway.wait_exit(2.0) is None and time.monotonic() < deadline:
            if feed.done.is_set():
                feed.nudge()
        if gateway.alive():
            gateway.kill()
            self.result.notes.append(f"crash point {point} not reached within 30 s")
        else:
            self.result.events[f"gateway died at {point}"] += 1
        gateway.start()

    def _lock_database(self, seconds: float) -> None:
        conn = sqlite3.connect(self._db_dir / "gateway.db", timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()
        self.result.events[f"database locked by another process ({seconds:.0f} s)"] += 1

    def _fill_disk(self, seconds: float) -> None:
        ballast = self._db_dir / "ballast"
        try:
            with ballast.open("wb") as out:
                chunk = b"\0" * (1 << 20)
                while True:
                    out.write(chunk)
                    out.flush()
        except OSError:
            pass
        time.sleep(seconds)
        ballast.unlink(missing_ok=True)
        self.result.events[f"gateway disk full ({seconds:.0f} s)"] += 1

    def _run_event(
        self,
        kind: str,
        arg: str,
        gateways: list[Child],
        bank: Child,
        broker: Broker | None,
        feed: _OrderFeed,
    ) -> None:
        config = self.config
        gateway = self._rng.choice(gateways)
        log.info("soak.fault", kind=kind, arg=arg, instance=gateway.name)
        postgres = self._postgres
        actions: dict[str, Callable[[], None]] = {
            "kill": lambda: self._kill_gateway(gateway),
            "crash": lambda: self._crash_at(gateway, feed, arg),
            "broker_restart": broker.restart if broker else lambda: None,
            "broker_kill": broker.kill_and_start if broker else lambda: None,
            "node_kill": self._kill_node,
            "node_pause": self._pause_node,
            "postgres_restart": postgres.restart if postgres else lambda: None,
            "postgres_kill": postgres.kill_and_start if postgres else lambda: None,
            "bank_outage": lambda: self._bank_outage(bank, config.bank_outage_s),
            "db_lock": lambda: self._lock_database(config.db_lock_s),
            "disk_full": lambda: self._fill_disk(config.disk_full_s),
        }
        actions[kind]()
        named = {
            "broker_restart": "broker restart (graceful)",
            "broker_kill": "broker SIGKILL and start",
            "postgres_restart": "PostgreSQL restart (graceful)",
            "postgres_kill": "PostgreSQL SIGKILL and start (crash recovery)",
        }
        if kind in named:
            self.result.events[named[kind]] += 1

    def _kill_node(self) -> None:
        assert self._cluster is not None
        node = self._rng.randint(1, self._cluster.nodes)
        down_for = self._rng.uniform(1.0, 8.0)
        log.info("soak.node_kill", node=node, down_for=down_for)
        self._cluster.kill_and_start(node, down_for)
        self.result.events["broker node SIGKILL and start"] += 1

    def _pause_node(self) -> None:
        assert self._cluster is not None
        node = self._rng.randint(1, self._cluster.nodes)
        seconds = self.config.pause_s
        log.info("soak.node_pause", node=node, seconds=seconds)
        if self._cluster.pause(node, seconds):
            self.result.events[f"broker node cut off (SIGSTOP {seconds:.0f} s)"] += 1
        else:
            self.result.events[f"broker node cut off (SIGSTOP {seconds:.0f} s), restarted"] += 1

    def _bank_outage(self, bank: Child, seconds: float) -> None:
        bank.kill()
        time.sleep(seconds)
        bank.start()
        self.result.events[f"bank unreachable ({seconds:.0f} s)"] += 1

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> SoakResult:
        """Run the soak and check it; processes are stopped and the tmpfs unmounted after."""
        started = time.monotonic()
        broker = self._check_services()
        settings = self._prepare()
        assert self._storage is not None
        queries = self._storage.queries
        declare_topology(settings)
        self._purge(settings)
        soak = generate(self.config.orders, self.config.seed, self.config.batch_size)
        book = self.home / "book.json"
        book.write_text(
            json.dumps({"closed": sorted(soak.closed), "unknown": sorted(soak.unknown)})
        )
        logs = self.config.workdir / "logs"
        bank_env = {**self._env, "GATEWAY_BANKSIM_FAULTS": f"{self.config.bank_faults},seed=7"}
        bank = Child("bank-sim", ["bank-sim", "--book", str(book)], bank_env, logs / "bank.log")
        names = (
            ["gateway"]
            if self.config.instances == 1
            else [f"gateway-{n}" for n in range(1, self.config.instances + 1)]
        )
        gateways = [Child(name, ["run"], self._env, logs / f"{name}.log") for name in names]
        sink = LedgerSink(self.config.workdir / "ledger.db")
        runtime = Runtime()
        feed = _OrderFeed(settings, soak, self.config.publish_seconds, self.config.seed)
        try:
            bank.start()
            for gateway in gateways:
                gateway.start()

            def ledger(stop: threading.Event) -> None:
                consume(
                    settings.amqp_url,
                    topology.LEDGER_QUEUE,
                    sink.handle,
                    stop,
                    prefetch=1000,
                    chunk=500,
                )

            runtime.add("ledger-sink", ledger)
            runtime.add("orders", feed.run)
            self._faults(gateways, bank, broker, feed)
            feed.hurry.set()
            feed.done.wait()
            self._settle(feed, sink, gateways, queries)
            for gateway in gateways:
                gateway.stop()
            bank.stop()
            runtime.stop()
            self._progress.done("checking")
            self._judge(feed, settings, queries)
        finally:
            for gateway in gateways:
                gateway.kill()
            bank.kill()
            runtime.stop()
            feed.close()
            sink.close()
            if self._storage is not None:
                self._storage.close()
            self._keep_database()
            self._unmount()
        self.result.duration_s = time.monotonic() - started
        return self.result

    def _faults(
        self, gateways: list[Child], bank: Child, broker: Broker | None, feed: _OrderFeed
    ) -> None:
        """Break things, one scheduled fault after another, while the orders are published."""
        schedule = self._schedule()
        for done, (kind, arg) in enumerate(schedule, start=1):
            _revive(gateways)
            time.sleep(self._rng.uniform(0.5, 4.0))
            self._progress.update(
                f"fault {done} of {len(schedule)} ({kind.replace('_', ' ')}),"
                f" orders published {len(feed.published):,} of {self.config.orders:,}",
                force=True,
            )
            self._run_event(kind, arg, gateways, bank, broker, feed)

    def _check_services(self) -> Broker | None:
        """Fail early on what this run may not break or cannot run: the broker (and PostgreSQL)
        must be this checkout's own; several instances need PostgreSQL. On a cluster, the
        single node is not used (None)."""
        if self.config.instances > 1 and self._postgres is None:
            raise GatewayError(
                "several gateway instances need PostgreSQL (SQLite takes one): add --db postgres"
            )
        broker = None
        if self._cluster is None:
            broker = Broker(self._env)
            broker.check_ours()
        if self._postgres is not None:
            self._postgres.check_ours()
        return broker

    def _judge(self, feed: _OrderFeed, settings: Settings, queries: Queries) -> None:
        """The checker's verdict and the figures beside it (on a cluster, the failovers of
        every connection: the gateways', the bank's and this harness's own)."""
        self.result.verdict = check(
            feed.published,
            queries,
            self.home / "var" / f"bank-{PARTNER}.db",
            self.config.workdir / "ledger.db",
        )
        self.result.bank_faults = _bank_faults(self.home / "var" / f"bank-{PARTNER}.db")
        info = self.result.verdict.info
        info["messages parked on the broker"] = _parked_on_broker(settings)
        info["outbox messages parked"] = len(queries.outbox_parked())
        if self._cluster is not None:
            logs = self.config.workdir / "logs"
            info["connections failed over to another node"] = sum(
                path.read_text(encoding="utf-8", errors="replace").count('"broker.failover"')
                for path in [*logs.glob("*.log"), self.config.workdir.parent / "soak.log.jsonl"]
                if path.is_file()
            )

    def _settle(
        self, feed: _OrderFeed, sink: LedgerSink, gateways: list[Child], queries: Queries
    ) -> None:
        """Wait until every published order is final and the ledger has its postings."""
        deadline = time.monotonic() + self.config.settle_timeout
        while time.monotonic() < deadline:
            _revive(gateways)
            try:
                states = queries.orders_by_state()
                refused = queries.invalid_count()
            except TransientError:
                time.sleep(1)
                continue
            open_orders = sum(n for s, n in states.items() if s not in _FINAL)
            final = states.get("settled", 0) + states.get("rejected", 0)
            self._progress.update(
                f"settling: orders final {final:,} of {len(feed.published):,} published,"
                f" postings {sink.count():,}"
            )
            # Payment postings and refusals are awaited apart: the refusals of conflicting
            # resends must not stand in for a payment posting still on its way.
            kinds = sink.by_kind()
            payments = sum(kinds.get(k, (0, 0))[0] for k in ("payment_settled", "payment_rejected"))
            refusals = kinds.get("order_invalid", (0, 0))[0]
            if (
                open_orders == 0
                and final >= len(feed.published)
                and payments >= final
                and refusals >= refused
            ):
                return
            time.sleep(1)
        self.result.notes.append(f"settle timeout after {self.config.settle_timeout:.0f} s")

    def _keep_database(self) -> None:
        """Copy the gateway's database off the tmpfs, for a look after the run."""
        source = self._db_dir / "gateway.db"
        if self._mounted and source.exists():
            target = self.config.workdir / "gateway.db"
            conn = sqlite3.connect(source)
            try:
                conn.execute("VACUUM INTO ?", (str(target),))
            except sqlite3.Error:
                pass
            finally:
                conn.close()


_FINAL = ("settled", "rejected", "returned")


def _revive(gateways: list[Child]) -> None:
    """Start again every gateway that is not running (killed, or died at a crash point)."""
    for gateway in gateways:
        if not gateway.alive():
            gateway.start()


def _parked_on_broker(settings: Settings) -> int:
    """Messages waiting in the parking queues (each would need an admin)."""
    conn = connect(settings.amqp_url)
    try:
        channel = conn.channel()
        return sum(
            channel.queue_declare(topology.parking_queue(q), passive=True).method.message_count
            for q in topology.consumed_queues(settings.partners)
        )
    finally:
        conn.close()


def _bank_faults(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return read_fault_counts(conn)
    finally:
        conn.close()


def run_soak(
    config: SoakConfig, env: dict[str, str] | None = None, progress: Progress | None = None
) -> SoakResult:
    """Run one soak; raises GatewayError when the broker is not this checkout's own node."""
    try:
        return Soak(config, env, progress).run()
    except OSError as exc:
        raise GatewayError(f"soak: {exc}") from exc
