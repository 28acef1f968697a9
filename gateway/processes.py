"""The reports processes `gateway run` starts beside itself, their lives tied to its own.

CPython runs one thread at a time in a process, so a gateway in one process uses about one core.
`gateway run` therefore runs the main role (intake, batching, the relays, the urgent lane) itself
and starts the reports role (applying the banks' files) in child processes, one per core beyond
the first by default (`reports_processes = "auto"`). They share nothing but the database and the
broker, as the roles in processes of their own always could (`gateway run --role ...`).

The group lives and dies as one, so that a service manager sees one service:
- a child that ends while the gateway runs (a crash, a kill) stops the gateway, which exits 1
  naming it; the service manager restarts the whole (nothing is lost: every bank file is acked
  only after its commit, and is delivered again);
- the gateway's end stops the children: SIGTERM on a normal stop, and the kernel sends them
  SIGTERM when the gateway dies without one (`PR_SET_PDEATHSIG`, Linux, which each child asks
  for as it starts: `follow_parent`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

import structlog

from gateway.errors import ConfigError
from gateway.logs import PROCESS_LABEL_ENV

log = structlog.get_logger("gateway.processes")

AUTO = "auto"
# "auto" starts one reports process per core beyond the first, at most this many: every process
# writes to the one database (on SQLite one at a time), and more than two were never measured.
MAX_AUTO = 4
# Seconds the children have to end after SIGTERM (its default action: at once; a file in hand is
# delivered again), before SIGKILL.
STOP_SECONDS = 20.0
_PR_SET_PDEATHSIG = 1
# Set by the gateway in its children's environment: the process whose death they follow.
PARENT_ENV = "GATEWAY_PARENT_PID"


def reports_process_count(setting: str, cpus: int | None = None) -> int:
    """How many reports processes to start: a number (0: the reports role runs in this process),
    or `auto`: one per core beyond the first, at most MAX_AUTO."""
    value = str(setting).strip().lower()
    if value == AUTO:
        cores = cpus if cpus is not None else (os.cpu_count() or 1)
        return max(0, min(cores - 1, MAX_AUTO))
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(
            f"reports_processes is {setting!r}: give a number of processes (0 or more) or auto"
        )
    return count


def follow_parent() -> None:
    """In a child the gateway started (PARENT_ENV set), before it runs: the kernel sends it
    SIGTERM when the gateway dies, and it ends at once if the gateway died already (before
    this call). Elsewhere (or off Linux) nothing is done."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != parent:
        log.warning("reports_process.orphaned", parent=parent)
        sys.exit(0)


class ReportsProcesses:
    """`count` children running `gateway run --role reports`, watched by a worker thread."""

    def __init__(
        self,
        count: int,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        metrics_port: int = 0,
    ) -> None:
        self._count = count
        self._options = list(options)  # the group's options (`--log-format ...`)
        self._env = dict(os.environ if env is None else env)
        self._metrics_port = metrics_port
        self._children: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        # Why the gateway stops, when a child ended while it ran.
        self.failure: str | None = None

    def start(self) -> None:
        """Start the children. Call it from the main thread: the kernel's signal on the parent's
        death is tied to the thread that started the child, and the main thread lives as long as
        the process."""
        for number in range(1, self._count + 1):
            env = {
                **self._env,
                PARENT_ENV: str(os.getpid()),
                PROCESS_LABEL_ENV: f"reports-{number}",
            }
            # Each process serves its own work's metrics: the children on the next ports.
            env["GATEWAY_METRICS_PORT"] = str(
                self._metrics_port + number if self._metrics_port else 0
            )
            child = subprocess.Popen(
                [sys.executable, "-m", "gateway", *self._options, "run", "--role", "reports"],
                env=env,
                stdin=subprocess.DEVNULL,
            )
            self._children.append(child)
            log.info("reports_process.started", pid=child.pid, number=number)

    def watch(self, stop: threading.Event) -> None:
        """A worker: while the gateway runs, a child that ends stops the gateway."""
        while not stop.wait(0.5):
            for child in self._children:
                code = child.poll()
                if code is not None and not self._stopping.is_set():
                    self.failure = (
                        f"reports process {child.pid} ended ({_exit(code)}); the gateway stops"
                        " so that its service manager restarts it whole"
                    )
                    log.error("reports_process.ended", pid=child.pid, exit=_exit(code))
                    stop.set()
                    return

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM the children, wait for them to end, SIGKILL the late."""
        self._stopping.set()
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self._children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("reports_process.killed", pid=child.pid, after_s=timeout)
                child.kill()
                child.wait()


def _exit(code: int) -> str:
    """A child's end as a person reads it: its exit status, or the signal that killed it."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
