"""`gateway keys list` and `gateway keys rotate` on bad input: a broken certificate in the keys
folder is named without hiding the other keys, and a rotation that cannot export its
certificate for the banks leaves the keys folder as it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.cli import cli
from gateway.commands import keys as keys_command
from gateway.errors import ConfigError
from gateway.signing.keys import PASSPHRASE_ENV

SECRET = "a passphrase for the tests"
NAME = "kbnn-gateway"


def gateway(home: Path, *args: str) -> Result:
    """`gateway ARGS` in `home`, keys in home/keys, encrypted with SECRET."""
    env = {
        "GATEWAY_HOME": str(home),
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_DB_URL": "",
        PASSPHRASE_ENV: SECRET,
    }
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose keys folder holds our current key."""
    result = gateway(tmp_path, "keys", "generate")
    assert result.exit_code == 0, result.output
    return tmp_path


def later() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()


def test_keys_list_names_a_broken_certificate_and_still_lists_the_others(home: Path) -> None:
    broken = home / "keys" / "partner-x.cert.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n", encoding="utf-8")

    result = gateway(home, "keys", "list")

    assert isinstance(result.exception, ConfigError)  # `error: ...` and exit 1 from main()
    assert str(broken) in str(result.exception)
    lines = result.output.splitlines()
    current = [line for line in lines if line.startswith("current")]
    assert len(current) == 1 and "RSA-3072" in current[0]
    (unreadable,) = [line for line in lines if str(broken) in line]
    assert "(unreadable)" in unreadable and "UNREADABLE: certificate cannot be loaded" in unreadable


def test_keys_list_json_gives_the_reason_of_a_broken_certificate(home: Path) -> None:
    broken = home / "keys" / "partner-x.cert.pem"
    broken.write_bytes(b"\x00\x01 not a certificate")

    result = gateway(home, "keys", "list", "--json")

    assert isinstance(result.exception, ConfigError)
    rows = {row["file"]: row for row in map(json.loads, result.output.splitlines())}
    assert rows[str(broken)]["key_id"] == "(unreadable)"
    assert "certificate cannot be loaded" in rows[str(broken)]["error"]
    assert rows[str(home / "keys" / f"{NAME}.cert.pem")]["role"] == "current"


@pytest.mark.parametrize("where", ["under-a-file", "a-file", "proc"])
def test_keys_rotate_to_an_unwritable_export_folder_changes_nothing(home: Path, where: str) -> None:
    blocker = home / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    target = {
        "under-a-file": blocker / "out",
        "a-file": blocker,
        "proc": Path("/proc/x"),
    }[where]
    before = sorted(p.name for p in (home / "keys").iterdir())

    result = gateway(home, "keys", "rotate", "--activate-at", later(), "--export", str(target))

    assert isinstance(result.exception, ConfigError)
    assert f"export folder {target}" in str(result.exception)
    assert sorted(p.name for p in (home / "keys").iterdir()) == before
    # Once the folder is right, the same rotation is not refused as "already prepared".
    retry = gateway(home, "keys", "rotate", "--activate-at", later(), "--export", str(home / "ok"))
    assert retry.exit_code == 0, retry.output
    assert len(list((home / "ok").glob(f"{NAME}-*.cert.pem"))) == 1


def test_keys_rotate_that_cannot_store_the_next_key_removes_its_export(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, data: bytes, mode: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keys_command, "write_atomically", disk_full)
    out = home / "out"
    before = sorted(p.name for p in (home / "keys").iterdir())

    result = gateway(home, "keys", "rotate", "--activate-at", later(), "--export", str(out))

    assert result.exit_code != 0
    assert sorted(p.name for p in (home / "keys").iterdir()) == before
    assert list(out.iterdir()) == []


def test_keys_rotate_names_its_export_only_once_the_key_is_stored(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the next key is being stored the export's files end in `.part` (a run killed then
    leaves no certificate a bank could pin for a key that does not exist); after, they have
    their names, and the certificate is the stored next key's."""
    out = home / "out"
    seen: list[list[str]] = []
    store = keys_command.store_pair

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(sorted(p.name for p in out.iterdir()))
        return store(*args, **kwargs)

    monkeypatch.setattr(keys_command, "store_pair", watched)
    result = gateway(home, "keys", "rotate", "--activate-at", later(), "--export", str(out))

    assert result.exit_code == 0, result.output
    [while_storing] = seen
    assert while_storing and all(name.endswith(".part") for name in while_storing)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(name.removesuffix(".part") for name in while_storing)
    [cert] = [out / name for name in names if name.endswith(".cert.pem")]
    assert cert.read_bytes() == (home / "keys" / f"{NAME}.next.cert.pem").read_bytes()
