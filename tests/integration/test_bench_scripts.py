"""The benchmark scripts that time one stage alone still run on the code they time.

They print figures and assert nothing about speed; these runs, at a few hundred transactions,
only hold them to running to the end and printing their figures (a script left behind by a
change of what it wraps fails here, not in the next benchmark series)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_bench_banksim_times_each_stage_of_receive() -> None:
    out = _run("scripts/bench_banksim.py", "--txs", "300", "--repeat", "1")
    assert "pain.001: 300 transactions" in out
    for stage in ("verify signature", "read pain.001", "build", "sign"):
        assert stage in out, out


def test_bench_apply_applies_every_line_on_sqlite() -> None:
    out = _run("scripts/bench_apply.py", "--txs", "300", "--repeat", "1")
    assert "bench_apply: 300 orders, SQLite, 1 runs" in out
    assert "pain.002 applied:" in out and "camt.054 applied:" in out


@pytest.mark.slow
def test_bench_apply_applies_every_line_on_postgres(postgres_url: str) -> None:
    """On the private PostgreSQL (`scripts/postgres`), with the server's CPU beside."""
    out = _run("scripts/bench_apply.py", "--txs", "300", "--repeat", "1", "--db", "postgres")
    assert "bench_apply: 300 orders, PostgreSQL, 1 runs (wall/CPU/PostgreSQL's CPU" in out
    line = next(line for line in out.splitlines() if "camt.054 applied:" in line)
    assert len(line.split(":", 1)[1].strip().split("/")) == 3


@pytest.mark.slow
@pytest.mark.broker
def test_bench_e2e_runs_to_the_last_final_posting_with_its_checks(
    broker_url: str, tmp_path: Path
) -> None:
    """A few hundred orders and five urgent ones through the real gateway, bank simulator,
    broker and the ledger stand-in's own reader: every order's one final posting arrives, and
    the urgent orders' files are seen at the bank (the tap on its inbox)."""
    out = _run(
        "-m", "gateway.bench", "e2e", "--orders", "400", "--urgent", "5", "--json",
        "--workdir", str(tmp_path),
    )  # fmt: skip
    result = json.loads(out)
    assert result["complete"] is True
    assert set(result["checks"].values()) == {0}
    assert result["postings"]["redelivered (dropped by posting id)"] == 0
    finals = result["postings"]["payment_settled"] + result["postings"]["payment_rejected"]
    assert finals == 405
    assert result["urgent_ms"]["arrived"] == 5
    assert result["cpu_s"]["bench (ledger consumer)"] > 0
    # The machine's own account of the same span: its CPUs were busy for the run's processes.
    assert result["machine_s"]["busy"] > result["cpu_s"]["bench (ledger consumer)"]
    assert result["machine_s"]["steal"] >= 0
