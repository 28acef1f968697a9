"""The one composition root: builds adapters and services from Settings and wires the workers."""

from __future__ import annotations

import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.adapters import topology
from gateway.adapters.amqp_connect import LINKS
from gateway.adapters.confirms import PipelinedPublisher
from gateway.adapters.filedrop import Folder, LocalFolder
from gateway.adapters.persistence import open_storage
from gateway.adapters.persistence.sqlite import prefer_this_thread
from gateway.adapters.quarantine_folder import QuarantineFolder
from gateway.adapters.rabbitmq import connect, consume, take_while
from gateway.config import PartnerProfile, Settings
from gateway.errors import ConfigError, GatewayError, TransientError
from gateway.metrics import NO_METRICS, Metrics
from gateway.runtime import Runtime, every
from gateway.service.batcher import BatchService
from gateway.service.clock import Clock, utcnow
from gateway.service.dead_letters import DeadLetters
from gateway.service.deadlines import DeadlineWatch
from gateway.service.decoded import DecodedOrders
from gateway.service.file_relay import FileRelay
from gateway.service.file_scanner import FileScanner
from gateway.service.inbound import InboundService
from gateway.service.intake import IntakeService
from gateway.service.ports import INSTANCE_ROLES, Storage
from gateway.service.relay import Publisher as OneByOnePublisher
from gateway.service.relay import RelayService
from gateway.signing import (
    KeyRing,
    KeySource,
    KeyStore,
    SigningKey,
    passphrase_from_env,
)
from gateway.signing.keys import ensure_pair_files, stored_in_clear

log = structlog.get_logger("gateway.bootstrap")

# Where `gateway run` writes which broker node its connections are on (under home).
BROKER_LINKS_DIR = "var/run"

# What the relay publishes with: every publisher sends one message at a time; the pipelined
# one (gateway/adapters/confirms.py) also many awaiting their confirms, which the relay uses.
RelayPublisher = OneByOnePublisher

# Outbox messages the relay takes at once, and how many of them may await their confirm.
RELAY_BATCH = 4000
RELAY_WINDOW = 2000
# On PostgreSQL, batches one drain takes at most while they come full, each taken and marked
# while the broker confirms the next (`RelayService`): the database's work and the broker's
# overlap.
RELAY_BATCHES = 4
# Seconds between two looks for files to write into file-exchange partners' folders, when idle.
FILE_RELAY_IDLE_SECONDS = 0.25


def our_keys(settings: Settings) -> KeySource:
    """The treasury's signing keys (a development pair is made on first use if there is none).

    The passphrase comes from GATEWAY_KEY_PASSPHRASE or GATEWAY_KEY_PASSPHRASE_FILE. With
    key_source = "pkcs11" the keys are in an HSM token instead (see gateway.adapters.pkcs11).
    """
    if settings.key_source == "pkcs11":
        return token_keys(settings)
    if settings.key_source != "files":
        raise ConfigError(f"key_source {settings.key_source!r} is not one of files, pkcs11")
    passphrase = passphrase_from_env()
    name = settings.signing_key
    # Made once if missing; loaded (and checked) once, by the store.
    ensure_pair_files(
        settings.keys_path, name, f"{settings.initiating_party} - gateway", passphrase
    )
    if stored_in_clear(settings.keys_path, name):
        log.warning("key.unencrypted", key=name, hint="development only: see keys/README.md")
    store = KeyStore(settings.keys_path, name, passphrase)
    store.ring()  # a key that cannot be loaded stops the start, naming the file
    return store


def token_keys(settings: Settings) -> KeySource:
    """Our keys in the HSM token the settings name. A token that cannot be reached now is said
    in one line and the gateway starts anyway: batches wait until it answers."""
    from gateway.adapters.pkcs11 import TokenKeyStore, token_for  # noqa: PLC0415 - only when used

    store = TokenKeyStore(token_for(settings), settings.signing_key)
    try:
        store.ring()
    except TransientError as exc:
        log.error("key.unavailable", key=settings.signing_key, error=str(exc))
    return store


def our_keyring(settings: Settings) -> KeyRing:
    """The treasury's default signing key, current and next."""
    return our_keys(settings).ring()


def our_keypair(settings: Settings) -> SigningKey:
    """The treasury's current signing key (a pair in files, or a key in the token)."""
    return our_keyring(settings).current


