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


def configure(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog for the process; events go to `stream` (default stderr)."""
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
    # The pool's own lines (each failed connection attempt, raw on stderr): the gateway's error
    # names the reason instead (`PostgresStorage`), once, in its own log format.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
