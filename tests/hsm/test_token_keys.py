"""`gateway keys` with the key in an HSM token: generate (self-signed or a request for the CA),
import the CA's certificate, list where each key lives, rotate by date and promote."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.adapters.pkcs11 import TokenKeyStore, set_activation, token_for
from gateway.cli import cli
from gateway.config import Settings, load_settings
from gateway.errors import ConfigError
from gateway.iso20022.pain001 import build_pain001
from gateway.signing import TokenKey, sign, trusted, verify
from tests.unit.factories import benefits_batch


def _env(settings: Settings, home: Path) -> dict[str, str]:
    return {
        "GATEWAY_HOME": str(home),
        "GATEWAY_KEYS_DIR": str(settings.keys_path),
        "GATEWAY_KEY_SOURCE": "pkcs11",
        "GATEWAY_PKCS11_MODULE": settings.pkcs11_module,
        "GATEWAY_PKCS11_TOKEN": settings.pkcs11_token,
    }


def _runner(settings: Settings, home: Path) -> tuple[list[str], object]:
    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(cli, list(args), env=_env(settings, home))
        if ok:
            assert result.exit_code == 0, result.output
        said = result.output + ("" if result.exception is None else str(result.exception))
        outputs.append(said)
        return said

    return outputs, run


def test_generate_list_rotate_in_the_token(token_settings: Settings, tmp_path: Path) -> None:
    """generate --pkcs11 makes the key in the token with a self-signed certificate; list says
    where it lives; rotate prepares the next key with its date in the token; once that date has
    come, the next rotate makes it current and keeps the old one as retired. No output shows the
    PIN."""
    outputs, run = _runner(token_settings, tmp_path)
    out = run("keys", "generate", "--pkcs11", "--valid-from", "2024-01-01T00:00:00+07:00")  # type: ignore[operator]
    assert f"in token {token_settings.pkcs11_token!r} label 'kbnn-gateway'" in out
    cert = x509.load_pem_x509_certificate(
        (token_settings.keys_path / "kbnn-gateway.cert.pem").read_bytes()
    )
    assert cert.not_valid_before_utc == datetime(2023, 12, 31, 17, tzinfo=UTC)
    assert not list(token_settings.keys_path.glob("*.key.pem"))
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    assert "prepared the next key" in run(  # type: ignore[operator]
        "keys", "rotate", "--activate-at", when.isoformat(), "--export", str(tmp_path / "out")
    )
    listing = run("keys", "list")  # type: ignore[operator]
    assert "pkcs11 token" in listing and when.isoformat() in listing
    rows = [json.loads(line) for line in run("keys", "list", "--json").splitlines()]  # type: ignore[operator]
    assert {row["role"] for row in rows} == {"current", "next"}
    assert all(row["where"].startswith("pkcs11 token") for row in rows)
    store = TokenKeyStore(token_for(token_settings), "kbnn-gateway")
    ring = store.ring()
    assert ring.next is not None and ring.next_from == when
    assert ring.signing_pair(when) is ring.next
    assert ring.signing_pair(when - timedelta(seconds=1)) is ring.current
    assert (
        token_settings.keys_path / "kbnn-gateway.next.cert.pem"
    ).read_bytes() == ring.next.cert_pem
    old, following = ring.current.key_id, ring.next.key_id

    # The date comes (moved into the past here): the next rotate promotes.
    token_for(token_settings).run(
        "test", lambda s: set_activation(s, "kbnn-gateway", datetime.now(UTC) - timedelta(days=1))
    )
    later = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0)
    out = run(
        "keys", "rotate", "--activate-at", later.isoformat(), "--export", str(tmp_path / "out")
    )  # type: ignore[operator]
    assert f"{old} is kept as retired" in out
    rows = [json.loads(line) for line in run("keys", "list", "--json").splitlines()]  # type: ignore[operator]
    roles = {row["role"]: row["key_id"] for row in rows}
    assert roles["current"] == following and roles["retired"] == old
    assert (token_settings.keys_path / "retired" / f"kbnn-gateway.{old}.cert.pem").is_file()
    assert "246810" not in "".join(outputs)


def test_a_certificate_request_then_the_cas_certificate(
    token_settings: Settings, tmp_path: Path
) -> None:
    """generate --pkcs11 --csr writes a request signed by the token's key; the certificate a CA
    issues for it is imported beside the key, and the key then signs with it."""
    _, run = _runner(token_settings, tmp_path)
    out = run("keys", "generate", "--pkcs11", "--ec", "--csr")  # type: ignore[operator]
    request_path = tmp_path / "var" / "keys-export" / "kbnn-gateway.csr.pem"
    assert str(request_path) in out
    request = x509.load_pem_x509_csr(request_path.read_bytes())
    assert request.is_signature_valid
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KBNN test CA")])
    now = datetime.now(UTC)
    issued = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_name)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(now + timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "issued.pem").write_bytes(issued.public_bytes(serialization.Encoding.PEM))
    assert "imported the certificate" in run("keys", "import-cert", str(tmp_path / "issued.pem"))  # type: ignore[operator]
    key = TokenKeyStore(token_for(token_settings), "kbnn-gateway").ring().current
    assert isinstance(key, TokenKey)
    signed = sign(build_pain001(benefits_batch(3), "pain.001.001.09"), key)
    verify(signed, issued.public_bytes(serialization.Encoding.PEM))
    assert trusted(key.cert_pem).key_id == key.key_id
    # A certificate of another key is refused.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(stranger.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(stranger, hashes.SHA256())
    )
    (tmp_path / "other.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    out = run("keys", "import-cert", str(tmp_path / "other.pem"), ok=False)  # type: ignore[operator]
    assert "the certificate is not of the key labelled 'kbnn-gateway'" in out


def test_the_pin_is_never_written_in_the_configuration(tmp_path: Path) -> None:
    """A pkcs11_pin key in conf/gateway.toml stops the start with one line saying where it goes."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gateway.toml").write_text('[gateway]\npkcs11_pin = "1234"\n')
    with pytest.raises(ConfigError, match="the PIN is never written in the configuration"):
        load_settings(tmp_path)
