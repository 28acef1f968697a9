"""How many reports processes `gateway run` starts."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.processes import MAX_AUTO, reports_process_count


@pytest.mark.parametrize(("cpus", "count"), [(1, 0), (2, 1), (4, 3), (64, MAX_AUTO)])
def test_auto_is_one_per_core_beyond_the_first(cpus: int, count: int) -> None:
    assert reports_process_count("auto", cpus) == count
    assert reports_process_count(" AUTO ", cpus) == count


def test_a_number_is_taken_as_it_is() -> None:
    assert reports_process_count("0") == 0
    assert reports_process_count("3", cpus=2) == 3


@pytest.mark.parametrize("bad", ["-1", "many", "", "1.5"])
def test_anything_else_is_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"reports_processes is .*: give a number"):
        reports_process_count(bad)
