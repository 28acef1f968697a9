"""Settings: defaults, then conf/*.toml, then GATEWAY_* variables; mistakes named clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_partner, load_settings
from gateway.errors import ConfigError


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GATEWAY_BATCH_QUIET_SECONDS wins over conf/gateway.toml."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gateway.toml").write_text("[gateway]\nbatch_quiet_seconds = 3.0\n")
    monkeypatch.setenv("GATEWAY_BATCH_QUIET_SECONDS", "0.5")
    assert load_settings(tmp_path).batch_quiet_seconds == 0.5


def test_unknown_key_is_named(tmp_path: Path) -> None:
    """A misspelt key in gateway.toml is refused with its name."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gateway.toml").write_text("[gateway]\nbatch_quite = 3\n")
    with pytest.raises(ConfigError, match="batch_quite"):
        load_settings(tmp_path)


def test_bad_number_in_environment_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-numeric GATEWAY_PREFETCH says which variable is wrong."""
    monkeypatch.setenv("GATEWAY_PREFETCH", "many")
    with pytest.raises(ConfigError, match="GATEWAY_PREFETCH"):
        load_settings(tmp_path)


def test_partner_profile_missing_bic(tmp_path: Path) -> None:
    """A partner profile without its BIC names the file and the key."""
    path = tmp_path / "bank.toml"
    path.write_text('name = "bank"\n')
    with pytest.raises(ConfigError, match=r"bank\.toml: bic is required"):
        load_partner(path)


def test_shipped_profile_loads() -> None:
    """The shipped Agribank profile routes the treasury's account."""
    settings = load_settings(Path(__file__).resolve().parents[2])
    partner = settings.partner_for_account("BBAN:7411058271001")
    assert partner is not None and partner.bic == "VBAAVNVX"
