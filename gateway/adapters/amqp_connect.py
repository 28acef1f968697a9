"""Broker connections: one node or the nodes of a cluster, tried in turn.

`GATEWAY_AMQP_URL` (or `amqp_url` in conf/gateway.toml, a string or a list) names one broker URL
or several, comma-separated: the nodes of one RabbitMQ cluster. Every connection the gateway
opens (consumers, publishers, the relay, admin commands) goes through `connect`, which tries the
URLs one after the other, starting after the node this worker was last on, and keeps trying
(with backoff) for a minute while none answers, an admin's command for `COMMAND_WAIT` seconds;
then it says which nodes it tried and why the last did not answer (`BrokerUnreachableError`). Which
node each long-lived connection is on, and how often it moved to another node (a failover), is
kept in `LINKS`: the metrics read it, and `gateway run` writes it to `var/run/` for
`gateway status`.

Timeouts, unless the URL's query sets them (pika's names, e.g. `?heartbeat=10`):

  heartbeat                   10 s: a node that stops answering (lost with its machine, cut
                              off, paused) is noticed within 10-20 s and the connection is
                              closed; a killed node on a live machine is noticed at once (the
                              connection is reset). Not less: the broker drops a client that
                              sends nothing for two periods; at 5 s that happened in the test
                              suite on the shared machine. A consumer busy in one long chunk
                              still answers (`amqp_heartbeats.HeartbeatKeeper`)
  socket_timeout              3 s to open the TCP connection to one node
  stack_timeout               6 s for the whole AMQP handshake with one node (a node that
                              accepts TCP but does not answer, as a paused one, is skipped)
  blocked_connection_timeout  60 s a connection may stay blocked by the broker's resource
                              alarms (memory, disk) before it is dropped and opened again
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import structlog
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.exceptions import AMQPConnectionError, AMQPError
from tenacity import Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

from gateway.errors import ConfigError

log = structlog.get_logger("gateway.rabbitmq")

HEARTBEAT = 10
SOCKET_TIMEOUT = 3.0
STACK_TIMEOUT = 6.0
BLOCKED_CONNECTION_TIMEOUT = 60.0


def broker_urls(value: str | Sequence[str]) -> list[str]:
    """The broker URLs of a setting: one URL, several comma-separated, or a list of them."""
    items = value.split(",") if isinstance(value, str) else list(value)
    urls = [item.strip() for item in items if item.strip()]
    if not urls:
        raise ConfigError("amqp_url names no broker")
    for url in urls:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - read to be checked: a port not a number, or past 65535
        except ValueError as exc:  # also an unclosed [IPv6] address
            raise ConfigError(f"amqp_url: {redact(url)}: {exc}") from None
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigError(f"amqp_url: {redact(url)} is not an amqp:// or amqps:// URL")
    return urls


def node_of(url: str) -> str:
    """The node a URL names, as `host:port` (what logs, metrics and `gateway status` show)."""
    parts = urlsplit(url)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    host = parts.hostname or "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redact(value: str) -> str:
    """URLs fit for logs: user and password masked."""
    shown = []
    for url in value.split(","):
        text = url.strip()
        if "@" in text and "://" in text:
            scheme, rest = text.split("://", 1)
            text = f"{scheme}://***@{rest.split('@', 1)[1]}"
        shown.append(text)
    return ",".join(shown)


def parameters(url: str, connection_name: str) -> pika.URLParameters:
    """pika's parameters for one URL, with the gateway's timeouts unless the URL sets them."""
    params = pika.URLParameters(url)
    query = parse_qs(urlsplit(url).query)
    if "heartbeat" not in query:
        params.heartbeat = HEARTBEAT
    if "socket_timeout" not in query:
        params.socket_timeout = SOCKET_TIMEOUT
    if "stack_timeout" not in query:
        params.stack_timeout = STACK_TIMEOUT
    if "blocked_connection_timeout" not in query:
        params.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT
    if "connection_attempts" not in query:
        params.connection_attempts = 1  # one try per node; `connect` goes round the nodes
    params.client_properties = {"connection_name": connection_name}
    return params


@dataclass(slots=True)
class Link:
    """Where one worker's broker connection is."""

    worker: str
    node: str
    connected_at: str
    connected: bool = True
    # Connections opened after the first one, on any node.
    reconnects: int = 0
    # Reconnections that landed on another node than the one before.
    failovers: int = 0


