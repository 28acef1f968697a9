"""`gateway audit verify` and `gateway audit list` on a trail changed in the database to values
no append writes, on real SQLite and PostgreSQL: a time that is not one (text on SQLite;
`infinity` on PostgreSQL, whose driver refuses to read it), a detail that is not JSON, a column
that is not text. Verify names the row (exit 1, as for any tampering); list shows the rows it
can and names the others (exit 1); neither ends in a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.adapters.persistence import open_storage
from gateway.errors import GatewayError
from gateway.service.audit import record
from tests.integration.test_audit_cli import Db, db, run, three_actions

__all__ = ["db"]  # the SQLite and PostgreSQL databases of test_audit_cli.py


def no_time(db: Db) -> str:
    """A value for `at` the database keeps and the gateway cannot read as a time."""
    return "infinity" if db.env.get("GATEWAY_DB_URL") else "garbage"


def unreadable_time(db: Db, where: str) -> str:
    """The statement that sets `at` to `no_time` in the rows `where` names."""
    return f"UPDATE audit_trail SET at = '{no_time(db)}' WHERE {where}"  # noqa: S608 - fixed text


def listed_seqs(output: str) -> list[int]:
    return [int(line.split()[0]) for line in output.splitlines() if line[:6].strip().isdigit()]


def test_verify_names_a_row_whose_time_cannot_be_read(db: Db) -> None:
    """The row is named by where it stands, with the value that cannot be read."""
    three_actions(db)
    db.execute(unreadable_time(db, "seq = 2"))
    result = run(db, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "BROKEN at row 2 (changed): row 2 was changed in the database" in result.output
    assert f"'{no_time(db)}'" in result.output  # what is wrong: the value itself


def test_verify_names_a_break_before_an_unreadable_row_first(db: Db) -> None:
    """The rows before the unreadable one are verified too: an edit there is the first break."""
    three_actions(db)
    db.execute("UPDATE audit_trail SET actor = 'mallory' WHERE seq = 1")
    db.execute(unreadable_time(db, "seq = 3"))
    result = run(db, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "BROKEN at row 1 (changed): row 1 was changed after it was appended" in result.output


def test_verify_names_the_last_row_when_only_it_cannot_be_read(db: Db) -> None:
    """The last row, kept apart as the chain's head too, is named all the same."""
    three_actions(db)
    db.execute(unreadable_time(db, "seq = 3"))
    result = run(db, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "BROKEN at row 3 (changed)" in result.output


def test_list_shows_the_readable_rows_and_names_the_unreadable_one(db: Db) -> None:
    """The rows on both sides of the changed one are listed, the changed one named: exit 1."""
    three_actions(db)
    db.execute(unreadable_time(db, "seq = 2"))
    text = run(db, "audit", "list")
    assert text.exit_code == 1, text.output
    assert listed_seqs(text.output) == [1, 3]
    assert isinstance(text.exception, GatewayError)
    assert "row 2 cannot be read back" in str(text.exception)
    assert f"'{no_time(db)}'" in str(text.exception)
    as_json = run(db, "audit", "list", "--json")
    assert as_json.exit_code == 1, as_json.output
    assert [json.loads(line)["seq"] for line in as_json.output.splitlines()] == [1, 3]
    assert "row 2 cannot be read back" in str(as_json.exception)
    # A window that does not reach the changed row reads as usual.
    newest = run(db, "audit", "list", "--limit", "1")
    assert newest.exit_code == 0, newest.output
    assert listed_seqs(newest.output) == [3]


def test_list_counts_the_unreadable_row_in_its_window(db: Db, tmp_path: Path) -> None:
    """Nine rows, the sixth changed: `--limit` counts it among the newest rows, and names it
    when the window reaches it."""
    storage = open_storage(
        db.env.get("GATEWAY_DB_URL") or "", Path(db.env.get("GATEWAY_DB_PATH", tmp_path / "x"))
    )
    try:
        for n in range(1, 10):
            record(storage, actor="lan", via="cli", action="users.add", subject=f"u{n}")
    finally:
        storage.close()
    db.execute(unreadable_time(db, "seq = 6"))
    for limit, seqs in (("11", [1, 2, 3, 4, 5, 7, 8, 9]), ("6", [4, 5, 7, 8, 9]), ("3", [7, 8, 9])):
        result = run(db, "audit", "list", "--limit", limit)
        assert listed_seqs(result.output) == seqs, limit
        if limit == "3":
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 1, result.output
            assert "row 6 cannot be read back" in str(result.exception)


def test_list_names_every_unreadable_row_and_shows_the_rest(db: Db) -> None:
    """Two rows changed, one readable between them: it is shown, each of the two named."""
    three_actions(db)
    db.execute(unreadable_time(db, "seq IN (1, 3)"))
    result = run(db, "audit", "list")
    assert result.exit_code == 1, result.output
    assert listed_seqs(result.output) == [2]
    assert "row 1 cannot be read back" in str(result.exception)
    assert "row 3 cannot be read back" in str(result.exception)
    verified = run(db, "audit", "verify")
    assert verified.exit_code == 1, verified.output
    assert "BROKEN at row 1 (changed)" in verified.output


def test_a_detail_that_is_not_json(db: Db) -> None:
    """verify names the row; list shows it as stored; list --json leaves it out and names it."""
    three_actions(db)
    db.execute("UPDATE audit_trail SET detail = 'not json' WHERE seq = 2")
    verified = run(db, "audit", "verify")
    assert verified.exit_code == 1, verified.output
    assert "BROKEN at row 2 (changed)" in verified.output
    text = run(db, "audit", "list")
    assert text.exit_code == 0, text.output
    assert "not json" in text.output.splitlines()[1]
    as_json = run(db, "audit", "list", "--json")
    assert as_json.exit_code == 1, as_json.output
    assert [json.loads(line)["seq"] for line in as_json.output.splitlines()] == [1, 3]
    assert isinstance(as_json.exception, GatewayError)
    assert "row 2 cannot be read back (its detail is not JSON" in str(as_json.exception)


@pytest.mark.parametrize(
    ("tamper", "name"),
    [
        ("UPDATE audit_trail SET actor = X'00ff' WHERE seq = 2", "actor"),
        ("UPDATE audit_trail SET detail = X'00ff' WHERE seq = 2", "detail_json"),
    ],
    ids=["actor", "detail"],
)
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # PostgreSQL keeps text as text
def test_a_column_that_is_not_text_on_sqlite(db: Db, tamper: str, name: str) -> None:
    """SQLite keeps a blob in a text column: the row is named by its seq."""
    three_actions(db)
    db.execute(tamper)
    verified = run(db, "audit", "verify")
    assert verified.exit_code == 1, verified.output
    assert "BROKEN at row 2 (changed)" in verified.output
    assert f"its {name} is not text" in verified.output
    listed = run(db, "audit", "list", "--json")
    assert listed.exit_code == 1, listed.output
    assert [json.loads(line)["seq"] for line in listed.output.splitlines()] == [1, 3]
    assert f"row 2 cannot be read back (its {name} is not text)" in str(listed.exception)
