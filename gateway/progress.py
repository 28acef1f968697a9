"""Progress of a long run (the demo, the fault harness, the benchmarks) on a terminal.

One status line on stderr, rewritten in place at most every `interval` seconds, and ended with a
newline when the run is done. When stderr is not a terminal (a log file, CI, a pipe), or the
caller asks for machine-readable output (`--json`), nothing at all is written, so the output a
program reads stays what it was.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A status line for a terminal; silent otherwise."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
    ) -> None:
        self._stream = stream or sys.stderr
        # None: on when the stream is a terminal.
        self.enabled = self._stream.isatty() if enabled is None else enabled
        self._label = label
        self._interval = interval
        self._shown_at = float("-inf")
        self._width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        """Show `text` after the label (no more often than the interval, unless forced)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._shown_at < self._interval:
            return
        self._shown_at = now
        line = f"{self._label}: {text}"
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        """Take the line away (before the caller prints a result of its own)."""
        if not self.enabled or not self._width:
            return
        self._stream.write("\r" + " " * self._width + "\r")
        self._stream.flush()
        self._width = 0
        self._shown_at = float("-inf")

    def done(self, text: str | None = None) -> None:
        """End the line (with a last `text`, if given)."""
        if not self.enabled:
            return
        if text is not None:
            self.update(text, force=True)
        if self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0


def quiet() -> Progress:
    """A progress line that shows nothing (`--json`, or a caller that reports otherwise)."""
    return Progress("", enabled=False)