def declare_topology(settings: Settings) -> None:
    """Declare exchanges and queues once at start."""
    conn = connect(settings.amqp_url)
    try:
        topology.declare_on(
            conn, settings.partners, settings.delivery_limit, settings.quorum_group_size
        )
    finally:
        conn.close()


def open_database(settings: Settings, *, upgrade: bool = True) -> Storage:
    """The gateway's database as the settings name it (GATEWAY_DB_URL, else SQLite at db_path),
    its schema upgraded unless `upgrade` is False."""
    return open_storage(settings.db_url, settings.db_file, upgrade=upgrade)


def existing_storage(settings: Settings, *, upgrade: bool = True) -> Storage:
    """The gateway's database, refusing to create an empty SQLite file by mistake (a wrong
    GATEWAY_HOME, db_path or sqlite:/// URL would otherwise be taken for a gateway with no
    history)."""
    file = settings.sqlite_file
    if file is not None and not file.exists():
        raise GatewayError(f"no gateway database at {file} yet; start `gateway run`")
    return open_database(settings, upgrade=upgrade)


def instance_name(storage: Storage) -> str:
    """Who claims work in the database: on SQLite the one instance there can be (its claims
    are its own again after a restart); on PostgreSQL this process, by host, pid and a random
    part (a dead instance's claims expire and are taken over)."""
    if storage.kind != "postgresql":
        return "gateway"
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Gateway:
    """The gateway's services, built once."""

    settings: Settings
    storage: Storage
    intake: IntakeService
    batcher: BatchService
    inbound: InboundService
    # Orders intake decoded and committed, for the batcher to build from: the two services'.
    decoded: DecodedOrders
    # Who this instance is when it claims work shared with other instances.
    owner: str = "gateway"
    # What the services count and time; served by `start_gateway` when metrics_port is set.
    metrics: Metrics = NO_METRICS
    # Group keys of urgent orders just taken in, for the urgent lane to cut at once.
    urgent: queue.SimpleQueue[tuple[str, str]] = field(default_factory=queue.SimpleQueue)
    # The clock every service reads the time from.
    clock: Clock = utcnow


def build_gateway(
    settings: Settings, storage: Storage | None = None, clock: Clock = utcnow
) -> Gateway:
    """Open the database (unless given), load our key, build the services (on `clock`: the
    tests move a clock of their own instead of sleeping)."""
    storage = storage or open_database(settings)
    metrics = gateway_metrics(storage, settings)
    owner = instance_name(storage)
    keys = our_keys(settings)
    urgent: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    decoded = DecodedOrders()  # intake's decoded orders, for the batcher's files
    return Gateway(
        settings=settings,
        storage=storage,
        intake=IntakeService(
            storage, settings, clock, metrics=metrics, on_urgent=_put_all(urgent), decoded=decoded
        ),
        batcher=BatchService(
            storage, settings, keys, clock, metrics=metrics, owner=owner, decoded=decoded
        ),
        inbound=build_inbound(settings, storage, clock),
        owner=owner,
        metrics=metrics,
        urgent=urgent,
        clock=clock,
        decoded=decoded,
    )


def quarantine_folder(settings: Settings) -> QuarantineFolder:
    """Where refused inbound files' bytes are kept."""
    return QuarantineFolder(settings.quarantine_path)


def _put_all(
    into: queue.SimpleQueue[tuple[str, str]],
) -> Callable[[Sequence[tuple[str, str]]], None]:
    def put(keys: Sequence[tuple[str, str]]) -> None:
        for key in keys:
            into.put(key)

    return put


def urgent_lane(
    gateway: Gateway, publisher: RelayPublisher | None = None
) -> Callable[[threading.Event], None]:
    """A worker that cuts each urgent order's group as soon as intake has committed it and
    sends its file at once (on `publisher`, by default its own pipelined one), beside the
    batcher's ticks and the relay (which take any urgent group or file it missed, e.g. after a
    restart)."""
    settings = gateway.settings
    owner = f"{gateway.owner}:urgent"
    batcher = gateway.batcher.for_owner(owner)

    def loop(stop: threading.Event) -> None:
        prefer_this_thread()
        own = publisher or PipelinedPublisher(settings.amqp_url, window=16, metrics=gateway.metrics)
        relay = RelayService(
            gateway.storage,
            own,
            gateway.clock,
            batch=16,
            file_partners=file_partners(settings),
            metrics=gateway.metrics,
            owner=owner,
            claim_seconds=settings.claim_seconds,
            urgent_only=True,
        )
        try:
            _serve_urgent(gateway, batcher, relay, stop)
        finally:
            if publisher is None and isinstance(own, PipelinedPublisher):
                own.close()

    return loop


