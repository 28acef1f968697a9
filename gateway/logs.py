"""Structured logs: JSON lines in production, readable console output in a terminal."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog

# Set by `gateway run` for the processes it starts (e.g. "reports-1"): their lines, in the same
# log as the gateway's own, say which process wrote them.
PROCESS_LABEL_ENV = "GATEWAY_PROCESS_LABEL"


class _Forwarded(logging.Handler):
    """A library's log records as the gateway's events (`library.log`, its logger's name and
    words), in the gateway's format, instead of raw lines beside them."""

    def emit(self, record: logging.LogRecord) -> None:
        structlog.get_logger(record.name).log(
            record.levelno, "library.log", logger=record.name, message=record.getMessage()
        )


def configure(
    fmt: str = "json",
    level: str = "info",
    stream: TextIO | None = None,
    *,
    pool_warnings: bool = True,
) -> None:
    """Set up structlog for the process; events go to `stream` (default stderr). Without
    `pool_warnings` (a command, not a service), PostgreSQL's pool keeps its warnings (each
    failed connection attempt) to itself: the command's error names the reason once."""
    out = stream or sys.stderr
    label = os.environ.get(PROCESS_LABEL_ENV, "")

    def process_label(
        _logger: object, _name: str, event: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        if label:
            event.setdefault("process", label)
        return event

    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            process_label,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    # The pool's lines (a broken connection discarded, a reconnection failed) as events of the
    # gateway's log; a command's error says the reason once instead.
    pool = logging.getLogger("psycopg.pool")
    pool.handlers = [_Forwarded()]
    pool.propagate = False
    pool.disabled = False  # a logging configuration applied before may have disabled it
    pool.setLevel(logging.WARNING if pool_warnings else logging.ERROR)
