"""`gateway console` on bad input: a port out of range, an address that does not resolve, a port
taken and TLS files missing or not PEM are each said naming the option, setting or file, before
the console says where it serves; it says so once its socket listens."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gateway.bootstrap import open_database
from gateway.cli import cli
from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.signing.keys import generate_keypair


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with an empty SQLite database (the console opens an existing one)."""
    monkeypatch.setenv("GATEWAY_DB_URL", "")
    open_database(load_settings(tmp_path)).close()
    return tmp_path


def console(home: Path, *args: str, **env: str) -> Result:
    environment = {"GATEWAY_HOME": str(home), "GATEWAY_DB_URL": "", **env}
    return CliRunner().invoke(cli, ["console", *args], env=environment)


def with_tls(home: Path, cert: str, key: str) -> Result:
    """`gateway console --port 0` with these files (under home) as its TLS certificate and key."""
    return console(home, "--port", "0", GATEWAY_CONSOLE_TLS_CERT=cert, GATEWAY_CONSOLE_TLS_KEY=key)


@pytest.fixture
def taken() -> Iterator[int]:
    """A port of 127.0.0.1 some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_port_out_of_range_is_a_usage_error(home: Path) -> None:
    result = console(home, "--port", "99999")

    assert result.exit_code == 2
    assert "'--port'" in result.output and "99999" in result.output
    assert "console at" not in result.output


def test_an_address_that_does_not_resolve_is_named(home: Path) -> None:
    result = console(home, "--address", "no-such-host.invalid", "--port", "0")

    assert isinstance(result.exception, ConfigError)
    assert "console address 'no-such-host.invalid'" in str(result.exception)
    assert "console at" not in result.output


def test_a_port_taken_is_named_before_the_console_says_it_serves(home: Path, taken: int) -> None:
    result = console(home, "--port", str(taken))

    assert isinstance(result.exception, ConfigError)
    assert f"console cannot listen on 127.0.0.1 port {taken}" in str(result.exception)
    assert "console at" not in result.output


def test_a_missing_tls_certificate_names_its_setting_and_path(home: Path) -> None:
    result = with_tls(home, "tls/console.pem", "tls/console.key")

    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert message.startswith(f"console_tls_cert {home / 'tls' / 'console.pem'}")
    assert "No such file or directory" in message


def test_tls_files_that_are_not_pem_are_named(home: Path) -> None:
    (home / "console.pem").write_text("not a certificate", encoding="utf-8")
    (home / "console.key").write_text("not a key", encoding="utf-8")

    result = with_tls(home, "console.pem", "console.key")

    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert str(home / "console.pem") in message and str(home / "console.key") in message
    assert "not a PEM certificate" in message


def test_tls_files_that_are_a_certificate_and_its_key_are_taken(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_pem, cert_pem = generate_keypair("console", curve=True)
    (home / "console.key").write_bytes(key_pem)
    (home / "console.pem").write_bytes(cert_pem)
    served = serve_with(monkeypatch)

    result = with_tls(home, "console.pem", "console.key")

    assert result.exit_code == 0, result.output
    assert f"console at https://127.0.0.1:{served['port']}/ ; Ctrl-C stops" in result.output


def serve_with(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A console server standing in for uvicorn's: its run() connects to the sockets it is
    given, to show they listen before it serves; what it saw is in the returned dict."""
    seen: dict[str, Any] = {}

    class Server:
        def run(self, sockets: list[socket.socket]) -> None:
            port = sockets[0].getsockname()[1]
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                seen["port"] = port

    def console_server(*args: Any, **kwargs: Any) -> Server:
        return Server()

    monkeypatch.setattr("gateway.bootstrap.console_server", console_server)
    return seen


def test_port_zero_says_the_port_it_listens_on(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = serve_with(monkeypatch)

    result = console(home, "--port", "0")

    assert result.exit_code == 0, result.output
    assert served["port"] != 0
    assert f"console at http://127.0.0.1:{served['port']}/ ; Ctrl-C stops" in result.output


def test_a_certificate_file_holding_its_key_too_is_taken(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One PEM with the key and the certificate, console_tls_key unset: as uvicorn takes it."""
    key_pem, cert_pem = generate_keypair("console", curve=True)
    (home / "console.pem").write_bytes(key_pem + cert_pem)
    served = serve_with(monkeypatch)

    result = console(home, "--port", "0", GATEWAY_CONSOLE_TLS_CERT="console.pem")

    assert result.exit_code == 0, result.output
    assert f"console at https://127.0.0.1:{served['port']}/ ; Ctrl-C stops" in result.output


def test_a_key_without_its_certificate_is_named(home: Path) -> None:
    key_pem, _ = generate_keypair("console", curve=True)
    (home / "console.key").write_bytes(key_pem)

    result = console(home, "--port", "0", GATEWAY_CONSOLE_TLS_KEY="console.key")

    assert isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith("console_tls_key is set without console_tls_cert")


def test_an_empty_address_is_every_interface(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """console_address "" listens on every interface (as it did through asyncio)."""
    served = serve_with(monkeypatch)

    result = console(home, "--port", "0", GATEWAY_CONSOLE_ADDRESS="")

    assert result.exit_code == 0, result.output
    assert served["port"] > 0
