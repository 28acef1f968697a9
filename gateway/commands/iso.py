"""`gateway build` (pain.001 files from orders, nothing sent) and `gateway parse` (a bank file as
normalised JSON, nothing changed)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from gateway.config import Settings
from gateway.errors import GatewayError, InvalidMessage


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--no-validate", is_flag=True, help="Read without the XSD check (to see a faulty file)."
)
def parse(file: Path, no_validate: bool) -> None:
    """Print an inbound bank file (pain.002, camt.054, camt.053, pacs.004, pain.001) as JSON."""
    from gateway.iso20022.limits import read_within
    from gateway.iso20022.reading import read_file, to_json
    from gateway.reasons import bounded, fault

    try:
        parsed = read_file(read_within(file), validate=not no_validate)
    except InvalidMessage as exc:
        raise GatewayError(f"{file}: {bounded(str(exc))}") from None
    except Exception as exc:  # no inbound data may end in a traceback
        raise GatewayError(f"{file}: fault while reading the file: {fault(exc)}") from None
    click.echo(json.dumps(to_json(parsed), ensure_ascii=False, indent=2))


@click.command()
@click.argument("orders_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", required=True, help="Partner profile whose format the files follow.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder the files are written to, as <MsgId>.xml.",
)
@click.option("--unsigned", is_flag=True, help="Write the files without a signature.")
@click.pass_context
def build(
    ctx: click.Context, orders_file: Path, partner: str, out_dir: Path, unsigned: bool
) -> None:
    """Build the pain.001 file(s) of a JSON file of orders for one partner; nothing is sent.

    Orders are grouped as the gateway groups them (debtor account, execution date, batch_ref or
    category) and cut at the partner's max_txs_per_file. The MsgId is derived from the orders,
    so building the same orders again gives the same MsgId.
    """
    from gateway.bootstrap import our_keypair
    from gateway.service.batcher import render
    from gateway.signing import file_bytes

    settings: Settings = ctx.obj
    profile = settings.partner(partner)
    batches = _batches(_orders(orders_file), profile.name, profile.messages.max_txs_per_file)
    now = datetime.now(UTC)
    keypair = None if unsigned or profile.signature.mode == "none" else our_keypair(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    for msg_id, orders in batches:
        try:
            rendered = render(msg_id, profile, orders, now, settings.initiating_party)
        except InvalidMessage as exc:
            raise GatewayError(f"{orders_file}: file {msg_id}: {exc}") from None
        body = file_bytes(
            rendered.envelope, keypair, canonical=rendered.canonical
        )  # as the batcher writes it: from the pain.001's text, or the envelope's tree
        target = out_dir / f"{msg_id}.xml"
        target.write_bytes(body)
        total = sum((order.money.amount for order in orders), Decimal(0))
        click.echo(f"{target}\t{len(orders)} transactions\tCtrlSum {total:f}")


def _orders(path: Path) -> list[Any]:
    """Domain orders from a JSON file (one order or a list), each checked as intake checks it."""
    from gateway.contracts import parse_order_json
    from gateway.domain.orders import order_from_payload

    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GatewayError(f"{path}: not a JSON file of orders: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise GatewayError(f"{path}: no orders")
    orders = []
    for index, item in enumerate(items):
        try:
            payload = parse_order_json(json.dumps(item, ensure_ascii=False).encode())
            orders.append(order_from_payload(payload))
        except (InvalidMessage, KeyError, TypeError) as exc:
            name = item.get("order_id", "?") if isinstance(item, dict) else "?"
            raise GatewayError(f"{path}: order {index} ({name}): {exc}") from None
    return orders


def _batches(orders: list[Any], partner: str, limit: int) -> list[tuple[str, list[Any]]]:
    """Orders grouped as the batcher groups them, cut at `limit`, each with a content MsgId."""
    from gateway.service.intake import group_key

    groups: dict[str, list[Any]] = {}
    for order in orders:
        groups.setdefault(group_key(partner, order), []).append(order)
    batches = []
    for members in groups.values():
        for start in range(0, len(members), limit):
            chunk = members[start : start + limit]
            batches.append((content_msg_id(chunk), chunk))
    return batches


def content_msg_id(orders: list[Any]) -> str:
    """A MsgId (≤35) that only these orders give: the same orders built again keep it."""
    digest = hashlib.sha256()
    for order in orders:
        digest.update(repr(order).encode())
    return f"KBNN-B-{digest.hexdigest()[:24].upper()}"
