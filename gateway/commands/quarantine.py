"""`gateway quarantine`: the bank files refused whole, and the bytes of one of them.

The rows are in the database; the bytes in the quarantine folder (`quarantine_dir`, by
SHA-256), or in the row for files quarantined before schema version 7.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway.commands import existing_database
from gateway.config import Settings
from gateway.errors import GatewayError


@click.group()
def quarantine() -> None:
    """Bank files refused whole (signature, limits, schema, content), kept for an admin."""


@quarantine.command("list")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.pass_obj
def list_files(settings: Settings, limit: int, as_json: bool) -> None:
    """The latest refused files: when, partner, size, SHA-256 and reason."""
    for row in existing_database(settings).queries.quarantined(limit):
        if as_json:
            record = {
                "received_at": row.received_at.isoformat(),
                "partner": row.partner,
                "size": row.size,
                "sha256": row.sha256,
                "reason": row.reason,
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(
                f"{row.received_at:%Y-%m-%d %H:%M:%S}  {row.partner:<12} {row.size:>10}"
                f"  {row.sha256[:16]}  {row.reason}"
            )


@quarantine.command("show")
@click.argument("sha256")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the file here.")
@click.pass_obj
def show(settings: Settings, sha256: str, out: Path | None) -> None:
    """The bytes of a refused file (on stdout, or to --out), by its SHA-256 (or a prefix of at
    least 8 hex digits of one listed)."""
    from gateway.bootstrap import quarantine_folder  # keeps --help instant

    storage = existing_database(settings)
    full = _full_hash(sha256.lower(), [row.sha256 for row in storage.queries.quarantined(10**6)])
    data = quarantine_folder(settings).read(full) or storage.queries.quarantined_raw(full)
    if data is None:
        raise GatewayError(
            f"no file {full[:16]}... in the quarantine folder {settings.quarantine_path}"
        )
    if out is not None:
        out.write_bytes(data)
        click.echo(f"{out}: {len(data)} bytes", err=True)
    else:
        sys.stdout.buffer.write(data)


def _full_hash(prefix: str, known: list[str]) -> str:
    """The one kept hash starting with `prefix`."""
    if len(prefix) < 8:
        raise GatewayError("give at least 8 hex digits of the file's SHA-256")
    matches = sorted({sha for sha in known if sha.startswith(prefix)})
    if len(matches) != 1:
        found = "no quarantined file" if not matches else f"{len(matches)} quarantined files"
        raise GatewayError(f"{found} whose SHA-256 starts with {prefix[:64]}")
    return matches[0]
