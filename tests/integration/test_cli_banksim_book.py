"""`gateway bank-sim --book FILE`: a book file that is missing or unreadable is an error naming
it, not a bank that silently refuses no account."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.banksim.wiring import load_book
from gateway.errors import ConfigError
from tests.conftest import ROOT


def test_a_missing_book_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nofile.json"

    with pytest.raises(ConfigError, match=r"nofile\.json: No such file or directory"):
        load_book(missing)


def test_a_folder_as_book_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"bank book {tmp_path}: Is a directory")):
        load_book(tmp_path)


def test_no_book_is_a_bank_that_refuses_no_account(tmp_path: Path) -> None:
    book = load_book(None)

    assert not book.closed and not book.unknown


@pytest.mark.parametrize("kind", ["missing", "unreadable"])
def test_bank_sim_refuses_an_unreadable_book_before_the_broker(tmp_path: Path, kind: str) -> None:
    """Said at once, naming the file, with the broker unreachable (asking it would take a
    minute of retries): the book is read before anything else."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    env = {**os.environ, "GATEWAY_HOME": str(tmp_path), "GATEWAY_DB_URL": ""}
    env["GATEWAY_AMQP_URL"] = "amqp://guest:guest@127.0.0.1:1/%2F"
    book = tmp_path / "book.json"
    if kind == "unreadable":
        book.write_bytes(b"\xff\xfe not text")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "bank-sim", "--book", str(book)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert "Traceback" not in result.stderr and "broker" not in result.stderr
    if kind == "missing":
        assert result.returncode == 2
        assert f"Invalid value for '--book': File '{book}' does not exist." in result.stderr
    else:
        assert result.returncode == 1
        assert result.stderr.strip().startswith(f"error: bank book {book}: not UTF-8")
