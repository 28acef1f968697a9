"""`gateway dlq`: the messages parked for an admin, on the broker and in the outbox.

The rules are gateway.service.dead_letters'; this module reads the options and prints.
"""

from __future__ import annotations

import getpass
import json

import click

from gateway.commands import admin
from gateway.errors import GatewayError


@click.group()
def dlq() -> None:
    """Parked messages: list, show, replay (put back) or drop (with a recorded reason)."""


@dlq.command("list")
@click.pass_context
def dlq_list(ctx: click.Context) -> None:
    """How many messages wait in each parking queue and in the outbox."""
    for queue, count in admin(ctx).dead_letters().counts():
        click.echo(f"{queue:<32}{'not declared' if count is None else count:>14}")


@dlq.command("show")
@click.argument("queue")
@click.option("--limit", default=20, show_default=True, help="Most messages to show.")
@click.pass_context
def dlq_show(ctx: click.Context, queue: str, limit: int) -> None:
    """The parked messages of QUEUE (or `outbox`) as JSON lines: id, reason, body."""
    shown = admin(ctx).dead_letters().show(queue, limit)
    for item in shown.items:
        line: dict[str, object] = {"message_id": item.message_id}
        if item.to is not None:
            line["to"] = item.to
        line |= {"reason": item.reason, "parked_at": item.parked_at}
        if item.redelivered is not None:
            line["redelivered"] = item.redelivered
        line["body"] = item.preview()
        click.echo(json.dumps(line, ensure_ascii=False, default=str))
    if shown.total > len(shown.items):
        click.echo(f"... and {shown.total - len(shown.items)} more", err=True)


@dlq.command("replay")
@click.argument("queue")
@click.option("--id", "ids", multiple=True, help="message_id to put back (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Put back every parked message.")
@click.pass_context
def dlq_replay(ctx: click.Context, queue: str, ids: tuple[str, ...], everything: bool) -> None:
    """Put parked messages of QUEUE (or `outbox`) back in line, once their cause is mended."""
    if not ids and not everything:
        raise GatewayError("name the messages with --id MESSAGE_ID, or pass --all")
    done = admin(ctx).dead_letters().replay(queue, None if everything else ids, getpass.getuser())
    click.echo(f"replayed {len(done.message_ids)} message(s) to {queue}")
    if done.missing:
        raise GatewayError(f"not parked in {queue}: {', '.join(done.missing)}")


@dlq.command("drop")
@click.argument("queue")
@click.option("--id", "message_id", required=True, help="message_id of the parked message.")
@click.option("--reason", required=True, help="Why it is dropped (recorded with the message).")
@click.pass_context
def dlq_drop(ctx: click.Context, queue: str, message_id: str, reason: str) -> None:
    """Take one parked message out for good; it is kept in the database with REASON."""
    admin(ctx).dead_letters().drop(queue, message_id, reason, getpass.getuser())
    click.echo(f"dropped {message_id} from {queue}; kept with the reason")
