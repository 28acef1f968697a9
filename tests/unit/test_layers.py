"""The layers keep their places: the domain imports no I/O, the services reach storage and the
broker only through their ports, there is no SQL outside gateway/adapters/, and the product
never imports its test tools (the bank simulator, the demo, the fault harness)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

PACKAGE = Path(__file__).resolve().parents[2] / "gateway"
PYPROJECT = PACKAGE.parent / "pyproject.toml"
# The simulators, the demo and the fault harness keep databases of their own.
OWN_DATABASES = ("banksim", "demo", "soak")
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I)


def _modules(*parts: str) -> list[Path]:
    return sorted((PACKAGE.joinpath(*parts)).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _offenders(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in paths:
        hits = sorted(m for m in _imports(path) if m.startswith(forbidden))
        if hits:
            bad[str(path.relative_to(PACKAGE))] = hits
    return bad


def test_the_domain_imports_no_adapter_and_no_io_library() -> None:
    """gateway/domain/ imports neither adapters nor pika, lxml, sqlite3, psycopg or signing."""
    forbidden = ("gateway.adapters", "gateway.signing", "pika", "lxml", "sqlite3", "psycopg")
    assert _offenders(_modules("domain"), forbidden) == {}


def test_services_import_no_adapter() -> None:
    """gateway/service/ reaches storage, the broker and folders only through its ports."""
    forbidden = ("gateway.adapters", "sqlite3", "psycopg", "pika")
    assert _offenders(_modules("service"), forbidden) == {}


def test_commands_reach_storage_only_through_the_composition_root() -> None:
    """The command line opens the database by gateway.bootstrap, never a storage adapter."""
    commands = [*_modules("commands"), PACKAGE / "cli.py"]
    forbidden = ("gateway.adapters.persistence", "sqlite3", "psycopg")
    assert _offenders(commands, forbidden) == {}


def test_no_sql_outside_the_adapters() -> None:
    """SQL statements on the gateway's tables are written in gateway/adapters/ alone."""
    outside = [
        path
        for path in PACKAGE.rglob("*.py")
        if "adapters" not in path.relative_to(PACKAGE).parts
        and path.relative_to(PACKAGE).parts[0] not in OWN_DATABASES
    ]
    with_sql = {
        str(path.relative_to(PACKAGE)): SQL.findall(path.read_text(encoding="utf-8"))
        for path in outside
    }
    assert {name: hits for name, hits in with_sql.items() if hits} == {}


def test_the_layer_checks_see_the_modules() -> None:
    """The checks above look at real files (a moved package would make them pass vacuously)."""
    assert len(_modules("service")) > 10
    assert len(_modules("domain")) > 3
    assert (PACKAGE / "adapters" / "persistence" / "sql.py").is_file()


TOOLS = ("banksim", "demo", "soak", "bench")


def test_the_product_never_imports_its_test_tools(capsys: pytest.CaptureFixture[str]) -> None:
    """import-linter's contract in pyproject.toml holds: no product module imports the bank
    simulator, the demo or the fault harness, directly or through another module."""
    code = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_the_import_rule_names_every_product_module() -> None:
    """Every module of the package but the tools, gateway/cli.py (which names the tools'
    commands) and gateway/__main__.py (which runs it) is a source of the rule, so a new module
    is held to it too."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    [contract] = config["tool"]["importlinter"]["contracts"]
    assert contract["forbidden_modules"] == [f"gateway.{tool}" for tool in TOOLS]
    top = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert sorted(f"gateway.{name}" for name in top - {*TOOLS, "cli", "__main__"}) == sorted(
        contract["source_modules"]
    )
