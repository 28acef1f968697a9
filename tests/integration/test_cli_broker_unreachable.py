"""An admin's command with no broker answering: after `COMMAND_WAIT` seconds, one line naming
the node, the wait and the reason, and exit status 1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.adapters.amqp_connect import COMMAND_WAIT
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # each waits COMMAND_WAIT seconds for the broker


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "command", [["submit", "orders.json"], ["dlq", "list"]], ids=["submit", "dlq-list"]
)
def test_a_command_says_no_broker_answered(tmp_path: Path, command: list[str]) -> None:
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    order = {"schema": "payment-order/1", "order_id": "UNREACHABLE-1", "category": "water"}
    (tmp_path / "orders.json").write_text(json.dumps(order), encoding="utf-8")
    port = _closed_port()
    env = {
        **os.environ,
        "GATEWAY_HOME": str(tmp_path),
        "GATEWAY_DB_URL": "",
        "GATEWAY_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F",
    }

    result = subprocess.run(
        [sys.executable, "-m", "gateway", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), last
    said = f"no broker node accepted a connection within {COMMAND_WAIT:g} s (127.0.0.1:{port})"
    assert said in last
    assert last.endswith(": Connection refused"), last
