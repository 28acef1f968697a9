"""Our keys: stored encrypted, loaded with the passphrase, rotated by date, never printed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from structlog.testing import capture_logs

from gateway.bootstrap import our_keyring, our_keys
from gateway.cli import cli
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.signing import keys as keys_module
from gateway.signing.keys import (
    PASSPHRASE_ENV,
    PASSPHRASE_FILE_ENV,
    KeyPair,
    KeyStore,
    ensure_keypair,
    ensure_pair_files,
    generate_keypair,
    load_keyring,
    load_pair,
    passphrase_from_env,
    store_pair,
)

SECRET = b"correct horse battery staple"


def test_an_encrypted_pem_key_needs_its_passphrase(tmp_path: Path) -> None:
    """The key file is encrypted PKCS#8; without or with a wrong passphrase it is refused."""
    key_pem, cert_pem = generate_keypair("KBNN test")
    store_pair(tmp_path, "k", key_pem, cert_pem, SECRET)
    stored = (tmp_path / "k.key.pem").read_bytes()
    # PKCS#8 encrypted: its PEM label says so, and cryptography cannot read it without a password.
    assert b"ENCRYPTED" in stored.splitlines()[0]  # PKCS#8 label, not a legacy Proc-Type header
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(stored, password=None)
    assert (tmp_path / "k.key.pem").stat().st_mode & 0o777 == 0o600
    assert load_pair(tmp_path, "k", SECRET).key_pem == key_pem
    with pytest.raises(ConfigError, match=r"k.key.pem is encrypted: set GATEWAY_KEY_PASSPHRASE"):
        load_pair(tmp_path, "k", None)
    with pytest.raises(ConfigError, match=r"wrong passphrase"):
        load_pair(tmp_path, "k", b"wrong")


def test_a_pkcs12_key_loads_with_its_passphrase(tmp_path: Path) -> None:
    """A .p12 holding key and certificate is used in place of the PEM pair."""
    key_pem, cert_pem = generate_keypair("KBNN p12", curve=True)
    store_pair(tmp_path, "k", key_pem, cert_pem, SECRET, pkcs12_format=True)
    assert not (tmp_path / "k.key.pem").exists()
    assert load_pair(tmp_path, "k", SECRET).cert_pem == cert_pem
    with pytest.raises(ConfigError, match=r"k.p12 cannot be opened: wrong passphrase"):
        load_pair(tmp_path, "k", b"nope")


def test_the_passphrase_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    """The variable wins; else the file it names, without its final newline."""
    (tmp_path / "pass").write_bytes(SECRET + b"\n")
    assert passphrase_from_env({PASSPHRASE_ENV: "abc"}) == b"abc"
    assert passphrase_from_env({PASSPHRASE_FILE_ENV: str(tmp_path / "pass")}) == SECRET
    assert passphrase_from_env({}) is None
    with pytest.raises(ConfigError, match=r"GATEWAY_KEY_PASSPHRASE_FILE=.*missing"):
        passphrase_from_env({PASSPHRASE_FILE_ENV: str(tmp_path / "missing")})


def test_keys_generate_list_rotate(tmp_path: Path) -> None:
    """generate, then rotate prepares the next key for a date, exports its certificate, and the
    key ring signs with it from that date on; no output ever shows a private key."""
    env = {
        "GATEWAY_HOME": str(tmp_path),
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        PASSPHRASE_ENV: SECRET.decode(),
    }
    runner = CliRunner()
    outputs = []

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
        return result.output

    assert "generated kbnn-gateway: key id" in run("keys", "generate")
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    assert "prepared the next key" in run(
        "keys", "rotate", "--activate-at", when.isoformat(), "--export", str(tmp_path / "out")
    )
    listing = run("keys", "list")
    assert "current" in listing and "next" in listing and when.isoformat() in listing
    ring = load_keyring(tmp_path / "keys", "kbnn-gateway", SECRET)
    assert ring.next is not None and ring.next_from == when
    assert ring.signing_pair(when - timedelta(seconds=1)) is ring.current
    assert ring.signing_pair(when) is ring.next
    exported = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert exported == [
        f"kbnn-gateway-{ring.next.key_id}.cert.pem",
        f"kbnn-gateway-{ring.next.key_id}.txt",
    ]
    again = runner.invoke(cli, ["keys", "rotate", "--activate-at", when.isoformat()], env=env)
    assert again.exit_code != 0
    assert "PRIVATE KEY" not in "".join(outputs)


