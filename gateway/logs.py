"""Structured logs: JSON lines in production, readable console output in a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog for the process; events go to `stream` (default stderr)."""
    out = stream or sys.stderr
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
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
