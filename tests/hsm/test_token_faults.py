"""An HSM that cannot sign (module missing, PIN refused, token removed, session gone) is one
clear line and a transient fault: the batch waits in `received`, nobody is rejected, and it
leaves once the token is back. The PIN is never logged."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.adapters.pkcs11 import Token, config_of, token_for
from gateway.bootstrap import our_keys
from gateway.config import Settings
from gateway.errors import TransientError
from gateway.signing import TokenKey
from tests.doubles import Msg, pass_quiet_time
from tests.hsm.support import token_key
from tests.unit.test_batcher import in_memory
from tests.unit.test_intake import order


def _token_folder(softhsm: Path, label: str) -> Path:
    """The folder SoftHSM2 keeps the token labelled `label` in."""
    for folder in (softhsm.parent / "tokens").iterdir():
        if label.encode() in (folder / "token.object").read_bytes():
            return folder
    raise AssertionError(f"no token {label}")


def test_a_missing_module_is_one_line_and_the_batch_waits(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No module at the configured path: the start says so once, the batch waits in received."""
    monkeypatch.setenv("GATEWAY_PKCS11_PIN", "246810")
    broken = replace(
        settings, key_source="pkcs11", pkcs11_module="/nonexistent/libhsm.so", pkcs11_token="kbnn"
    )
    with capture_logs() as logs:
        gateway, storage = in_memory(broken)
    [said] = [entry for entry in logs if entry["event"] == "key.unavailable"]
    assert said["error"] == (
        "PKCS#11 module /nonexistent/libhsm.so is missing (is the HSM client installed?)"
    )
    gateway.intake.handle([Msg(json.dumps(order(), ensure_ascii=False).encode())])
    pass_quiet_time(gateway)
    with capture_logs() as logs:
        assert gateway.batcher.tick() == 0
    state = storage.snapshot()
    assert [o.state for o in state.orders.values()] == ["received"]
    assert len(state.outbox) == 0
    [blocked] = [entry for entry in logs if entry["event"] == "batch.blocked"]
    assert "libhsm.so is missing" in blocked["error"]


def test_a_wrong_pin_is_refused_once_and_never_logged(
    token_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token refuses the PIN: a transient fault naming where the PIN came from, not the PIN;
    the same PIN is not offered again (a token locks a PIN after a few tries); a corrected PIN
    is taken up without a restart."""
    token_key(token_settings)
    token_for(token_settings).close()  # logged out: the process holds no session of the token
    token = Token(config_of(token_settings))
    monkeypatch.setenv("GATEWAY_PKCS11_PIN", "999999")
    with capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(
                TransientError, match=r"refused the PIN from GATEWAY_PKCS11_PIN \(PinIncorrect\)"
            ):
                token.run("signing", lambda session: None)
    said = json.dumps(logs)
    assert "999999" not in said and "246810" not in said
    assert [entry["event"] for entry in logs] == ["hsm.unavailable"]
    monkeypatch.setenv("GATEWAY_PKCS11_PIN", "246810")
    with capture_logs() as logs:
        token.run("signing", lambda session: None)
    assert [entry["event"] for entry in logs] == ["hsm.available"]


def test_the_pin_may_come_from_a_file(
    token_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pkcs11_pin_file (GATEWAY_PKCS11_PIN_FILE) names a file holding the PIN."""
    token_key(token_settings)
    (tmp_path / "pin").write_text("246810\n")
    monkeypatch.delenv("GATEWAY_PKCS11_PIN")
    from_file = replace(token_settings, pkcs11_pin_file=str(tmp_path / "pin"))
    token_for(token_settings).close()
    key = Token(config_of(from_file))
    assert len(key.run("listing", lambda session: list(session.get_objects()))) >= 3


def test_a_removed_token_makes_the_batch_wait_until_it_is_back(
    token_settings: Settings, softhsm: Path
) -> None:
    """The token is pulled out while the gateway runs: the batch waits, rejecting nobody, with
    one line saying the token is gone; put back, the same batch leaves signed by it."""
    token_key(token_settings)
    gateway, storage = in_memory(token_settings)
    folder = _token_folder(softhsm, token_settings.pkcs11_token)
    aside = folder.parent.parent / "aside"
    shutil.move(folder, aside)
    try:
        gateway.intake.handle([Msg(json.dumps(order(), ensure_ascii=False).encode())])
        pass_quiet_time(gateway)
        with capture_logs() as logs:
            # The ring read before is still fresh: signing meets the missing token.
            assert gateway.batcher.tick() == 0
            assert gateway.batcher.tick() == 0
        assert [o.state for o in storage.snapshot().orders.values()] == ["received"]
        unavailable = [entry for entry in logs if entry["event"] == "hsm.unavailable"]
        assert len(unavailable) == 1
        assert token_settings.pkcs11_token in unavailable[0]["error"]
        assert all("\n" not in str(entry.get("error", "")) for entry in logs)
    finally:
        shutil.move(aside, folder)
    assert gateway.batcher.tick() == 1
    assert [o.state for o in storage.snapshot().orders.values()] == ["batched"]


def test_a_session_that_dies_is_reopened(token_settings: Settings) -> None:
    """The session closed under the gateway (an HSM restart, a network HSM's timeout): the next
    signature opens a new one and logs in again, without an error."""
    token_key(token_settings)
    key = our_keys(token_settings).ring().current
    assert isinstance(key, TokenKey)
    first = key.sign(b"<SignedInfo/>")
    token = token_for(token_settings)
    token.run("closing", lambda session: session.close())
    assert key.sign(b"<SignedInfo/>") == first  # RSA PKCS#1 v1.5 is deterministic
