"""The fault harness's result as a person reads it and as `scripts/soak --json` prints it: the
same faults, figures and checks."""

from __future__ import annotations

import json
from collections import Counter

from gateway.soak.checker import Verdict
from gateway.soak.harness import SoakConfig, SoakResult


def test_the_json_result_carries_what_the_table_shows() -> None:
    """Faults, figures, the five checks and the verdict, in one JSON object."""
    verdict = Verdict(paid_twice=["E2E-1"], info={"orders published": 200})
    result = SoakResult(
        verdict=verdict,
        events=Counter({"gateway SIGKILL at a random moment": 2}),
        bank_faults={"delay": 3},
        notes=["settle timeout after 300 s"],
        duration_s=45.26,
        config=SoakConfig(orders=200, database="sqlite", instances=1),
    )
    data = json.loads(json.dumps(result.as_json()))
    assert data["pass"] is False
    assert (data["orders"], data["database"], data["instances"]) == (200, "sqlite", 1)
    assert data["faults"] == {"gateway SIGKILL at a random moment": 2}
    assert data["bank_faults"] == {"delay": 3}
    assert data["figures"] == {"orders published": 200}
    assert data["checks"]["EndToEndIds paid twice"] == 1
    assert sum(data["checks"].values()) == 1
    assert data["duration_s"] == 45.3
    assert data["notes"] == ["settle timeout after 300 s"]
    table = result.render()
    assert "EndToEndIds paid twice" in table and "FAIL in 45 s" in table
