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


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("gateway = 5\n", "gateway must be the table [gateway], got 5"),
        ("prefetch = 5\n[gateway]\n", "prefetch outside the [gateway] table"),
        ("[gateway]\ndb_path = 5\n", 'db_path must be a string (in "quotes"), got 5'),
        ("[gateway]\nlog_level = 5\n", "log_level must be a string"),
        ("[gateway]\nsigning_key = ['a']\n", "signing_key must be a string"),
        ("[gateway]\nprefetch = 'many'\n", "prefetch must be an integer, got 'many'"),
        ("[gateway]\nprefetch = 2.5\n", "prefetch must be an integer, got 2.5"),
        ("[gateway]\nclaim_seconds = true\n", "claim_seconds must be a number, got True"),
        ("[gateway]\nconsole_with_run = 'no'\n", "console_with_run must be true or false"),
        ("[gateway]\nlog_level = 'verbose'\n", "log_level must be one of debug, info, warning"),
        ("[gateway]\nlog_format = 'xml'\n", "log_format must be one of json, console"),
        ("[gateway]\nmetrics_port = 70000\n", "metrics_port must be a TCP port (0 to 65535)"),
        ("[gateway]\nas_of = 2026-01-01T00:00:00\n", "as_of 2026-01-01T00:00:00 has no UTC offset"),
    ],
    ids=[
        "gateway-not-a-table",
        "key-outside-the-table",
        "path-a-number",
        "level-a-number",
        "key-a-list",
        "integer-a-word",
        "integer-a-fraction",
        "number-a-boolean",
        "boolean-a-word",
        "unknown-level",
        "unknown-format",
        "port-out-of-range",
        "date-time-without-offset",
    ],
)
def test_a_value_of_the_wrong_kind_in_the_file_is_named(
    tmp_path: Path, text: str, named: str
) -> None:
    """conf/gateway.toml's values are checked as the environment's are: the file, the setting
    and what it must be, never a Python error from deep inside a command."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gateway.toml").write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path)
    assert str(refused.value).startswith(str(tmp_path / "conf" / "gateway.toml"))
    assert named in str(refused.value)


def test_the_file_takes_toml_kinds(tmp_path: Path) -> None:
    """An integer where a number is asked, a TOML date-time with its offset for as_of."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gateway.toml").write_text(
        "[gateway]\nclaim_seconds = 10\nas_of = 2026-01-31T09:00:00+07:00\n"
        "console_with_run = true\n"
    )
    settings = load_settings(tmp_path)
    assert settings.claim_seconds == 10.0 and isinstance(settings.claim_seconds, float)
    assert settings.as_of == "2026-01-31T09:00:00+07:00"
    assert settings.console_with_run is True


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        (
            "GATEWAY_CONSOLE_WITH_RUN",
            "maybe",
            "GATEWAY_CONSOLE_WITH_RUN must be one of true, false",
        ),
        ("GATEWAY_LOG_FORMAT", "xml", "GATEWAY_LOG_FORMAT must be one of json, console"),
        ("GATEWAY_LOG_LEVEL", "verbose", "GATEWAY_LOG_LEVEL must be one of debug, info"),
        ("GATEWAY_CONSOLE_PORT", "99999", "GATEWAY_CONSOLE_PORT must be a TCP port"),
    ],
)
def test_a_wrong_word_in_the_environment_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    """A variable that would have been read as false, or as the default, is refused instead."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load_settings(tmp_path)


@pytest.mark.parametrize("value", ["1", "true", "YES", "on", "0", "false", "no", "off", ""])
def test_booleans_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GATEWAY_CONSOLE_WITH_RUN", value)
    assert load_settings(tmp_path).console_with_run is (value.lower() in ("1", "true", "yes", "on"))


def test_reports_processes_a_number_or_auto_and_level_names_as_logging_has_them(
    tmp_path: Path,
) -> None:
    """reports_processes = 0 (as docs/operations.md writes it) is a number, not a refused
    string; a level name the logging module knows is taken in any case, kept in lower case."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gateway.toml").write_text(
        "[gateway]\nreports_processes = 0\nlog_level = 'WARN'\nlog_format = 'Console'\n"
    )
    settings = load_settings(tmp_path)
    assert (settings.reports_processes, settings.log_level, settings.log_format) == (
        "0",
        "warn",
        "console",
    )
