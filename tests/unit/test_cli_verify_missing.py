"""`gateway verify` with a file that is not there: a usage error naming it, never `NOT valid`
(which says the bank's file was read and refused)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from gateway.cli import cli


def test_verify_a_missing_file_is_a_usage_error_not_an_invalid_file(tmp_path: Path) -> None:
    missing = tmp_path / "nofile.xml"

    result = CliRunner().invoke(
        cli, ["verify", str(missing), "--partner", "agribank"], env={"GATEWAY_HOME": str(tmp_path)}
    )

    assert result.exit_code == 2
    assert "NOT valid" not in result.output
    assert "'FILE'" in result.output and str(missing) in result.output
    assert "does not exist" in result.output


def test_verify_a_missing_detached_signature_is_named(tmp_path: Path) -> None:
    document = tmp_path / "camt054.xml"
    document.write_text("<Document/>", encoding="utf-8")
    missing = tmp_path / "camt054.xml.sig"

    result = CliRunner().invoke(
        cli,
        ["verify", str(document), "--partner", "agribank", "--signature", str(missing)],
        env={"GATEWAY_HOME": str(tmp_path)},
    )

    assert result.exit_code == 2
    assert "'--signature'" in result.output and "does not exist" in result.output
