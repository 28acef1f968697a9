"""Where the project's shipped files (schemas, conf) are found, installed or from a checkout."""

from __future__ import annotations

import os
from pathlib import Path


def schemas_dir() -> Path:
    """The schemas folder: GATEWAY_SCHEMAS_DIR, else GATEWAY_HOME/schemas, else the checkout's."""
    explicit = os.environ.get("GATEWAY_SCHEMAS_DIR")
    if explicit:
        return Path(explicit)
    home = os.environ.get("GATEWAY_HOME")
    if home and (Path(home) / "schemas").is_dir():
        return Path(home) / "schemas"
    return Path(__file__).resolve().parents[1] / "schemas"
