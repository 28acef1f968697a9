"""CPU seconds the processes of a benchmark run spent, read from Linux's /proc.

On a 2-core machine every process of the run (gateways, bank simulator, RabbitMQ, PostgreSQL
and the benchmark's own ledger consumer) shares the same two cores: how fast the run can go is
bounded by their total CPU time as much as by any one of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def cpu_seconds(pid: int) -> float:
    """User and system time of one process (all its threads), 0 when it is gone."""
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _pids() -> Iterable[int]:
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if entry.name.isdigit():
            yield int(entry.name)


def _read(pid: int, name: str) -> bytes:
    try:
        return (_PROC / str(pid) / name).read_bytes()
    except OSError:
        return b""


def broker_pids(node: str) -> list[int]:
    """The Erlang VM of the local RabbitMQ node `node` (as scripts/broker names it)."""
    wanted = f"RABBITMQ_NODENAME={node}".encode()
    return [
        pid
        for pid in _pids()
        if b"beam" in _read(pid, "comm") and wanted in _read(pid, "environ").split(b"\0")
    ]


def postgres_pids(data_dir: Path) -> list[int]:
    """The PostgreSQL server on `data_dir` and its processes (backends, checkpointer, ...)."""
    marker = str(data_dir).encode()
    servers = {
        pid
        for pid in _pids()
        if _read(pid, "comm").strip() == b"postgres" and marker in _read(pid, "cmdline")
    }
    children = [
        pid
        for pid in _pids()
        if _read(pid, "comm").strip() == b"postgres" and _parent(pid) in servers
    ]
    return [*servers, *children]


def child_pids(parent: int) -> list[int]:
    """The processes `parent` started (`gateway run`'s reports processes).

    Read from the kernel's list of each of its threads' children: a scan of every process's
    stat costs the benchmark a CPU-second a run, on the cores the gateway is measured on."""
    tasks = _PROC / str(parent) / "task"
    try:
        threads = list(tasks.iterdir())
    except OSError:  # `parent` is gone
        return []
    if threads and not (threads[0] / "children").exists():  # a kernel without the lists
        return [pid for pid in _pids() if _parent(pid) == parent]
    found: set[int] = set()
    for thread in threads:
        try:
            found.update(int(pid) for pid in (thread / "children").read_bytes().split())
        except OSError:  # this thread ended meanwhile (its children went to another one)
            continue
    return sorted(found)


def _parent(pid: int) -> int:
    try:
        return int(_read(pid, "stat").rsplit(b")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


def server_groups(database: str, root: Path) -> dict[str, Callable[[], list[int]]]:
    """The servers a benchmark on this checkout (`root`) shares its cores with, by name:
    its RabbitMQ node (GATEWAY_RABBIT_NODE) and, on `database` "postgres", its PostgreSQL."""
    node = os.environ.get("GATEWAY_RABBIT_NODE", "gateway@localhost")
    groups: dict[str, Callable[[], list[int]]] = {"RabbitMQ": lambda: broker_pids(node)}
    if database == "postgres":
        data = root / "var" / "postgres" / "data"
        groups["PostgreSQL"] = lambda: postgres_pids(data)
    return groups


class CpuMeter:
    """CPU seconds of named groups of processes between `start` and `read`: a process started
    in between counts whole, one ended in between is not seen."""

    def __init__(
        self, groups: dict[str, Callable[[], list[int]]], own: str = "bench (ledger consumer)"
    ) -> None:
        self._groups = groups
        self._own_name = own
        self._start: dict[int, float] = {}
        self._own = 0.0

    def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for find in self._groups.values() for pid in find()}
        times = os.times()
        self._own = times.user + times.system

    def read(self) -> dict[str, float]:
        """Seconds by group, and this process's own (named `own`)."""
        spent = {
            name: sum(max(0.0, cpu_seconds(pid) - self._start.get(pid, 0.0)) for pid in find())
            for name, find in self._groups.items()
        }
        times = os.times()
        spent[self._own_name] = times.user + times.system - self._own
        return spent


# The columns of /proc/stat's `cpu` line (all CPUs together), in clock ticks.
_STAT_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_ticks(stat: str | None = None) -> dict[str, int]:
    """The machine's CPU time so far by kind, from /proc/stat (or the text given)."""
    if stat is None:
        try:
            stat = (_PROC / "stat").read_text()
        except OSError:
            return {}
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(value) for value in fields[1 : 1 + len(_STAT_COLUMNS)]]
            return dict(zip(_STAT_COLUMNS, values, strict=False))
    return {}


def machine_seconds(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Where the machine's CPUs went between two readings: `busy` (running any process, the
    kernel included), `idle`, `iowait` (idle with a disk write or read pending) and `steal`
    (the hypervisor ran another guest on a CPU this machine was given). Stolen time is in no
    process's CPU seconds: a run that loses it takes longer with the same work."""
    if not before or not after:
        return {}
    spent = {kind: (after.get(kind, 0) - before.get(kind, 0)) / _TICKS for kind in after}
    busy = sum(spent.get(kind, 0.0) for kind in ("user", "nice", "system", "irq", "softirq"))
    return {
        "busy": busy,
        "idle": spent.get("idle", 0.0),
        "iowait": spent.get("iowait", 0.0),
        "steal": spent.get("steal", 0.0),
    }


def render_machine(spent: dict[str, float]) -> str:
    """One line of where the machine's CPUs went, as the benchmarks print it."""
    return (
        f"the machine's CPUs in the same span: busy {spent.get('busy', 0.0):.1f} s,"
        f" idle {spent.get('idle', 0.0):.1f} s, idle while waiting for the disk"
        f" {spent.get('iowait', 0.0):.1f} s, stolen by the hypervisor"
        f" {spent.get('steal', 0.0):.1f} s"
    )
