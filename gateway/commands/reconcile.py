"""`gateway reconcile --date`: the day's bank statements against what the gateway holds."""

from __future__ import annotations

import json
import sys
from datetime import date

import click

from gateway.commands import existing_database
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.service.reconcile import Reconciliation
from gateway.service.statements import load_reconciliation


def _day(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


@click.command()
@click.option("--date", "day", required=True, callback=_day, help="Value date, YYYY-MM-DD.")
@click.option("--partner", default=None, help="Only this partner's statements.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def reconcile(settings: Settings, day: str, partner: str | None, as_json: bool) -> None:
    """Compare the camt.053 statements of a day with the settled payments, revenue and returns
    the gateway holds (read-only). Exits 0 when every statement reconciles, 1 when not."""
    if partner is not None:
        settings.partner(partner)  # an unknown name is said before the database is opened
    results = load_reconciliation(
        existing_database(settings).queries, date.fromisoformat(day), partner
    )
    if not results:
        whose = f" from {partner}" if partner else ""
        raise GatewayError(f"no camt.053 statement{whose} for {day}")
    if as_json:
        click.echo(json.dumps([r.as_json() for r in results], ensure_ascii=False, indent=2))
    else:
        for result in results:
            click.echo(render(result))
    sys.exit(0 if all(r.ok for r in results) else 1)


def render(result: Reconciliation) -> str:
    """One statement's reconciliation as a person reads it."""
    s = result.statement
    verdict = "RECONCILED" if result.ok else "NOT RECONCILED"
    lines = [f"{s.partner} account {s.account} statement {s.statement_id} of {s.day}: {verdict}"]
    for name, side in (("debits", result.debits), ("credits", result.credits)):
        lines.append(f"  {name:<8} matched {side.matched} for {side.matched_sum:,}")
        for label, items in (
            ("unknown to the gateway", side.unknown),
            ("missing from the statement", side.missing),
            ("amount differs", side.mismatched),
        ):
            for item in items:
                lines.append(f"    {label}: {json.dumps(item, ensure_ascii=False)}")
    if result.balance_ok is None:
        lines.append("  balance  no opening or closing balance on the statement")
    else:
        mark = "ok" if result.balance_ok else "DIFFERS"
        lines.append(
            f"  balance  opening {s.opening:,} + entries = {result.balance_expected:,};"
            f" closing {s.closing:,}: {mark}"
        )
    for item in result.skipped:
        lines.append(f"  not booked: {json.dumps(item, ensure_ascii=False)}")
    return "\n".join(lines)
