"""Everything an admin can type or set is documented: every command of `gateway` in the README or
docs/, every key of Settings in docs/settings.md, every GATEWAY_* variable read anywhere."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from gateway.cli import cli
from gateway.config import Settings
from gateway.iso20022.limits import InboundLimits

ROOT = Path(__file__).resolve().parents[2]
# A GATEWAY_* variable as code reads it: a quoted name in Python, ${NAME or $NAME in a script.
PY_VARIABLE = re.compile(r"""["'](GATEWAY_[A-Z0-9_]+)["']""")
SH_VARIABLE = re.compile(r"\$\{?(?<![A-Z_])(GATEWAY_[A-Z0-9_]+)")


def _docs() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def _commands(command: click.Command, path: tuple[str, ...]) -> list[str]:
    if isinstance(command, click.Group):
        return [
            line
            for name, sub in sorted(command.commands.items())
            for line in _commands(sub, (*path, name))
        ]
    return [" ".join(path)]


def test_every_command_is_documented() -> None:
    """Each leaf command (`gateway dlq replay`, `gateway keys rotate`, ...) appears, written out,
    in the README or a page of docs/."""
    commands = _commands(cli, ("gateway",))
    assert len(commands) >= 20
    text = _docs()
    assert [command for command in commands if command not in text] == []


def test_every_setting_has_a_row_in_the_settings_page() -> None:
    """Each key of Settings (but home and the partner profiles) is a row of docs/settings.md,
    with its environment variable."""
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    keys = [f.name for f in dataclasses.fields(Settings) if f.name not in ("home", "partners")]
    assert len(keys) >= 20
    missing = [k for k in keys if f"| `{k}` | `GATEWAY_{k.upper()}` |" not in page]
    assert missing == []


def test_every_environment_variable_read_is_documented() -> None:
    """Each GATEWAY_* variable the package or the scripts read is named in the docs."""
    found: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        found |= set(PY_VARIABLE.findall(path.read_text(encoding="utf-8")))
    for path in (ROOT / "scripts").iterdir():
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            found |= set(PY_VARIABLE.findall(text)) | set(SH_VARIABLE.findall(text))
    assert {"GATEWAY_HOME", "GATEWAY_DB_URL", "GATEWAY_PG_PORT"} <= found
    text = _docs()
    assert sorted(name for name in found if name not in text) == []


def test_every_inbound_limit_is_documented() -> None:
    """Each key of a partner's [inbound] limits is a row of docs/security.md's table, with its
    default, and is listed in docs/partners.md."""
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    partners = (ROOT / "docs" / "partners.md").read_text(encoding="utf-8")
    defaults = InboundLimits()
    fields = dataclasses.fields(InboundLimits)
    assert len(fields) >= 8
    for field in fields:
        assert f"| `{field.name}` | {getattr(defaults, field.name)}" in security, field.name
        assert f"`{field.name}`" in partners, field.name
