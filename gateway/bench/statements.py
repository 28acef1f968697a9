"""The lines bench_e2e prints of PostgreSQL's costliest statements in a run
(gateway/adapters/persistence/pg_statements.py reads them)."""

from __future__ import annotations

from gateway.adapters.persistence.pg_statements import Statement


def render(statements: list[Statement], note: str) -> list[str]:
    """The lines bench_e2e prints for them."""
    if note:
        return [f"  PostgreSQL statements: {note}"]
    if not statements:
        return []
    lines = [
        "  PostgreSQL's costliest statements (pg_stat_statements):"
        " calls, ms in all, ms a call, rows, statement"
    ]
    lines += [
        f"    {s.calls:>8,} {s.total_ms:>9,.0f} {s.each_ms:>9.3f} {s.rows:>9,}  {s.text}"
        for s in statements
    ]
    return lines
