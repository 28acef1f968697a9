"""The progress line of long runs: on a terminal it is one line rewritten in place; anywhere
else, or when asked for JSON, nothing at all is written."""

from __future__ import annotations

import io

from gateway.progress import Progress, quiet


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_line_is_rewritten_and_ended() -> None:
    """Each update rewrites the line from its start, padded over a longer one; done ends it."""
    screen = Terminal()
    progress = Progress("demo", stream=screen, interval=0)
    progress.update("orders final 10 of 3,679, files sent 1, bank reports 0")
    progress.update("orders final 3,679 of 3,679")
    progress.done()
    written = screen.getvalue()
    assert written.count("\r") == 2
    assert written.endswith("\n") and written.count("\n") == 1
    last = written.rsplit("\r", 1)[1]
    assert last.startswith("demo: orders final 3,679 of 3,679")
    assert len(last.rstrip("\n")) == len(
        "demo: orders final 10 of 3,679, files sent 1, bank reports 0"
    )


def test_updates_closer_than_the_interval_are_skipped_unless_forced() -> None:
    """A busy loop does not flood the terminal: one line per interval, a forced one always."""
    screen = Terminal()
    progress = Progress("soak", stream=screen, interval=3600)
    progress.update("first")
    progress.update("second")
    progress.update("third", force=True)
    assert "first" in screen.getvalue()
    assert "second" not in screen.getvalue()
    assert "third" in screen.getvalue()


def test_clear_takes_the_line_away() -> None:
    """Before a result is printed the line is blanked and the cursor back at its start."""
    screen = Terminal()
    progress = Progress("bench", stream=screen, interval=0)
    progress.update("case 1 of 3")
    progress.clear()
    assert screen.getvalue().endswith("\r" + " " * len("bench: case 1 of 3") + "\r")
    progress.done()  # nothing left to end
    assert not screen.getvalue().endswith("\n")


def test_nothing_is_written_when_not_a_terminal_or_when_turned_off() -> None:
    """A pipe or a file gets nothing; neither does a terminal when the caller asks for JSON."""
    pipe = io.StringIO()
    for progress in (
        Progress("demo", stream=pipe, interval=0),
        Progress("demo", stream=Terminal(), enabled=False),
        quiet(),
    ):
        progress.update("orders final 1 of 2", force=True)
        progress.done("finished")
    assert pipe.getvalue() == ""
    assert not Progress("demo", stream=pipe).enabled
