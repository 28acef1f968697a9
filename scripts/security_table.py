"""Print the hostile-input table of docs/security.md from the corpus the tests run, with each
actual reason, the time and memory each case cost, and a summary.

Usage: .venv/bin/python scripts/security_table.py [--summary]

Every case goes through the real InboundService into a throw-away database, then through
`gateway verify` and `gateway parse` (in this process, as a user runs them); the reason shown is
the one recorded in quarantine (or in unmatched), so the table cannot drift from the code. Time
is the slowest of the three steps, memory the most resident memory one of them added.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import logs  # noqa: E402
from tests.security.corpus import build, make_keys, reason_is  # noqa: E402
from tests.security.harness import Driver, Result, make_home  # noqa: E402


def expected(result: Result) -> bool:
    """Whether the case got its verdict and reason everywhere."""
    case = result.case
    refused = case.outcome == "quarantined"
    verify_ok = result.verify.outcome == ("exit 1" if refused else "exit 0")
    return (
        result.inbound.outcome == case.outcome
        and reason_is(case, result.inbound.reason)
        and verify_ok
        and result.parse.outcome in ("exit 0", "exit 1")
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--summary", action="store_true", help="print the summary only")
    summary_only = options.parse_args().summary
    logs.configure("json", "critical", stream=sys.stderr)
    keys = make_keys()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        home.mkdir()
        settings = make_home(home, keys)
        cases = build(keys, home / "never-read", "http://127.0.0.1:9")
        driver = Driver(settings, Path(folder))
        results = []
        if not summary_only:
            print("| # | group | case | attack | verdict and reason recorded | time | memory |")
            print("|---|---|---|---|---|---|---|")
        for number, case in enumerate(cases, start=1):
            result = driver.drive(case)
            results.append(result)
            if summary_only:
                continue
            mark = "" if expected(result) else " **UNEXPECTED**"
            reason = result.inbound.reason.replace("|", "\\|")
            print(
                f"| {number} | {case.group} | `{case.name}` | {case.attack} |"
                f" {result.inbound.outcome}: {reason}{mark} | {result.seconds:.2f} s |"
                f" {result.added_mb:.0f} MB |"
            )
    verdicts = collections.Counter(r.inbound.outcome for r in results)
    slowest = max(results, key=lambda r: r.seconds)
    largest = max(results, key=lambda r: r.added_mb)
    unexpected = [r.case.name for r in results if not expected(r)]
    print()
    print(f"cases {len(results)}: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    print(f"as expected (inbound, verify, parse): {len(results) - len(unexpected)}")
    if unexpected:
        print(f"UNEXPECTED: {', '.join(unexpected)}")
    print(f"worst time: {slowest.seconds:.2f} s ({slowest.case.name})")
    print(f"worst added memory: {largest.added_mb:.0f} MB ({largest.case.name})")


if __name__ == "__main__":
    main()
