"""`gateway bank-sim`: serve as a partner bank (wired by gateway/banksim/wiring.py)."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.config import Settings


@click.command("bank-sim")
@click.option("--partner", default="agribank", show_default=True, help="Partner profile to serve.")
@click.option(
    "--book",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='JSON {"closed": [...], "unknown": [...]} of accounts the bank refuses.',
)
@click.option(
    "--resend-answer",
    type=click.Choice(["replay", "dupl"]),
    default="replay",
    show_default=True,
    help="A file received again: send the first replies again, or a pain.002 RJCT DUPL.",
)
@click.pass_context
def bank_sim(ctx: click.Context, partner: str, book: Path | None, resend_answer: str) -> None:
    """Serve as the partner bank: answer pain.001 files with pain.002 and camt.054."""
    from gateway.banksim.wiring import build_bank, load_book, start_bank
    from gateway.bootstrap import declare_topology
    from gateway.runtime import Runtime

    settings: Settings = ctx.obj
    profile = settings.partner(partner)
    accounts = load_book(book)  # a book that cannot be read is said before the broker is asked
    declare_topology(settings)
    bank = build_bank(
        settings,
        profile,
        accounts,
        settings.path(f"var/bank-{partner}.db"),
        resend_answer=resend_answer,
    )
    runtime = Runtime()
    start_bank(settings, profile, bank, runtime)
    click.echo(f"bank simulator for {partner} running; Ctrl-C stops", err=True)
    runtime.wait()
