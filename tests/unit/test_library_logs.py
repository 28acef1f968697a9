"""The database pool's own log lines: events of the gateway's log in a service, kept back in a
command (whose error names the reason once)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from gateway import logs


@pytest.fixture(autouse=True)
def _configured_back() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    pool = logging.getLogger("psycopg.pool")
    pool.handlers, pool.propagate = [], True
    pool.setLevel(logging.NOTSET)


def test_a_service_logs_the_pool_warnings_as_its_own_events() -> None:
    out = io.StringIO()
    logs.configure("json", "info", out, pool_warnings=True)
    logging.getLogger("psycopg.pool").warning("discarding closed connection: %s", "<conn>")
    [line] = out.getvalue().splitlines()
    event = json.loads(line)
    assert (event["event"], event["level"], event["logger"]) == (
        "library.log",
        "warning",
        "psycopg.pool",
    )
    assert event["message"] == "discarding closed connection: <conn>"


def test_a_command_keeps_the_pool_warnings_back() -> None:
    out = io.StringIO()
    logs.configure("json", "info", out, pool_warnings=False)
    logging.getLogger("psycopg.pool").warning("error connecting in 'gateway': refused")
    assert out.getvalue() == ""
    logging.getLogger("psycopg.pool").error("a worker failed")
    assert json.loads(out.getvalue())["message"] == "a worker failed"
