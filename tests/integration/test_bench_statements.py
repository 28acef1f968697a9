"""bench_e2e's account of PostgreSQL's statements: reset, counted, read back, printed."""

from __future__ import annotations

import uuid

import psycopg

from gateway.adapters.persistence.pg_statements import Statement, StatementStats, as_superuser
from gateway.bench.statements import render
from tests.postgres import unavailable


def test_the_superuser_url_keeps_the_server_and_database_not_the_search_path() -> None:
    url = "postgresql://gateway@127.0.0.1:55432/gateway_test?options=-csearch_path%3Dx&a=b"
    assert as_superuser(url) == "postgresql://postgres@127.0.0.1:55432/gateway_test?a=b"
    assert as_superuser("postgresql://127.0.0.1/db") == "postgresql://postgres@127.0.0.1/db"


def test_statements_are_printed_costliest_first_or_the_reason_none_were() -> None:
    lines = render([Statement(94, 6647.2, 94000, "UPDATE orders SET state = $1")], "")
    assert lines[0].startswith("  PostgreSQL's costliest statements")
    assert lines[1].split() == [
        "94",
        "6,647",
        "70.715",
        "94,000",
        "UPDATE",
        "orders",
        "SET",
        "state",
        "=",
        "$1",
    ]
    assert render([], "not measured: permission denied") == [
        "  PostgreSQL statements: not measured: permission denied"
    ]


def test_a_statement_run_after_the_reset_is_counted(postgres_url: str) -> None:
    """On the private cluster (which preloads pg_stat_statements): what runs after the reset
    comes back with its calls; what ran before does not. The view is found in `public` though
    the URL names another schema (as bench_e2e's does)."""
    with psycopg.connect(as_superuser(postgres_url), autocommit=True) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")
    stats = StatementStats(postgres_url)
    marker = f"bench_marker_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"SELECT 1 AS {marker}_before")
        note = stats.reset()
        if note is not None:  # a server other than scripts/postgres's cluster (fails on CI)
            unavailable(f"pg_stat_statements: {note}")
        assert note is None
        for _ in range(3):
            conn.execute(f"SELECT 1 AS {marker}_after")
    counted = {s.text: s for s in stats.top(count=500)}
    after = [s for text, s in counted.items() if f"{marker}_after" in text]
    assert [s.calls for s in after] == [3]
    assert not [text for text in counted if f"{marker}_before" in text]
