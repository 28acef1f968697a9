"""`gateway run` serves the console when configured: bound to 127.0.0.1 by default, answering
pages over HTTP, and stopped with the other workers."""

from __future__ import annotations

import socket
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import httpx

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.bootstrap import start_console
from gateway.config import Settings
from gateway.runtime import Runtime


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_console_runs_as_a_worker_and_stops_with_the_runtime(
    settings: Settings, tmp_path: Path
) -> None:
    """The console answers on its port while the runtime runs, and no more once it stops."""
    port = free_port()
    settings = replace(
        settings, console_port=port, console_secret_file=str(tmp_path / "console.secret")
    )
    assert settings.console_address == "127.0.0.1"
    storage = SqliteStorage(tmp_path / "gateway.db")
    runtime = Runtime()
    start_console(settings, storage, runtime)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the console never answered"
                time.sleep(0.1)
        assert page.status_code == 200 and "Đăng nhập" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False).status_code == 303
        secret = tmp_path / "console.secret"
        assert secret.stat().st_mode & 0o077 == 0  # the cookie secret is the owner's alone
    finally:
        runtime.stop()
        storage.close()
    with closing(socket.socket()) as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
