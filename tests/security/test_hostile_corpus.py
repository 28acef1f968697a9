"""The hostile corpus through the real inbound path: each case refused and quarantined, with why.

Nothing may be fetched or read on the way: a canary web server counts connections and a canary
FIFO notices any reader. Parser bombs also run through `gateway verify` in a child process under a
memory limit and a timeout, so a blow-up fails the test instead of the machine.
"""

from __future__ import annotations

import hashlib
import os
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

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.config import Settings, load_settings
from gateway.service.inbound import InboundService
from tests.security.corpus import PARTNERS, Case, Keys, build, make_keys, reason_is

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
    """A gateway home with the corpus partners, the corpus, and the canaries."""

    settings: Settings
    cases: list[Case]
    canaries: Canaries


def _profile(name: str, mode: str, cert: str, not_after: str | None = None) -> str:
    window = f"\nnot_after = {not_after}" if not_after else ""
    # Each partner holds its own treasury account: profiles never share one.
    account = f"BBAN:74110582710{sum(map(ord, name)):04d}"
    return (
        f'name = "{name}"\nbic = "VBAAVNVX"\naccounts = ["{account}"]\n'
        f'[signature]\nmode = "{mode}"\n[[signature.certificates]]\npath = "{cert}"{window}\n'
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Profiles for every corpus partner, their pinned certificates, and the cases."""
    home = tmp_path_factory.mktemp("home")
    (home / "schemas").symlink_to(ROOT / "schemas")
    partners = home / "conf" / "partners"
    partners.mkdir(parents=True)
    keys: Keys = make_keys()
    certs = home / "certs"
    certs.mkdir()
    for name, pair in (("bank", keys.bank), ("expired", keys.expired), ("weak", keys.weak)):
        (certs / f"{name}.cert.pem").write_bytes(pair.cert_pem)
    pins = {"bank-old": "expired", "bank-weak": "weak"}
    for name, mode in PARTNERS.items():
        window = "2026-06-30T00:00:00Z" if name == "bank-window" else None
        cert = f"certs/{pins.get(name, 'bank')}.cert.pem"
        (partners / f"{name}.toml").write_text(_profile(name, mode, cert, window))
    settings = load_settings(home, db_path=str(home / "gateway.db"), keys_dir=str(home / "keys"))
    canaries = Canaries(home)
    try:
        yield World(settings, build(keys, canaries.fifo, canaries.url), canaries)
    finally:
        canaries.close()


def test_the_corpus_has_at_least_forty_distinct_cases(world: World) -> None:
    """At least 40 cases, each with its own name and its own file."""
    names = [case.name for case in world.cases]
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    assert len({(c.partner, c.raw) for c in world.cases}) == len(world.cases)


def test_every_case_is_refused_with_its_reason_and_quarantined(world: World) -> None:
    """InboundService quarantines each case, keeping the raw file and the expected reason."""
    storage = SqliteStorage(world.settings.db_file)
    service = InboundService(storage, world.settings)
    wrong = []
    for case in world.cases:
        outcome = service.apply(case.partner, case.raw, case.signature)
        rows = storage.query(
            "SELECT reason, length(raw) FROM quarantine WHERE partner = ? AND sha256 = ?",
            (case.partner, hashlib.sha256(case.raw).hexdigest()),
        )
        if outcome != "quarantined" or len(rows) != 1 or not reason_is(case, rows[0][0]):
            wrong.append((case.name, outcome, rows[0][0] if rows else None, case.expect))
        elif rows[0][1] != len(case.raw):
            wrong.append((case.name, "raw file not kept whole", rows[0][1], len(case.raw)))
    assert wrong == []
    (count,) = storage.query("SELECT count(*) FROM quarantine")[0]
    assert count == len(world.cases)


def test_nothing_was_fetched_or_read(world: World) -> None:
    """Neither the canary server nor the canary FIFO was touched by any case."""
    storage = SqliteStorage(world.settings.db_file)
    service = InboundService(storage, world.settings)
    for case in world.cases:
        service.apply(case.partner, case.raw, case.signature)
    time.sleep(0.2)
    assert world.canaries.connections == 0
    assert world.canaries.fifo_opened == 0


BOMBS = ("billion-laughs", "quadratic-blowup", "deep-nesting", "xxe-parameter-entity", "xinclude")


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
    """README's security table (printed by scripts/security_table.py) names every case."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [case.name for case in world.cases if f"| `{case.name}` |" not in readme]
    assert missing == []
