"""The processes a soak runs and breaks: the gateways, the bank simulator, this checkout's
broker and PostgreSQL cluster.

Only processes this harness started are signalled, by their pid; the broker is the project's own
node (scripts/broker with the caller's GATEWAY_RABBIT_NODE), restarted through that script or
killed by the pid in its pid file after checking that it is a BEAM process; PostgreSQL is the
checkout's private cluster, restarted and killed through scripts/postgres (which refuses any
other server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from gateway.errors import GatewayError

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
BROKER_SCRIPT = ROOT / "scripts" / "broker"
POSTGRES_SCRIPT = ROOT / "scripts" / "postgres"


class Child:
    """One `gateway ...` process, its output appended to a log file."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self._args = args
        self._env = dict(env)
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Start the process (with extra environment, e.g. a crash point)."""
        env = {k: v for k, v in self._env.items() if k != "GATEWAY_CRASH_AT"}
        env.update(extra_env or {})
        self._log.parent.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as out:
            self._proc = subprocess.Popen(
                [GATEWAY_BIN, *self._args],
                env=env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        """True while the process runs."""
        return self._proc is not None and self._proc.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if it still runs after `timeout` seconds."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> bool:
        """SIGKILL the process (ours, by pid); True when it was running."""
        if not self.alive() or self._proc is None:
            return False
        os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(10)
        return True

    def stop(self) -> None:
        """Ask the process to stop (SIGINT, as Ctrl-C), then kill it if it lingers."""
        if not self.alive() or self._proc is None:
            return
        os.kill(self._proc.pid, signal.SIGINT)
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


class Broker:
    """This checkout's RabbitMQ node, as `scripts/broker` runs it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        node = self._env.get("GATEWAY_RABBIT_NODE", "gateway@localhost")
        self._pid_file = ROOT / "var" / "rabbitmq" / f"{node}.pid"

    def _script(self, command: str) -> None:
        result = subprocess.run(
            ["bash", str(BROKER_SCRIPT), command],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise GatewayError(f"scripts/broker {command} failed: {result.stderr.strip()[-300:]}")

    def pid(self) -> int:
        """The node's OS pid, refusing anything that is not this checkout's BEAM process."""
        try:
            pid = int(self._pid_file.read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            raise GatewayError(
                f"broker faults need the project's own node (no live pid in {self._pid_file});"
                " start it with scripts/broker start"
            ) from None
        if not comm.startswith("beam"):
            raise GatewayError(f"pid {pid} in {self._pid_file} is {comm}, not a RabbitMQ node")
        return pid

    def check_ours(self) -> None:
        """Fail early when the broker is not one this harness may restart."""
        self.pid()

    def restart(self) -> None:
        """Graceful stop and start."""
        self._script("restart")

    def kill_and_start(self, down_for: float = 1.0) -> None:
        """SIGKILL the node, leave it down a moment, start it again."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(down_for)
        self._script("start")

    def start(self) -> None:
        """Start the node if it is not running."""
        self._script("start")


class Cluster:
    """This checkout's RabbitMQ cluster, as `scripts/broker cluster` runs it: its nodes are
    killed, started again and paused by number, through that script (which signals only the
    pids in its own pid files, after checking they are BEAM processes)."""

    def __init__(self, env: Mapping[str, str], nodes: int) -> None:
        self._env = dict(env)
        self.nodes = nodes

    def _script(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["bash", str(BROKER_SCRIPT), "cluster", *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise GatewayError(
                f"scripts/broker cluster {' '.join(args)} failed: {result.stderr.strip()[-300:]}"
            )
        return result.stdout.strip()

    def start(self) -> str:
        """Start the cluster (idempotent); its URLs, comma-separated."""
        self._script("start", "--nodes", str(self.nodes))
        return self._script("urls")

    def kill_and_start(self, node: int, down_for: float) -> None:
        """SIGKILL node `node` (1-based), leave it down a while, start it and wait until the
        cluster reports it running."""
        self._script("kill", str(node))
        time.sleep(down_for)
        self._script("start-node", str(node))

    def pause(self, node: int, seconds: float) -> bool:
        """SIGSTOP node `node` for `seconds` (its peers declare it down: a partition of one
        node), then SIGCONT; True when it came back by itself, False when it had to be killed
        and started again."""
        self._script("pause", str(node))
        try:
            time.sleep(seconds)
        finally:
            self._script("resume", str(node))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = subprocess.run(
                ["bash", str(BROKER_SCRIPT), "cluster", "status"],
                env=self._env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if status.returncode == 0:
                return True
            time.sleep(2)
        self.kill_and_start(node, 1.0)
        return False


class Postgres:
    """This checkout's private PostgreSQL cluster, as `scripts/postgres` runs it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)

    def _script(self, *args: str) -> str:
        result = subprocess.run(
            ["bash", str(POSTGRES_SCRIPT), *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise GatewayError(
                f"scripts/postgres {' '.join(args)} failed: {result.stderr.strip()[-300:]}"
            )
        return result.stdout.strip()

    def start(self) -> str:
        """Start the cluster if it is not running; the gateway database's URL."""
        self._script("start")
        return self._script("url")

    def check_ours(self) -> None:
        """Fail early when the server is not one this harness may restart and kill."""
        self._script("start")
        status = subprocess.run(
            ["bash", str(POSTGRES_SCRIPT), "status"],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        said = f"{status.stdout} {status.stderr}"
        if status.returncode != 0 or "this checkout's private cluster" not in said:
            raise GatewayError(
                "PostgreSQL faults need this checkout's private cluster (scripts/postgres start"
                f" without GATEWAY_DB_URL); scripts/postgres status says: {said.strip()[:200]}"
            )

    def restart(self) -> None:
        """Graceful (fast) shutdown and start: every connection is closed by the server."""
        self._script("restart")

    def kill_and_start(self, down_for: float = 1.0) -> None:
        """SIGKILL the postmaster, leave it down a moment, start it again (crash recovery)."""
        self._script("kill")
        time.sleep(down_for)
        self._script("start")
