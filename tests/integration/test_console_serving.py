"""`gateway run` serves the console when configured: bound to 127.0.0.1 by default, answering
pages over HTTP, and stopped with the other workers."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.bootstrap import start_console
from gateway.config import Settings
from gateway.errors import ConfigError
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


def test_console_tls_files_it_cannot_serve_with_stop_the_start(
    settings: Settings, tmp_path: Path
) -> None:
    """A certificate file that is missing is said at the start, naming the setting and the
    file, as `gateway console` says it: not left to the first page asked for."""
    missing = tmp_path / "nocert.pem"
    settings = replace(
        settings,
        console_port=free_port(),
        console_secret_file=str(tmp_path / "console.secret"),
        console_tls_cert=str(missing),
    )
    storage = SqliteStorage(tmp_path / "gateway.db")
    runtime = Runtime()
    try:
        with pytest.raises(ConfigError, match=f"console_tls_cert {missing}: No such file"):
            start_console(settings, storage, runtime)
    finally:
        runtime.stop()
        storage.close()


def test_a_port_taken_is_logged_and_the_gateway_runs_on(settings: Settings, tmp_path: Path) -> None:
    """Another program on the console's port: the console says so in the log, naming the
    address, and its worker ends; the runtime's other workers go on."""
    with closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        settings = replace(
            settings, console_port=port, console_secret_file=str(tmp_path / "console.secret")
        )
        storage = SqliteStorage(tmp_path / "gateway.db")
        runtime = Runtime()
        beside = threading.Event()
        runtime.add("beside", lambda stop: (beside.set(), stop.wait()))
        try:
            with capture_logs() as logs:
                start_console(settings, storage, runtime)
                deadline = time.monotonic() + 30
                while not [e for e in logs if e["event"] == "console.unavailable"]:
                    assert time.monotonic() < deadline, "the console never said it was unavailable"
                    time.sleep(0.1)
            said = next(e for e in logs if e["event"] == "console.unavailable")
            assert said["error"].startswith(f"console cannot listen on 127.0.0.1 port {port}:")
            assert beside.is_set()
        finally:
            runtime.stop()
            storage.close()
