"""A partner with signature mode `none` that pins no certificate: every command works with it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.banksim.messages import build_camt052
from gateway.bootstrap import open_database
from gateway.config import load_settings
from gateway.iso20022.model import Entry, Notification, StatusReport
from gateway.iso20022.pain002 import build_pain002
from gateway.iso20022.xml import to_bytes
from tests.conftest import ROOT
from tests.integration.gateway_process import start_until

GATEWAY = str(Path(sys.executable).parent / "gateway")

PLAIN = """\
# A bank relying on transport-level security only: no signatures, no pinned certificate.
name = "plainbank"
bic = "PLNBVNVX"
transport = "amqp"
accounts = ["BBAN:990000000001"]
status_deadline_minutes = 60

[signature]
mode = "none"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A gateway home with the project's partners and one unsigned partner without certificate."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / "conf" / "partners" / "plainbank.toml").write_text(PLAIN, encoding="utf-8")
    return tmp_path


def _env(home: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "GATEWAY_HOME": str(home),
        "GATEWAY_AMQP_URL": url,
        "GATEWAY_METRICS_PORT": "0",
        "GATEWAY_LOG_FORMAT": "json",
    }


def _start_until(home: Path, url: str, args: list[str], ready: str) -> subprocess.Popen[str]:
    """Start `gateway ARGS` and wait for the line saying it runs (or for it to die)."""
    return start_until(args, _env(home, url), ready)


def _stop(process: subprocess.Popen[str]) -> str:
    """Stop it (SIGTERM) and return the rest of its stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail("did not stop on SIGTERM:\n" + err[-3000:])
    return err


@pytest.mark.usefixtures("broker_url")
@pytest.mark.slow  # starts a real `gateway run` and waits for it
def test_gateway_run_starts_with_an_unsigned_partner_without_certificate(
    home: Path, broker_url: str
) -> None:
    """`gateway run` starts and stops cleanly with a mode-none partner that pins nothing."""
    process = _start_until(home, broker_url, ["run"], "gateway running against")
    time.sleep(1.0)
    assert process.poll() is None, "the gateway died after starting"
    err = _stop(process)
    assert "IndexError" not in err and "worker.crashed" not in err


@pytest.mark.usefixtures("broker_url")
@pytest.mark.slow  # starts a real `gateway bank-sim` and waits for it
def test_bank_sim_serves_an_unsigned_partner_without_certificate(
    home: Path, broker_url: str
) -> None:
    """`gateway bank-sim` for that partner runs without any key or certificate of the bank's."""
    process = _start_until(
        home, broker_url, ["bank-sim", "--partner", "plainbank"], "bank simulator for plainbank"
    )
    err = _stop(process)
    assert "Traceback" not in err and "worker.crashed" not in err
    assert not list((home / "keys").glob("banksim-plainbank*"))


def test_status_and_verify_with_an_unsigned_partner(home: Path, tmp_path: Path) -> None:
    """`gateway status` works and `gateway verify` takes an unsigned report from that partner."""
    env = {**os.environ, "GATEWAY_HOME": str(home)}
    # Created minutes ago: `verify` judges the file at this moment, within the partner's tolerance.
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    report = StatusReport(
        msg_id="PLN-STS-1",
        created_at=created,
        original_msg_id="KBNN-1",
        original_msg_name_id="pain.001.001.09",
        group_status="ACCP",
        transactions=(),
    )
    path = tmp_path / "report.xml"
    path.write_bytes(to_bytes(build_pain002(report)))
    verified = subprocess.run(
        [GATEWAY, "verify", str(path), "--partner", "plainbank"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr + verified.stdout
    assert "valid pain.002" in verified.stdout and "unsigned (mode none)" in verified.stdout
    intraday = tmp_path / "intraday.xml"
    entries = Notification(
        msg_id="PLN-IDR-1",
        created_at=created,
        account="990000000001",
        entries=(
            Entry(
                amount=Decimal("540000"),
                currency="VND",
                credit_debit="DBIT",
                status="PDNG",
                booking_date=None,
                value_date=None,
                account_servicer_ref="PLN-1",
            ),
        ),
    )
    intraday.write_bytes(to_bytes(build_camt052(entries, "PLN-IDR-1")))
    checked = subprocess.run(
        [GATEWAY, "verify", str(intraday), "--partner", "plainbank"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "valid camt.052.001.08 from plainbank, unsigned (mode none)" in checked.stdout
    # `gateway run` creates the database that status reads; create it as run would.
    open_database(load_settings(home)).close()
    status = subprocess.run(
        [GATEWAY, "status"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert status.returncode == 0, status.stderr