class Links:
    """Which node each worker's connection is on, and its failovers; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._links: dict[str, Link] = {}
        self._file: Path | None = None

    def keep_in(self, folder: Path) -> Path:
        """Write the links to `folder/broker-links.<pid>.json` at each change (for
        `gateway status`), removing the files of processes no longer running; returns the
        file."""
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("broker-links.*.json"):
            # Left by processes that are gone (killed, or a host restarted).
            pid = stale.name.split(".")[1]
            if pid.isdigit() and not _alive(int(pid)):
                stale.unlink(missing_ok=True)
        self._file = folder / f"broker-links.{os.getpid()}.json"
        self._write()
        return self._file

    def last_node(self, worker: str) -> str | None:
        """The node the worker was last connected to."""
        with self._lock:
            link = self._links.get(worker)
            return link.node if link else None

    def connected(self, worker: str, node: str) -> bool:
        """Record a new connection of `worker` on `node`; True when it is a failover."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            link = self._links.get(worker)
            previous = link.node if link else None
            failover = previous is not None and previous != node
            if link is None:
                self._links[worker] = Link(worker, node, now)
            else:
                link.reconnects += 1
                link.failovers += int(failover)
                link.node, link.connected_at, link.connected = node, now, True
        if failover:
            log.warning("broker.failover", worker=worker, node=node, previous=previous)
        self._write()
        return failover

    def lost(self, worker: str) -> None:
        """The worker's connection is gone (it will reconnect)."""
        with self._lock:
            link = self._links.get(worker)
            if link is None or not link.connected:
                return
            link.connected = False
        self._write()

    def snapshot(self) -> list[Link]:
        """Copies of every link, by worker."""
        with self._lock:
            return [Link(**asdict(link)) for _, link in sorted(self._links.items())]

    def clear(self) -> None:
        """Forget every link (tests)."""
        with self._lock:
            self._links.clear()

    def _write(self) -> None:
        if self._file is None:
            return
        with self._lock:
            state = {
                "pid": os.getpid(),
                "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "links": [asdict(link) for _, link in sorted(self._links.items())],
            }
        tmp = self._file.with_suffix(f".{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(state), encoding="utf-8")
            tmp.replace(self._file)
        except OSError as exc:
            log.warning("broker.links_unwritten", path=str(self._file), error=repr(exc))


LINKS = Links()


def read_links(folder: Path) -> list[dict[str, Any]]:
    """The links written by running `gateway run` processes of this home (for `gateway
    status`): one entry per process still alive, with its pid."""
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("broker-links.*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            pid = int(state["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(pid):
            continue
        found.append(state)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _order(urls: list[str], worker: str | None) -> list[str]:
    """The URLs in the order to try: after the node the worker was last on (the one it just
    lost, most likely), else from a random one (connections spread over the nodes)."""
    if len(urls) == 1:
        return urls
    last = LINKS.last_node(worker) if worker else None
    nodes = [node_of(url) for url in urls]
    start = (nodes.index(last) + 1) if last in nodes else random.randrange(len(urls))
    return urls[start:] + urls[:start]


def open_connection(url: str | Sequence[str], worker: str | None = None) -> pika.BlockingConnection:
    """One round over the URLs: the first node that accepts the connection; AMQPConnectionError
    (from the last node tried) when none does."""
    urls = broker_urls(url)
    name = f"gateway:{worker or threading.current_thread().name}"
    error: AMQPError | None = None
    for candidate in _order(urls, worker):
        try:
            conn = pika.BlockingConnection(parameters(candidate, name))
        except (AMQPConnectionError, AMQPConnectorException) as exc:
            # pika raises a node that took the TCP connection but not the AMQP handshake in
            # time (a paused node) as its connector's own error, not an AMQPError.
            error = exc if isinstance(exc, AMQPConnectionError) else AMQPConnectionError(exc)
            log.info("broker.node_unreachable", node=node_of(candidate), error=repr(exc))
            continue
        if worker is not None:
            LINKS.connected(worker, node_of(candidate))
        return conn
    assert error is not None
    raise error


# How long a long-lived connection (a consumer, the relay) keeps trying while no node answers,
# and how long an admin's command does before it says so (`gateway submit`, `gateway dlq`, the
# console's parked messages and reprocessed files): someone waits for its answer.
SERVICE_WAIT = 60.0
COMMAND_WAIT = 10.0


class BrokerUnreachableError(AMQPConnectionError):  # type: ignore[misc]  # pika is untyped
    """No node of the broker accepted a connection within the wait (refused, silent, or refusing
    our credentials): which were tried, for how long, and the last node's reason."""

    def __init__(self, urls: Sequence[str], seconds: float, last: BaseException) -> None:
        nodes = ", ".join(node_of(url) for url in urls)
        super().__init__(
            f"no broker node accepted a connection within {seconds:g} s ({nodes}):"
            f" {unreachable_reason(last)}"
        )

    def __repr__(self) -> str:
        return f"BrokerUnreachableError({self.args[0]!r})"


def unreachable_reason(exc: BaseException) -> str:
    """The reason under pika's wrappers: the socket's error ("Connection refused") when there
    is one, else the error as pika gives it."""
    seen: list[BaseException] = [exc]
    while seen:
        current = seen.pop()
        if isinstance(current, OSError):
            return current.strerror or repr(current)
        inner = [*current.args, getattr(current, "exception", None)]  # pika's connector errors
        seen.extend(arg for arg in inner if isinstance(arg, BaseException))
    return repr(exc)


def connect(
    url: str | Sequence[str], worker: str | None = None, *, within: float = SERVICE_WAIT
) -> pika.BlockingConnection:
    """A blocking connection to the first node that answers, tried again with backoff for
    `within` seconds while none does (BrokerUnreachableError after that). A named `worker` is a
    long-lived connection whose node is kept in LINKS."""
    retrying = Retrying(
        retry=retry_if_exception_type(AMQPError),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_before_delay(within),  # no try begun after the wait
        reraise=True,
    )
    try:
        return retrying(open_connection, url, worker)
    except AMQPConnectionError as exc:
        raise BrokerUnreachableError(broker_urls(url), within, exc) from exc
