"""docs/architecture.md against the code: every module it names exists, and every function or
class its journey names is found in the module beside it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
MODULE = re.compile(r"`(gateway/[\w/]+(?:\.py|/))`")
ROW = re.compile(r"^\| *\d+ *\| *`(gateway/[\w/]+\.py)` *\| *`([\w.]+)` *\|", re.MULTILINE)


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_module_the_doc_names_exists() -> None:
    """Each `gateway/...py` or `gateway/.../` path in the doc is a file or folder of the tree."""
    named = set(MODULE.findall(_text()))
    assert len(named) >= 25
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_every_step_of_the_journey_names_real_code() -> None:
    """Each journey row's `module` holds its `code` (a function, a class, or Class.method)."""
    rows = ROW.findall(_text())
    assert len(rows) >= 15
    missing = []
    for path, dotted in rows:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        target: object = module
        for part in dotted.split("."):
            target = getattr(target, part, None)
            if target is None:
                missing.append(f"{path}: {dotted}")
                break
    assert missing == []
