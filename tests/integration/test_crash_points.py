"""Each crash point on its own: the gateway dies there, restarts, and nothing is lost or doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import crashpoints
from tests.integration.soak_support import quiet, soak

# slow: a real gateway process killed at each crash point.
pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.mark.parametrize("point", sorted(crashpoints.POINTS))
def test_the_gateway_dies_at_the_point_and_recovers(
    point: str, tmp_path: Path, broker_url: str
) -> None:
    """Every order is final, paid once and posted once after a SIGKILL at this step."""
    result = soak(quiet(tmp_path, crash_points=(point,)))
    assert result.events[f"gateway died at {point}"] == 1, result.render()
    assert result.verdict.info["orders settled"] > 0