def test_a_rotation_after_the_activation_date_retires_the_old_key(tmp_path: Path) -> None:
    """Once the next key signs, the next rotate makes it current and keeps the old one retired."""
    env = {
        "GATEWAY_HOME": str(tmp_path),
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        PASSPHRASE_ENV: SECRET.decode(),
    }
    runner = CliRunner()
    keys = tmp_path / "keys"
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for args in (["keys", "generate"], ["keys", "rotate", "--activate-at", soon]):
        assert runner.invoke(cli, args, env=env).exit_code == 0
    first = load_keyring(keys, "kbnn-gateway", SECRET)
    assert first.next is not None
    # The activation date has come.
    (keys / "kbnn-gateway.next.activates").write_text("2026-01-01T00:00:00+00:00\n")
    later = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    result = runner.invoke(cli, ["keys", "rotate", "--activate-at", later], env=env)
    assert result.exit_code == 0, result.output
    assert "is now current" in result.output
    second = load_keyring(keys, "kbnn-gateway", SECRET)
    assert second.current.key_id == first.next.key_id
    assert second.next is not None and second.next.key_id not in (first.current.key_id,)
    retired = sorted(p.name for p in (keys / "retired").iterdir())
    assert retired == [
        f"kbnn-gateway.{first.current.key_id}.cert.pem",
        f"kbnn-gateway.{first.current.key_id}.key.pem",
    ]
    listing = runner.invoke(cli, ["keys", "list"], env=env).output
    assert f"retired  {first.current.key_id}" in listing


def test_private_keys_are_never_shown_or_logged(settings: Settings) -> None:
    """A key pair's repr holds no key, and loading our key ring logs no key material."""
    key_pem, cert_pem = generate_keypair("KBNN repr")
    assert b"PRIVATE KEY" in key_pem
    assert "PRIVATE" not in repr(KeyPair(key_pem, cert_pem))
    with capture_logs() as events:
        ring = our_keyring(settings)
    assert events == [
        {
            "event": "key.unencrypted",
            "key": settings.signing_key,
            "hint": "development only: see keys/README.md",
            "log_level": "warning",
        }
    ]
    assert "PRIVATE" not in repr(ring) and "PRIVATE" not in str(events)


def test_the_key_store_takes_up_a_rotation_without_a_restart(tmp_path: Path) -> None:
    """A next key prepared after the store was loaded signs from its date; other names load too."""
    keys = tmp_path / "keys"
    store_pair(keys, "kbnn-gateway", *generate_keypair("now"), SECRET)
    store_pair(keys, "for-vcb", *generate_keypair("vcb"), SECRET)
    store = KeyStore(keys, "kbnn-gateway", SECRET)
    before = store.ring()
    assert before.next is None
    assert store.ring("for-vcb").current.key_id != before.current.key_id
    when = datetime(2027, 1, 1, tzinfo=UTC)
    store_pair(keys, "kbnn-gateway.next", *generate_keypair("next"), SECRET)
    (keys / "kbnn-gateway.next.activates").write_text(when.isoformat())
    after = store.ring()
    assert after.next is not None and after.next_from == when
    assert after.signing_pair(when).key_id != before.current.key_id
    with pytest.raises(ConfigError, match=r"no key 'missing' in .*keys/README.md"):
        store.ring("missing")


def test_a_missing_pair_is_made_once_and_a_start_loads_it_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ensure_pair_files` makes a missing pair and leaves an existing one as it is, loading
    neither; a start (`our_keys`) loads the pair once, through the key store."""
    keys = settings.keys_path
    ensure_pair_files(keys, "kbnn", "KBNN")
    key_file = keys / "kbnn.key.pem"
    made = key_file.read_bytes()
    ensure_pair_files(keys, "kbnn", "KBNN")
    assert key_file.read_bytes() == made
    assert KeyStore(keys, "kbnn", None).ring().current == ensure_keypair(keys, "kbnn", "x")
    loads: list[str] = []
    real = keys_module.load_pair

    def counted(directory: Path, stem: str, passphrase: bytes | None) -> KeyPair:
        loads.append(stem)
        return real(directory, stem, passphrase)

    monkeypatch.setattr(keys_module, "load_pair", counted)
    our_keys(settings)
    assert loads == [settings.signing_key]


def test_a_start_with_a_broken_key_stops_naming_the_file(settings: Settings) -> None:
    """The pair is loaded and checked at start: a damaged key file stops it, named."""
    our_keys(settings)  # made and loaded once
    key_file = settings.keys_path / f"{settings.signing_key}.key.pem"
    key_file.write_bytes(key_file.read_bytes()[:80])  # the generated key, cut short
    with pytest.raises(ConfigError, match=str(key_file)):
        our_keys(settings)


def test_a_key_read_from_its_file_is_not_loaded_again_to_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading an RSA key checks it (about 150 ms of CPU for 3,072 bits): a pair read from its
    files is checked there, and signing with it does not load it a second time."""
    pair = ensure_keypair(tmp_path, "kbnn-once", "KBNN")
    keys_module._loaded.clear()  # as in a process just started: nothing loaded yet
    loaded = load_pair(tmp_path, "kbnn-once", None)
    calls: list[bytes] = []
    real = serialization.load_pem_private_key

    def counted(data: bytes, password: bytes | None, *args: object, **kwargs: object) -> object:
        calls.append(data)
        return real(data, password)

    monkeypatch.setattr(keys_module.serialization, "load_pem_private_key", counted)
    assert loaded.private_key.public_key().public_numbers() == (
        keys_module.private_key(pair.key_pem).public_key().public_numbers()
    )
    assert calls == []
    # A PEM never read from a file is loaded, and checked, once.
    other, _ = generate_keypair("KBNN other")
    keys_module.private_key(other)
    keys_module.private_key(other)
    assert calls == [other]
