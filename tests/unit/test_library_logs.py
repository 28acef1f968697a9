"""The database pool's own log lines: events of the gateway's log in a service, kept back in a
command (whose error names the reason once). Each case in a fresh interpreter: logging's and
structlog's state are the process's own."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import logging, sys
from gateway import logs
logs.configure("json", "info", sys.stdout, pool_warnings={keep})
pool = logging.getLogger("psycopg.pool")
pool.warning("discarding closed connection: %s", "<conn>")
pool.error("a worker failed")
"""


def _events(keep: bool) -> list[dict[str, str]]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(keep=keep)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == ""
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_service_logs_the_pool_warnings_as_its_own_events() -> None:
    warning, error = _events(keep=True)
    assert (warning["event"], warning["level"], warning["logger"]) == (
        "library.log",
        "warning",
        "psycopg.pool",
    )
    assert warning["message"] == "discarding closed connection: <conn>"
    assert (error["level"], error["message"]) == ("error", "a worker failed")


def test_a_command_keeps_the_pool_warnings_back() -> None:
    [error] = _events(keep=False)
    assert (error["level"], error["message"]) == ("error", "a worker failed")
