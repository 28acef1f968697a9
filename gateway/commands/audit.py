"""`gateway audit list|verify`: the hash-chained trail of admin actions."""

from __future__ import annotations

import json
import sys

import click

from gateway.commands import existing_database
from gateway.config import Settings
from gateway.errors import GatewayError


@click.group()
def audit() -> None:
    """The audit trail of admin actions (console and command line): list it, verify its chain."""


@audit.command("list")
@click.option("--limit", default=50, show_default=True, help="The newest rows to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
@click.pass_obj
def audit_list(settings: Settings, limit: int, as_json: bool) -> None:
    """The newest actions, oldest of them first, with the hash chaining each to the one before.

    A row changed in the database so that it cannot be read back (or, with --json, whose detail
    is not JSON) is left out and named after the rows that can be: exit 1."""
    from gateway.service.audit import newest

    rows, unreadable = newest(existing_database(settings).queries, limit)
    problems = [unreadable] if unreadable else []
    for row in rows:
        if as_json:
            try:
                detail = json.loads(row.detail_json)
            except json.JSONDecodeError as exc:
                problems.append(
                    f"row {row.seq} cannot be read back (its detail is not JSON: {exc})"
                )
                continue
            line = {
                "seq": row.seq,
                "at": row.at.isoformat(timespec="microseconds"),
                "actor": row.actor,
                "via": row.via,
                "action": row.action,
                "subject": row.subject,
                "detail": detail,
                "prev_hash": row.prev_hash,
                "row_hash": row.row_hash,
            }
            click.echo(json.dumps(line, ensure_ascii=False))
        else:
            click.echo(
                f"{row.seq:>6} {row.at.isoformat(timespec='seconds')} {row.actor:<12}"
                f" {row.via:<8} {row.action:<22} {row.subject} {row.detail_json}"
                f" {row.row_hash[:16]}"
            )
    if problems:
        raise GatewayError(
            f"audit trail: {'; '.join(problems)}; it was changed in the database"
            " (`gateway audit verify` names the first row changed)"
        )


@audit.command("verify")
@click.pass_obj
def audit_verify(settings: Settings) -> None:
    """Recompute the chain: exit 0 when every row is as appended, else name the first row that
    was changed, removed or reordered and exit 1."""
    from gateway.service.audit import check

    queries = existing_database(settings).queries
    count, broken = check(queries)
    if broken is not None:
        click.echo(f"audit trail BROKEN at row {broken.seq} ({broken.kind}): {broken.message}")
        sys.exit(1)
    seq, head = queries.audit_head()
    click.echo(f"audit trail intact: {count} row(s); head {seq} {head}")