def _serve_urgent(
    gateway: Gateway, batcher: BatchService, relay: RelayService, stop: threading.Event
) -> None:
    """Cut each urgent group handed over and send its file, until stopped."""
    while not stop.is_set():
        try:
            keys = [gateway.urgent.get(timeout=0.2)]
        except queue.Empty:
            continue
        while not gateway.urgent.empty():
            keys.append(gateway.urgent.get_nowait())
        try:
            if batcher.cut_urgent(list(dict.fromkeys(keys))):
                relay.drain()  # the bulk relay may be busy with a run's postings
        except TransientError as exc:
            # What was not cut or sent is taken by the batcher's tick and the relay.
            log.warning("urgent.deferred", groups=len(keys), error=str(exc))


def build_inbound(settings: Settings, storage: Storage, clock: Clock = utcnow) -> InboundService:
    """The inbound service: verifies, keeps and applies bank files (the broker's, the
    scanners' and `gateway files scan`'s alike), refused files' bytes kept in the settings'
    quarantine folder."""
    return InboundService(storage, settings, clock, quarantine=quarantine_folder(settings))


def check_clock(storage: Storage, settings: Settings, clock: Clock = utcnow) -> float | None:
    """The database server's clock against this machine's, in seconds; said as a warning when
    they differ by a quarter of a claim or more. Instances sharing a PostgreSQL database take
    over each other's expired claims by their own clocks: one whose clock runs ahead by
    `claim_seconds` takes over work another has just claimed (a file written to a partner's
    folder twice, builds lost and redone). None for SQLite."""
    offset = storage.clock_offset(clock())
    if offset is not None and abs(offset) >= settings.claim_seconds / 4:
        log.warning(
            "clock.skew",
            database_ahead_seconds=round(offset, 1),
            claim_seconds=settings.claim_seconds,
            hint="keep every gateway machine and the database server on NTP",
        )
    return offset


