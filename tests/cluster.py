"""The three-node RabbitMQ cluster of `scripts/broker cluster`, for the high-availability tests.

scripts/test starts it and hands the tests its URLs in GATEWAY_TEST_CLUSTER_URLS. Without that
variable (or with a node not answering) the cluster tests are skipped with the reason, unless
GATEWAY_REQUIRE_CLUSTER=1 (CI sets it): then the cluster's absence fails them, never a silent
skip. The tests kill, start and pause nodes through the same script, so only this checkout's
nodes are ever signalled.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CLUSTER_ENV = "GATEWAY_TEST_CLUSTER_URLS"
REQUIRE_ENV = "GATEWAY_REQUIRE_CLUSTER"
BROKER = Path(__file__).resolve().parents[1] / "scripts" / "broker"


def _answers(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `condition()` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@dataclass(frozen=True)
class Cluster:
    """The running cluster: its URLs (node I is urls[I-1]) and the script that drives it."""

    urls: tuple[str, ...]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: what GATEWAY_AMQP_URL holds for a cluster."""
        return ",".join(self.urls)

    def index(self, node: str) -> int:
        """The number (1-based) of the node `host:port`."""
        ports = [urllib.parse.urlsplit(url).port for url in self.urls]
        return ports.index(int(node.rsplit(":", 1)[1])) + 1

    def script(self, *args: str, timeout: float = 180) -> str:
        """`scripts/broker cluster ARGS`; its output (fails the test when it fails)."""
        result = subprocess.run(
            ["bash", str(BROKER), "cluster", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"scripts/broker cluster {args}: {result.stderr[-500:]}"
        return result.stdout

    def kill(self, node: int) -> None:
        """SIGKILL node `node`."""
        self.script("kill", str(node))

    def start_node(self, node: int) -> None:
        """Start node `node` and wait until the cluster reports it running."""
        self.script("start-node", str(node))

    def pause(self, node: int) -> None:
        """SIGSTOP node `node`."""
        self.script("pause", str(node))

    def resume(self, node: int) -> None:
        """SIGCONT node `node`."""
        self.script("resume", str(node))

    def node_name(self, node: int) -> str:
        """The Erlang node name of node `node` (e.g. gw-c1@localhost)."""
        return self.script("node", str(node)).strip()

    def heal(self) -> None:
        """Every node running again (after a test that broke one)."""
        for node in range(1, len(self.urls) + 1):
            subprocess.run(
                ["bash", str(BROKER), "cluster", "resume", str(node)],
                capture_output=True,
                check=False,
            )
        self.script("start", "--nodes", str(len(self.urls)), timeout=300)

    def leader(self, queue: str, via: int) -> str:
        """The node name holding `queue`'s leader, as node `via` reports it."""
        out = self.script(
            "ctl", str(via), "-q", "list_queues", "name", "leader", "--formatter", "json"
        )
        for row in json.loads(out):
            if row["name"] == queue:
                return str(row["leader"])
        raise AssertionError(f"queue {queue} not listed by node {via}")


def cluster_required() -> bool:
    """True when a missing cluster must fail the run (CI) rather than skip."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The running three-node cluster (skip, or fail under GATEWAY_REQUIRE_CLUSTER, without)."""
    raw = os.environ.get(CLUSTER_ENV, "").strip()
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    problem = ""
    if len(urls) < 3:
        problem = f"{CLUSTER_ENV} does not name three nodes: run `scripts/broker cluster start`"
        problem += f" and set it to `scripts/broker cluster urls` (got {raw!r})"
    elif not all(_answers(url) for url in urls):
        problem = f"a node of {CLUSTER_ENV} does not answer: run `scripts/broker cluster start`"
    if problem:
        if cluster_required():
            pytest.fail(f"{REQUIRE_ENV} is set but {problem}", pytrace=False)
        pytest.skip(problem)
    return Cluster(urls)
