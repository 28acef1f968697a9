"""`gateway dlq`: the messages parked for an admin, on the broker and in the outbox."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
import pika
from pika.adapters.blocking_connection import BlockingChannel

from gateway.adapters import topology
from gateway.adapters.rabbitmq import (
    PARKED_AT_HEADER,
    PARKED_REASON_HEADER,
    RETRIES_HEADER,
    connect,
)
from gateway.commands import existing_database
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.service.ports import AuditEntry, DlqAction

# The outbox's parked messages are addressed as this pseudo-queue.
OUTBOX = "outbox"
# Headers that describe a parking, not the message: removed when it is put back.
_PARKING_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    PARKED_REASON_HEADER,
    PARKED_AT_HEADER,
    RETRIES_HEADER,
)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def _known(settings: Settings, queue: str) -> str:
    queues = topology.consumed_queues(settings.partners)
    if queue != OUTBOX and queue not in queues:
        raise GatewayError(f"no queue {queue!r}: choose one of {', '.join([*queues, OUTBOX])}")
    return queue


def _why(headers: dict[str, Any]) -> str:
    """Why a message was parked: the gateway's reason, else the broker's dead-letter record."""
    reason = headers.get(PARKED_REASON_HEADER)
    if reason:
        return str(reason)
    deaths = headers.get("x-death") or []
    if deaths:
        death = deaths[0]
        return f"broker dead-lettered it ({death.get('reason')}, {death.get('count')} time(s))"
    return "no reason recorded"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def _parked(settings: Settings, queue: str) -> Iterator[tuple[BlockingChannel, list[Any]]]:
    """Every message in `<queue>.parking`, taken without ack; those not acked go back."""
    conn = connect(settings.amqp_url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        taken: list[Any] = []
        while True:
            method, props, body = channel.basic_get(topology.parking_queue(queue))
            if method is None:
                break
            taken.append((method, props, body))
        yield channel, taken
    finally:
        if conn.is_open:
            conn.close()


@click.group()
def dlq() -> None:
    """Parked messages: list, show, replay (put back) or drop (with a recorded reason)."""


@dlq.command("list")
@click.pass_context
def dlq_list(ctx: click.Context) -> None:
    """How many messages wait in each parking queue and in the outbox."""
    settings = _settings(ctx)
    conn = connect(settings.amqp_url)
    try:
        channel = conn.channel()
        for queue in topology.consumed_queues(settings.partners):
            try:
                declared = channel.queue_declare(topology.parking_queue(queue), passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                channel = conn.channel()
                click.echo(f"{queue:<32}{'not declared':>14}")
                continue
            click.echo(f"{queue:<32}{declared.method.message_count:>14}")
    finally:
        conn.close()
    if settings.db_url or settings.db_file.exists():
        parked = existing_database(settings).queries.outbox_parked()
        click.echo(f"{OUTBOX:<32}{len(parked):>14}")


@dlq.command("show")
@click.argument("queue")
@click.option("--limit", default=20, show_default=True, help="Most messages to show.")
@click.pass_context
def dlq_show(ctx: click.Context, queue: str, limit: int) -> None:
    """The parked messages of QUEUE (or `outbox`) as JSON lines: id, reason, body."""
    settings = _settings(ctx)
    if _known(settings, queue) == OUTBOX:
        parked = existing_database(settings).queries.outbox_parked(dropped=True)
        for item in parked[:limit]:
            line: dict[str, str | None] = {
                "message_id": item.message_id,
                "to": f"{item.exchange}/{item.routing_key}",
                "parked_at": item.parked_at.isoformat(),
            }
            click.echo(json.dumps({**line, "reason": item.parked_why, "body": _preview(item.body)}))
        return
    with _parked(settings, queue) as (_, taken):
        for method, props, body in taken[:limit]:
            headers = dict(props.headers or {})
            line = {
                "message_id": props.message_id,
                "reason": _why(headers),
                "parked_at": _text(headers.get(PARKED_AT_HEADER, "")) or None,
                "redelivered": method.redelivered,
                "body": _preview(body),
            }
            click.echo(json.dumps(line, ensure_ascii=False, default=str))
        if len(taken) > limit:
            click.echo(f"... and {len(taken) - limit} more", err=True)


def _preview(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    return text if len(text) <= 400 else text[:400] + "..."


def _record(
    settings: Settings,
    *,
    action: str,
    queue: str,
    message_id: str | None,
    reason: str | None,
    parked_why: str | None,
    body: bytes | None,
    headers: dict[str, Any],
) -> None:
    from gateway.service.audit import logged

    now = datetime.now(UTC)
    detail = {"queue": queue} | ({"reason": reason} if reason else {})
    with existing_database(settings).unit_of_work() as uow:
        uow.admin.record_dlq_action(
            DlqAction(
                action=action,
                queue=queue,
                message_id=message_id,
                reason=reason,
                parked_why=parked_why,
                body=body,
                headers=headers,
                actor=getpass.getuser(),
            ),
            now,
        )
        # The same action in the hash-chained audit trail, in the same transaction.
        row = uow.audit.append(
            AuditEntry(getpass.getuser(), "cli", f"dlq.{action}", message_id or "", detail), now
        )
    logged(row)


@dlq.command("replay")
@click.argument("queue")
@click.option("--id", "ids", multiple=True, help="message_id to put back (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Put back every parked message.")
@click.pass_context
def dlq_replay(ctx: click.Context, queue: str, ids: tuple[str, ...], everything: bool) -> None:
    """Put parked messages of QUEUE (or `outbox`) back in line, once their cause is mended."""
    settings = _settings(ctx)
    if not ids and not everything:
        raise GatewayError("name the messages with --id MESSAGE_ID, or pass --all")
    wanted = set(ids)
    replayed = 0
    if _known(settings, queue) == OUTBOX:
        storage = existing_database(settings)
        for item in storage.queries.outbox_parked():
            message_id, why = item.message_id, item.parked_why
            if item.sent:
                continue
            if everything or message_id in wanted:
                with storage.unit_of_work() as uow:
                    uow.outbox.unpark(message_id)
                _record(
                    settings,
                    action="replay",
                    queue=queue,
                    message_id=message_id,
                    reason=None,
                    parked_why=why,
                    body=None,
                    headers={},
                )
                wanted.discard(message_id)
                replayed += 1
    else:
        with _parked(settings, queue) as (channel, taken):
            for method, props, body in taken:
                if not (everything or props.message_id in wanted):
                    continue
                headers = dict(props.headers or {})
                kept = {k: v for k, v in headers.items() if k not in _PARKING_HEADERS}
                channel.basic_publish(
                    "",
                    queue,
                    body,
                    pika.BasicProperties(
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=props.message_id,
                        content_type=props.content_type,
                        headers=kept,
                    ),
                    mandatory=True,
                )
                _record(
                    settings,
                    action="replay",
                    queue=queue,
                    message_id=props.message_id,
                    reason=None,
                    parked_why=_why(headers),
                    body=None,
                    headers=kept,
                )
                channel.basic_ack(method.delivery_tag)
                wanted.discard(props.message_id or "")
                replayed += 1
    click.echo(f"replayed {replayed} message(s) to {queue}")
    if wanted:
        raise GatewayError(f"not parked in {queue}: {', '.join(sorted(wanted))}")


@dlq.command("drop")
@click.argument("queue")
@click.option("--id", "message_id", required=True, help="message_id of the parked message.")
@click.option("--reason", required=True, help="Why it is dropped (recorded with the message).")
@click.pass_context
def dlq_drop(ctx: click.Context, queue: str, message_id: str, reason: str) -> None:
    """Take one parked message out for good; it is kept in the database with REASON."""
    settings = _settings(ctx)
    if not reason.strip():
        raise GatewayError("--reason must say why the message is dropped")
    if _known(settings, queue) == OUTBOX:
        storage = existing_database(settings)
        rows = [p for p in storage.queries.outbox_parked() if p.message_id == message_id]
        with storage.unit_of_work() as uow:
            if not rows or not uow.outbox.drop(message_id, datetime.now(UTC)):
                raise GatewayError(f"no parked message {message_id!r} in the outbox")
        _record(
            settings,
            action="drop",
            queue=queue,
            message_id=message_id,
            reason=reason,
            parked_why=rows[0].parked_why,
            body=rows[0].body,
            headers={},
        )
        click.echo(f"dropped {message_id} from {queue}; kept with the reason")
        return
    with _parked(settings, queue) as (channel, taken):
        for method, props, body in taken:
            if props.message_id != message_id:
                continue
            headers = dict(props.headers or {})
            # Recorded first: a crash between the two leaves the message parked, never lost.
            _record(
                settings,
                action="drop",
                queue=queue,
                message_id=message_id,
                reason=reason,
                parked_why=_why(headers),
                body=body,
                headers=headers,
            )
            channel.basic_ack(method.delivery_tag)
            click.echo(f"dropped {message_id} from {queue}; kept with the reason")
            return
    raise GatewayError(f"no parked message {message_id!r} in {queue}")