def start_gateway(
    gateway: Gateway, runtime: Runtime, roles: Sequence[str] = INSTANCE_ROLES
) -> None:
    """Run the workers of `roles` on `runtime`: `main` (intake, batcher, urgent lane, relay,
    deadlines, file exchange, console) and `reports` (the banks' files from the broker); the
    metrics of each process's own work on its own port."""
    settings = gateway.settings
    for partner in settings.partners.values():
        pinned = partner.signature.current
        if pinned is not None and not settings.path(pinned.path).is_file():
            # Its reports will be quarantined until the bank's certificate is put there.
            log.warning(
                "partner.certificate_missing",
                partner=partner.name,
                path=str(settings.path(pinned.path)),
            )
    declare_topology(settings)
    check_clock(gateway.storage, settings, gateway.clock)
    # Which broker node each connection is on, for `gateway status` (see amqp_connect.Links).
    LINKS.keep_in(settings.path(BROKER_LINKS_DIR))

    def intake(stop: threading.Event) -> None:
        consume(
            settings.amqp_url,
            topology.ORDERS_QUEUE,
            gateway.intake.handle,
            stop,
            prefetch=settings.prefetch,
            chunk=settings.intake_chunk,
            name="intake",
            metrics=gateway.metrics,
        )

    def urgent_intake(stop: threading.Event) -> None:
        # Each one handled as it arrives (no waiting to fill a chunk), first in line for the
        # database's write lock.
        prefer_this_thread()
        consume(
            settings.amqp_url,
            topology.URGENT_ORDERS_QUEUE,
            gateway.intake.handle,
            stop,
            prefetch=16,
            chunk=1,
            idle=0.25,
            name="intake",
            metrics=gateway.metrics,
        )

    def inbound(stop: threading.Event) -> None:
        consume(
            settings.amqp_url,
            topology.FROM_BANK_QUEUE,
            gateway.inbound.handle,
            stop,
            prefetch=4,
            chunk=1,
            name="inbound",
            metrics=gateway.metrics,
        )

    def relay(stop: threading.Event) -> None:
        # Many messages in flight, each row marked once its own confirm is in.
        publisher = PipelinedPublisher(
            settings.amqp_url, window=RELAY_WINDOW, metrics=gateway.metrics
        )
        service = RelayService(
            gateway.storage,
            publisher,
            gateway.clock,
            batch=RELAY_BATCH,
            file_partners=file_partners(settings),
            metrics=gateway.metrics,
            owner=gateway.owner,
            claim_seconds=settings.claim_seconds,
            batches=RELAY_BATCHES,
        )
        try:
            # Idle, it polls less and less often (up to relay_idle_limit): the reports role,
            # in its own process, writes postings this relay finds only by looking.
            every(settings.relay_interval, service.drain, idle_limit=settings.relay_idle_limit)(
                stop
            )
        finally:
            publisher.close()

    def inbound_when_idle(stop: threading.Event) -> None:
        # The banks' files taken one at a time while intake has had no order for a while: at
        # the end of a bulk run the main role's process, otherwise idle, applies replies beside
        # the reports processes; while orders come, it leaves them to those processes. SQLite
        # only: its main role is one process, while on PostgreSQL every instance's reports
        # processes already apply files side by side, and the measured runs gained nothing.
        take_while(
            settings.amqp_url,
            topology.FROM_BANK_QUEUE,
            gateway.inbound.handle,
            stop,
            ready=lambda: gateway.intake.idle_for(settings.main_applies_after),
            name="inbound-idle",
            metrics=gateway.metrics,
        )

    if "main" in roles and settings.console_with_run:
        # First: the console's TLS files are checked as it starts, and a start they stop must
        # leave no other worker running.
        start_console(settings, gateway.storage, runtime)
    if "reports" in roles:
        runtime.add("inbound", inbound)
    elif "main" in roles and settings.main_applies_after > 0 and gateway.storage.kind == "sqlite":
        runtime.add("inbound-idle", inbound_when_idle)
    if "main" in roles:
        runtime.add("intake", intake)
        runtime.add("intake-urgent", urgent_intake)
        runtime.add("batcher", every(gateway.batcher.pause, gateway.batcher.tick))
        runtime.add("urgent", urgent_lane(gateway))
        runtime.add("relay", relay)
        watch = DeadlineWatch(gateway.storage, settings, gateway.clock)
        runtime.add("deadlines", every(settings.deadline_check_seconds, watch.tick))
        start_file_exchange(gateway, runtime)
    start_metrics(gateway, runtime)


# --- the operations console (gateway/adapters/web/) ------------------------------------------


def console_actions(settings: Settings, storage: Storage, *, broker: bool = True) -> Any:
    """What an operator does from the console, over the dead-letter rules (`via` console);
    without `broker`, on the outbox alone (tests on a database without RabbitMQ)."""
    from gateway.adapters.admin_actions import ConsoleActions, NoParking  # noqa: PLC0415
    from gateway.adapters.parking import BrokerParking  # noqa: PLC0415 - only when used

    letters = DeadLetters(
        storage,
        BrokerParking(settings.amqp_url) if broker else NoParking(),
        topology.consumed_queues(settings.partners) if broker else (),
        via="console",
    )
    return ConsoleActions(
        settings, storage, letters, lambda name: inbound_folder(settings, settings.partners[name])
    )


def build_console(settings: Settings, storage: Storage, *, broker: bool = True) -> Any:
    """The console's ASGI app on this database (and broker, for parked messages)."""
    from gateway.adapters.web.app import Console, create_app  # noqa: PLC0415
    from gateway.adapters.web.auth import Sessions, Throttle, load_secret  # noqa: PLC0415
    from gateway.adapters.web.passwords import Argon2Hasher  # noqa: PLC0415

    secret = load_secret(
        settings.path(settings.console_secret_file), os.environ.get("GATEWAY_CONSOLE_SECRET", "")
    )
    return create_app(
        Console(
            settings=settings,
            storage=storage,
            actions=console_actions(settings, storage, broker=broker),
            hasher=Argon2Hasher(),
            sessions=Sessions(secret, secure=bool(settings.console_tls_cert)),
            throttle=Throttle(),
        )
    )


