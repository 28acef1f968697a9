"""`gateway verify FILE --partner P`: would the inbound service accept this file from that partner?
If not, why, in one line.

The checks are the inbound service's own (`gateway.signing.receipt.receive`): the partner's
limits, signature and trust at this moment, creation-time tolerance, XSD, and the reader's value
rules, for every message kind. Only the rules that need the gateway's database (which orders
exist, duplicates) are left to the inbound service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.config import Settings
from gateway.errors import InvalidMessage
from gateway.iso20022.limits import read_within
from gateway.reasons import bounded, fault
from gateway.signing import load_pinned
from gateway.signing.receipt import entry_problems, receive


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", required=True, help="Partner profile whose pinned certificates apply.")
@click.option(
    "--signature",
    "signature_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Detached signature (default: FILE.sig when the partner signs detached).",
)
@click.pass_context
def verify(ctx: click.Context, file: Path, partner: str, signature_file: Path | None) -> None:
    """Check FILE as the inbound path does: say it is valid, or exactly why not (exit 1)."""
    settings: Settings = ctx.obj
    profile = settings.partner(partner)
    if signature_file is None and profile.signature.mode == "detached":
        beside = file.with_name(file.name + ".sig")
        signature_file = beside if beside.is_file() else None
    detached = signature_file.read_bytes() if signature_file is not None else None
    pinned = load_pinned(profile.signature.certificates, settings.path, profile.name)
    try:
        raw = read_within(file, profile.inbound.limits)
        received = receive(raw, profile, pinned, datetime.now(UTC), detached)
    except InvalidMessage as exc:
        click.echo(f"{file}: NOT valid: {bounded(str(exc))}")
        ctx.exit(1)
    except Exception as exc:  # no inbound data may end in a traceback
        click.echo(f"{file}: NOT valid: fault while reading the file: {fault(exc)}")
        ctx.exit(1)
    verified, kind = received.verified, received.kind
    signer = f"signed by key {verified.key_id}" if verified.key_id else "unsigned (mode none)"
    at = f", created {verified.created_at.isoformat()}" if verified.created_at else ""
    problems = entry_problems(received.content)
    kept = (
        f"; {len(problems)} entry(ies) at odds with their details would be kept unmatched:"
        f" {problems[0]}"
        if problems
        else ""
    )
    line = f"{file}: valid {kind.name_id} from {profile.name}, {signer}{at}{kept}"
    click.echo(bounded(line, 600) if problems else line)
