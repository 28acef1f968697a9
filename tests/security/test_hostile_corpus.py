"""The hostile corpus through the real inbound path: each case refused and quarantined, with why.

Nothing may be fetched or read on the way: a canary web server counts connections and a canary
FIFO notices any reader. Parser bombs also run through `gateway verify` in a child process under a
memory limit and a timeout, so a blow-up fails the test instead of the machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.reasons import REASON_MAX
from tests.security.corpus import Case, Keys, build, make_keys, reason_is
from tests.security.harness import Driver, Result, make_home

# slow: the whole hostile corpus, bombs in child processes.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


class Canaries:
    """A TCP listener and a FIFO that record whether anything tried to reach them."""

    def __init__(self, directory: Path) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.fifo = directory / "secret.fifo"
        os.mkfifo(self.fifo)
        self.connections = 0
        self.fifo_opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
                self.connections += 1
                connection.close()
            except TimeoutError:
                pass
            try:
                # Opening the write end without blocking succeeds only while someone reads.
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            self.fifo_opened += 1
            os.write(fd, b"secret")
            os.close(fd)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@dataclass
class World:
    """A gateway home with the corpus partners, the corpus, the canaries, and every case driven
    through the inbound service, `gateway verify` and `gateway parse`."""

    settings: Settings
    cases: list[Case]
    canaries: Canaries
    results: list[Result]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Profiles for every corpus partner, their pinned certificates, the cases, and their runs."""
    home = tmp_path_factory.mktemp("home")
    keys: Keys = make_keys()
    settings = make_home(home, keys)
    canaries = Canaries(home)
    try:
        cases = build(keys, canaries.fifo, canaries.url)
        driver = Driver(settings, tmp_path_factory.mktemp("files"))
        yield World(settings, cases, canaries, [driver.drive(case) for case in cases])
    finally:
        canaries.close()


def test_the_corpus_has_at_least_a_hundred_distinct_cases(world: World) -> None:
    """At least 100 cases, each with its own name and its own file, in every group."""
    names = [case.name for case in world.cases]
    assert len(names) >= 100
    assert len(set(names)) == len(names)
    assert len({(c.partner, c.raw) for c in world.cases}) == len(world.cases)
    groups = {case.group for case in world.cases}
    assert {"parser", "limits", "trust", "values", "consistency", "echo"} <= groups


def test_every_case_gets_its_verdict_and_reason_from_the_inbound_service(world: World) -> None:
    """InboundService quarantines each hostile file (or keeps its line unmatched), recording the
    expected reason: one line, at most REASON_MAX characters, no control character."""
    wrong = []
    for result in world.results:
        case, run = result.case, result.inbound
        if run.outcome != case.outcome or not reason_is(case, run.reason):
            wrong.append((case.name, run.outcome, run.reason, case.expect))
        elif len(run.reason) > REASON_MAX or re.search(r"[\x00-\x1f\x7f]", run.reason):
            wrong.append((case.name, "reason not bounded", len(run.reason), run.reason[:80]))
    assert wrong == []


def test_quarantine_keeps_each_refused_file_whole(world: World) -> None:
    """Every quarantined case is kept once, raw file whole, beside its reason."""
    storage = Driver(world.settings, world.settings.home).storage
    quarantined = [c for c in world.cases if c.outcome == "quarantined"]
    for case in quarantined:
        rows = storage.query(
            "SELECT length(raw) FROM quarantine WHERE partner = ? AND sha256 = ?",
            (case.partner, hashlib.sha256(case.raw).hexdigest()),
        )
        assert rows == [(len(case.raw),)], case.name
    assert storage.query("SELECT count(*) FROM quarantine") == [(len(quarantined),)]


def test_verify_gives_the_inbound_verdict_in_one_line(world: World) -> None:
    """`gateway verify` refuses each quarantined case with the same reason in one line (exit 1);
    a file inbound applies is valid (exit 0), naming the entries at odds with their details that
    inbound keeps unmatched (the other unmatched lines need the gateway's orders). Never a
    traceback."""
    wrong = []
    for result in world.results:
        case, run = result.case, result.verify
        lines = run.reason.splitlines()
        refused = case.outcome == "quarantined"
        word = "NOT valid: " if refused else ": valid "
        if run.outcome != ("exit 1" if refused else "exit 0"):
            wrong.append((case.name, run.outcome, run.reason[:300]))
        elif len(lines) != 1 or word not in lines[0]:
            wrong.append((case.name, "not one line", run.reason[:300]))
        elif (refused or case.group == "consistency") and not reason_is(case, lines[0]):
            wrong.append((case.name, "other reason", lines[0][:300], case.expect))
    assert wrong == []


def test_parse_reads_or_refuses_in_one_line(world: World) -> None:
    """`gateway parse` prints JSON or refuses in one bounded line (exit 1); never a traceback,
    and every file over a limit or against a value rule is refused."""
    wrong = []
    for result in world.results:
        run = result.parse
        refused = run.outcome == "exit 1" and len(run.reason.splitlines()) == 1
        if not (run.outcome == "exit 0" or refused) or "Traceback" in run.reason:
            wrong.append((result.case.name, run.outcome, run.reason[:300]))
        elif result.case.group in ("limits", "values") and not refused:
            wrong.append((result.case.name, "parsed", result.case.expect))
    assert wrong == []


def test_nothing_was_fetched_or_read(world: World) -> None:
    """Neither the canary server nor the canary FIFO was touched by any case."""
    time.sleep(0.2)
    assert world.canaries.connections == 0
    assert world.canaries.fifo_opened == 0


BOMBS = (
    "billion-laughs",
    "quadratic-blowup",
    "deep-nesting",
    "xxe-parameter-entity",
    "xinclude",
    "attributes-300k",
    "nesting-250x2000",
    "empty-elements-20mb",
    "size-190mb",
)


@pytest.mark.parametrize("name", BOMBS)
def test_parser_bombs_stay_bounded_in_a_child_process(
    world: World, name: str, tmp_path: Path
) -> None:
    """`gateway verify` refuses each bomb under a 1 GiB address-space limit and a timeout."""
    case = next(c for c in world.cases if c.name == name)
    file = tmp_path / f"{name}.xml"
    file.write_bytes(case.raw)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gateway"),
            "verify",
            str(file),
            "--partner",
            case.partner,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        env={**os.environ, "GATEWAY_HOME": str(world.settings.home)},
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "NOT valid" in result.stdout
    assert reason_is(case, result.stdout), result.stdout


def test_the_readme_table_lists_every_case(world: World) -> None:
    """The security table of docs/security.md (printed by scripts/security_table.py) names
    every case."""
    readme = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    missing = [case.name for case in world.cases if f"| `{case.name}` |" not in readme]
    assert missing == []