def console_server(
    settings: Settings, storage: Storage, *, address: str, port: int, broker: bool = True
) -> Any:
    """A uvicorn server of the console (run it with `.run()`; `.should_exit` stops it)."""
    import uvicorn  # noqa: PLC0415 - only when the console is served

    tls = bool(settings.console_tls_cert)
    config = uvicorn.Config(
        build_console(settings, storage, broker=broker),
        host=address,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=str(settings.path(settings.console_tls_cert)) if tls else None,
        ssl_keyfile=str(settings.path(settings.console_tls_key)) if tls else None,
    )
    return uvicorn.Server(config)


def start_console(settings: Settings, storage: Storage, runtime: Runtime) -> None:
    """Serve the console as a worker of `runtime`. TLS settings it could not serve with stop the
    start, naming the setting and its file; an address it cannot listen on (a port taken) is
    said in the log, and the gateway runs without its console."""
    from gateway.adapters.web.serving import check_tls, listen  # noqa: PLC0415

    check_tls(settings)
    address, port = settings.console_address, settings.console_port
    server = console_server(settings, storage, address=address, port=port)

    def serve(stop: threading.Event) -> None:
        try:
            sockets = listen(address, port)
        except ConfigError as exc:
            log.error("console.unavailable", address=address, port=port, error=str(exc))
            return

        def stopper() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=stopper, daemon=True).start()
        log.info("console.serving", address=address, port=sockets[0].getsockname()[1])
        try:
            server.run(sockets=sockets)
        except (OSError, SystemExit) as exc:
            log.error("console.unavailable", address=address, port=port, error=str(exc))
        finally:
            for sock in sockets:
                sock.close()

    runtime.add("console", serve)


# --- metrics: Prometheus's /metrics for admins (gateway/adapters/prometheus.py) ----------------


def gateway_metrics(storage: Storage, settings: Settings) -> Metrics:
    """Prometheus metrics when metrics_port is set, else metrics that count nothing."""
    if not settings.metrics_port:
        return NO_METRICS
    from gateway.adapters.prometheus import prometheus_metrics  # noqa: PLC0415 - only when used

    return prometheus_metrics(storage.queries, settings)


def start_metrics(gateway: Gateway, runtime: Runtime) -> None:
    """Serve /metrics until the runtime stops; a port already taken is said, not fatal."""
    from gateway.adapters.prometheus import PrometheusMetrics, serve  # noqa: PLC0415

    metrics, settings = gateway.metrics, gateway.settings
    if not isinstance(metrics, PrometheusMetrics):
        return

    def exporter(stop: threading.Event) -> None:
        address, port = settings.metrics_address, settings.metrics_port
        try:
            stop_server = serve(metrics, address, port)
        except OSError as exc:
            # Payments go on without metrics; Prometheus shows the target down.
            log.error("metrics.unavailable", address=address, port=port, error=str(exc))
            return
        log.info("metrics.serving", url=f"http://{address}:{port}/metrics")
        stop.wait()
        stop_server()

    runtime.add("metrics", exporter)


# --- end of metrics ----------------------------------------------------------------------------


# --- file exchange: partners reached by a pair of folders, local or over SFTP ------------------


def file_partners(settings: Settings) -> tuple[str, ...]:
    """Names of the partners reached by file exchange (the broker relay skips their files)."""
    return tuple(p.name for p in settings.partners.values() if p.transport == "files")


def partner_folders(settings: Settings, partner: PartnerProfile) -> tuple[Folder, Folder]:
    """The partner's outbound and inbound folders, on this machine or on its SFTP host."""
    exchange = partner.files
    if exchange is None:
        raise ConfigError(f"partner {partner.name} is not reached by file exchange")
    if exchange.sftp is not None:
        from gateway.adapters.sftp import SftpFolder  # noqa: PLC0415 - paramiko only when used

        key = settings.path(exchange.sftp.key)
        return (
            SftpFolder(exchange.sftp, key, exchange.outbound),
            SftpFolder(exchange.sftp, key, exchange.inbound),
        )
    return LocalFolder(settings.path(exchange.outbound)), LocalFolder(
        settings.path(exchange.inbound)
    )


