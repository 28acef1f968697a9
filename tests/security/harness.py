"""Drive each corpus case through the real inbound service, `gateway verify` and `gateway parse`,
recording the verdicts, the reasons, the time and the memory each took.

Used by `tests/security/test_hostile_corpus.py` (which asserts the verdicts and reasons, never
the times) and by `scripts/security_table.py` (which prints the table of docs/security.md and
its figures).
Memory is the peak resident set added by a step: the process's high-water mark is reset
(`/proc/self/clear_refs`) before each step and read after it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.bootstrap import build_inbound
from gateway.config import Settings, load_settings
from tests.security.corpus import ACCOUNT, PARTNERS, Case, Keys

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
# Which certificate each partner pins ("bank" unless named), and its window.
PINS = {"bank-old": "expired", "bank-weak": "weak"}


def profile(name: str, mode: str, cert: str, window: str = "") -> str:
    """A corpus partner's profile: its mode, its pinned certificate and the pin's window."""
    # Each partner holds its own treasury account: profiles never share one (bank-a holds the
    # account the corpus's camt.054 and camt.053 files report on).
    account = ACCOUNT if name == "bank-a" else f"74110582710{sum(map(ord, name)):04d}"
    return (
        f'name = "{name}"\nbic = "VBAAVNVX"\naccounts = ["BBAN:{account}"]\n'
        f'[signature]\nmode = "{mode}"\n[[signature.certificates]]\npath = "{cert}"\n{window}'
    )


def make_home(home: Path, keys: Keys) -> Settings:
    """A gateway home with a profile and pinned certificate for every corpus partner."""
    (home / "schemas").symlink_to(ROOT / "schemas")
    partners = home / "conf" / "partners"
    partners.mkdir(parents=True)
    certs = home / "certs"
    certs.mkdir()
    for name, pair in (("bank", keys.bank), ("expired", keys.expired), ("weak", keys.weak)):
        (certs / f"{name}.cert.pem").write_bytes(pair.cert_pem)
    opens = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    windows = {
        "bank-window": "not_after = 2026-06-30T00:00:00Z\n",
        "bank-next": f"not_before = {opens}\n",
    }
    for name, mode in PARTNERS.items():
        cert = f"certs/{PINS.get(name, 'bank')}.cert.pem"
        (partners / f"{name}.toml").write_text(profile(name, mode, cert, windows.get(name, "")))
    return load_settings(home, db_path=str(home / "gateway.db"), keys_dir=str(home / "keys"))


@dataclass(frozen=True)
class Run:
    """What one step (inbound, verify or parse) did with a case, and what it cost."""

    outcome: str
    reason: str
    seconds: float
    added_mb: float


@dataclass(frozen=True)
class Result:
    """A case through the three steps."""

    case: Case
    inbound: Run
    verify: Run
    parse: Run

    @property
    def seconds(self) -> float:
        """The slowest of the three steps."""
        return max(self.inbound.seconds, self.verify.seconds, self.parse.seconds)

    @property
    def added_mb(self) -> float:
        """The most memory any of the three steps added."""
        return max(self.inbound.added_mb, self.verify.added_mb, self.parse.added_mb)


def _status(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def measured(step: Callable[[], T]) -> tuple[T, float, float]:
    """Run `step`; its result, its seconds, and the peak resident memory it added (MB)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    start = time.perf_counter()
    value = step()
    seconds = time.perf_counter() - start
    return value, seconds, max(0, _status("VmHWM") - before) / 1024


@contextlib.contextmanager
def _home(settings: Settings) -> Iterator[None]:
    saved = os.environ.get("GATEWAY_HOME")
    os.environ["GATEWAY_HOME"] = str(settings.home)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("GATEWAY_HOME", None)
        else:
            os.environ["GATEWAY_HOME"] = saved


def cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """The `gateway` command run in this process as a user runs it: exit code, out, err."""
    from gateway.cli import main  # noqa: PLC0415 - the command line only where it is driven

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["gateway", *args]
    code = 0
    try:
        with _home(settings), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


class Driver:
    """One gateway home, its storage and inbound service, and a folder for the CLI's files."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.storage = SqliteStorage(settings.db_file)
        self.service = build_inbound(settings, self.storage)
        self.folder = folder

    def recorded(self, case: Case) -> str:
        """The reason recorded for the case: its quarantine row, or its unmatched line."""
        if case.outcome == "unmatched":
            msg_id = re.search(rb"<MsgId>([^<]*)</MsgId>", case.raw)
            rows = self.storage.query(
                "SELECT reason FROM unmatched WHERE partner = ? AND msg_id = ? ORDER BY id",
                (case.partner, msg_id.group(1).decode() if msg_id else ""),
            )
        else:
            import hashlib  # noqa: PLC0415 - only here

            rows = self.storage.query(
                "SELECT reason FROM quarantine WHERE partner = ? AND sha256 = ?",
                (case.partner, hashlib.sha256(case.raw).hexdigest()),
            )
        return str(rows[0][0]) if rows else "(none)"

    def drive(self, case: Case) -> Result:
        """The case through the inbound service, `gateway verify` and `gateway parse`."""
        outcome, seconds, added = measured(
            lambda: self.service.apply(case.partner, case.raw, case.signature)
        )
        inbound = Run(
            "unmatched" if outcome == "applied" and case.outcome == "unmatched" else outcome,
            self.recorded(case),
            seconds,
            added,
        )
        file = self.folder / f"{case.name}.xml"
        file.write_bytes(case.raw)
        args = ["verify", str(file), "--partner", case.partner]
        if case.signature is not None:
            (self.folder / f"{case.name}.xml.sig").write_bytes(case.signature)
            args += ["--signature", str(self.folder / f"{case.name}.xml.sig")]
        (code, out, err), seconds, added = measured(lambda: cli(self.settings, *args))
        verify = Run(f"exit {code}", out + err, seconds, added)
        (code, out, err), seconds, added = measured(lambda: cli(self.settings, "parse", str(file)))
        parse = Run(f"exit {code}", err if code else "(JSON)", seconds, added)
        file.unlink()
        return Result(case, inbound, verify, parse)
