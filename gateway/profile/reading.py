"""Reading one TOML table of a partner profile, naming the file, table and key of any mistake."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError


class Table:
    """One table of a profile file; every read records the key so leftovers can be named."""

    def __init__(self, path: Path, name: str, data: dict[str, Any]) -> None:
        self.path = path
        self.name = name
        self._data = data
        self._seen: set[str] = set()

    def where(self, key: str) -> str:
        """`file: [table] key` (or `file: key` at top level), for error messages."""
        return f"{self.path}: {f'[{self.name}] ' if self.name else ''}{key}"

    def error(self, key: str, problem: str) -> ConfigError:
        """A configuration error about one key."""
        return ConfigError(f"{self.where(key)} {problem}")

    def has(self, key: str) -> bool:
        """Whether the table sets this key."""
        return key in self._data

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as TOML gave it."""
        self._seen.add(key)
        return self._data.get(key, default)

    def text(self, key: str, default: str | None = None) -> str:
        """A string; required when there is no default."""
        value = self.raw(key, default)
        if value is None:
            raise self.error(key, "is required")
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {value!r}")
        return value

    def word(self, key: str) -> str:
        """A required, non-blank string."""
        value = self.text(key)
        if not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        """A number (integer or decimal) no smaller than minimum."""
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum:g}, got {value:g}")
        return float(value)

    def choice(self, key: str, options: Sequence[str], default: str) -> str:
        """A string among a fixed set of options."""
        value = self.text(key, default)
        if value not in options:
            raise self.error(key, f"is {value!r}; use one of {', '.join(options)}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        """A boolean (true/false in TOML, not a string)."""
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        """An integer no smaller than minimum."""
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        """A list of strings (empty when absent)."""
        value = self.raw(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def moment(self, key: str) -> datetime | None:
        """An optional TOML date-time with its offset (a time without a zone is ambiguous)."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            example = "2027-01-01T00:00:00+07:00"
            problem = f"must be a date-time with an offset, e.g. {example}; got {value!r}"
            raise self.error(key, problem)
        return value

    def table(self, key: str) -> Table:
        """A sub-table (empty when absent)."""
        value = self.raw(key, {})
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return Table(self.path, f"{self.name}.{key}" if self.name else key, value)

    def tables(self, key: str) -> list[Table]:
        """An array of tables ([[key]] in TOML), empty when absent."""
        value = self.raw(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, "must be an array of tables, e.g. [[signature.certificates]]")
        prefix = f"{self.name}.{key}" if self.name else key
        return [Table(self.path, f"{prefix}[{i}]", item) for i, item in enumerate(value)]

    def only(self, *keys: str) -> None:
        """Refuse, before reading anything, keys outside this set (misspellings first)."""
        unknown = sorted(set(self._data) - set(keys))
        if unknown:
            where = f"[{self.name}] " if self.name else ""
            raise ConfigError(f"{self.path}: {where}unknown key(s) {', '.join(unknown)}")

    def finish(self) -> None:
        """Refuse keys nobody read: they are misspellings or unsupported settings."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            where = f"[{self.name}] " if self.name else ""
            raise ConfigError(f"{self.path}: {where}unknown key(s) {', '.join(unknown)}")