def inbound_folder(settings: Settings, partner: PartnerProfile) -> Folder:
    """The partner's inbound folder alone (its outbound one is not opened)."""
    exchange = partner.files
    if exchange is None:
        raise ConfigError(f"partner {partner.name} is not reached by file exchange")
    if exchange.sftp is not None:
        from gateway.adapters.sftp import SftpFolder  # noqa: PLC0415 - paramiko only when used

        return SftpFolder(exchange.sftp, settings.path(exchange.sftp.key), exchange.inbound)
    return LocalFolder(settings.path(exchange.inbound))


def file_scanner(
    settings: Settings, partner: PartnerProfile, inbound: InboundService, storage: Storage
) -> FileScanner:
    """A scanner of one partner's inbound folder, feeding the inbound service (its folder is
    closed with `scanner.close()`)."""
    return FileScanner(partner, inbound_folder(settings, partner), inbound, storage.queries)


def start_file_exchange(gateway: Gateway, runtime: Runtime) -> None:
    """The file relay (outbox → outbound folders) and one inbound scanner per files partner."""
    settings = gateway.settings
    partners = [settings.partners[name] for name in file_partners(settings)]
    if not partners:
        return

    def relay(stop: threading.Event) -> None:
        folders = {p.name: partner_folders(settings, p)[0] for p in partners}
        service = FileRelay(
            gateway.storage,
            folders,
            metrics=gateway.metrics,
            owner=gateway.owner,
            claim_seconds=settings.claim_seconds,
        )
        try:
            # A pass that finds nothing scans the outbox's pending messages for files: a quarter
            # second, then up to relay_idle_limit, is soon enough for a folder the bank polls,
            # and leaves the CPU to the broker relay in a busy hour.
            every(
                max(settings.relay_interval, FILE_RELAY_IDLE_SECONDS),
                service.drain,
                idle_limit=settings.relay_idle_limit,
            )(stop)
        finally:
            service.close()

    runtime.add("file-relay", relay)
    for partner in partners:
        scanner = file_scanner(settings, partner, gateway.inbound, gateway.storage)
        runtime.add(f"file-scanner-{partner.name}", scan_loop(scanner))


def scan_loop(scanner: FileScanner) -> Callable[[threading.Event], None]:
    """Scan every poll_seconds until stopped; a fault is logged and the next pass retries."""

    def loop(stop: threading.Event) -> None:
        interval = scanner.poll_seconds
        while not stop.is_set():
            try:
                scanner.scan()
            except (GatewayError, OSError) as exc:
                log.warning("files.scan_failed", partner=scanner.partner, error=str(exc))
            stop.wait(interval)

    return loop


# --- end of file exchange ----------------------------------------------------------------------


# --- admin work: the commands (and the console) use these, wired once here -------------------


class Admin:
    """What admin commands work with, each piece built when first used: the existing database,
    the parked messages' rules, the inbound scanners of file-exchange partners."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        """The gateway's database; an error when there is none yet (see `existing_storage`)."""
        if self._storage is None:
            self._storage = existing_storage(self.settings)
        return self._storage

    def close(self) -> None:
        """Close the database, when it was opened."""
        if self._storage is not None:
            self._storage.close()

    def has_database(self) -> bool:
        """Whether the gateway's database exists (its SQLite file there, or another database's
        URL set)."""
        file = self.settings.sqlite_file
        return file is None or file.exists()

    def dead_letters(self) -> DeadLetters:
        """Parked messages on the broker and in the outbox (`gateway dlq`)."""
        from gateway.adapters.parking import BrokerParking  # noqa: PLC0415 - only when used

        return DeadLetters(
            self.storage if self.has_database() else None,
            BrokerParking(self.settings.amqp_url),
            topology.consumed_queues(self.settings.partners),
        )

    def file_partner(self, name: str) -> PartnerProfile:
        """A partner reached by file exchange, by name (one line when it is not)."""
        profile = self.settings.partner(name)
        if profile.transport != "files":
            raise ConfigError(f"partner {name} is reached by {profile.transport}, not by files")
        return profile

    def scanners(self, names: Sequence[str]) -> list[FileScanner]:
        """A scanner of each named partner's inbound folder, feeding one inbound service on
        the existing database (reports claimed are moved to processed/: they are never
        applied to a new, empty database)."""
        inbound = build_inbound(self.settings, self.storage)
        return [
            file_scanner(self.settings, self.file_partner(name), inbound, self.storage)
            for name in names
        ]
