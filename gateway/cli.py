"""The `gateway` command line: services, demo, bank simulator and admin views."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click
from pika.exceptions import AMQPError

from gateway import logs
from gateway.adapters.amqp_connect import BrokerUnreachableError
from gateway.banksim.command import bank_sim
from gateway.commands import existing_database, iso
from gateway.commands import files as files_commands
from gateway.commands import metrics as metrics_commands
from gateway.commands.audit import audit
from gateway.commands.console import console
from gateway.commands.db import db
from gateway.commands.dlq import dlq
from gateway.commands.keys import keys
from gateway.commands.quarantine import quarantine
from gateway.commands.reconcile import reconcile
from gateway.commands.users import users
from gateway.commands.verify import verify
from gateway.config import Settings, load_settings
from gateway.demo.command import demo
from gateway.errors import ConfigError, GatewayError
from gateway.service.ports import INSTANCE_ROLES, MAIN_ROLE


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


_HELP = ("-h", "--help")


class _Unloaded:
    """The settings of a command that asked only for its help while conf/gateway.toml cannot be
    read: the help is shown; anything that reads a setting meets the file's error."""

    def __init__(self, error: ConfigError) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        raise self._error


class _Gateway(click.Group):
    """The command group; notes whether the words after it ask for a command's help."""

    def invoke(self, ctx: click.Context) -> Any:
        words = [*getattr(ctx, "_protected_args", []), *ctx.args]
        ctx.meta["gateway.help_asked"] = any(word in _HELP for word in words)
        return super().invoke(ctx)


@click.group(cls=_Gateway, context_settings={"help_option_names": list(_HELP)})
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Log as JSON lines (production) or readable console lines.",
)
@click.pass_context
def cli(ctx: click.Context, log_format: str | None) -> None:
    """KBNN bank gateway: payment orders in, signed ISO 20022 out, bank reports in, postings out."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        if not ctx.meta.get("gateway.help_asked"):
            raise
        # A command's --help needs no setting: it is shown, a broken file does not hide it.
        logs.configure(log_format or "console", "info")
        ctx.obj = _Unloaded(exc)
        return
    logs.configure(
        log_format or settings.log_format,
        settings.log_level,
        # Services log the database pool's warnings; a command's error says the reason.
        pool_warnings=ctx.invoked_subcommand in ("run", "console", "demo"),
    )
    ctx.obj = settings


@cli.command()
@click.option(
    "--role",
    type=click.Choice(["all", *INSTANCE_ROLES]),
    default="all",
    show_default=True,
    help="main: intake, batching, sending; reports: applying the banks' files from the broker;"
    " all: both (the reports role in --reports-processes child processes).",
)
@click.option(
    "--reports-processes",
    default=None,
    metavar="N|auto",
    help="With --role all: the reports role in N processes started beside this one (0: in this"
    " one); auto (the default, setting reports_processes): one per core beyond the first."
    " See docs/operations.md.",
)
@click.pass_context
def run(ctx: click.Context, role: str, reports_processes: str | None) -> None:
    """Run the gateway services (intake, batcher, relay, inbound) until interrupted."""
    from gateway.bootstrap import build_gateway, open_database, start_gateway
    from gateway.processes import ReportsProcesses, follow_parent, reports_process_count
    from gateway.runtime import Runtime, tune_allocator, tune_interpreter

    tune_allocator()  # before any thread of this process allocates
    follow_parent()  # a reports process of a `gateway run`: it ends with it
    settings = _settings(ctx)
    if reports_processes is not None and role != "all":
        raise click.UsageError(
            f"--reports-processes starts processes for the reports role beside the main role;"
            f" with --role {role} this process runs one role alone"
        )
    children = 0
    if role == "all":
        children = reports_process_count(reports_processes or settings.reports_processes)
    roles = (MAIN_ROLE,) if children else INSTANCE_ROLES if role == "all" else (role,)
    runtime = Runtime()
    storage = open_database(settings)
    storage.claim_instance(roles)  # SQLite: one process runs main, any number reports
    gateway = build_gateway(settings, storage)
    tune_interpreter()
    reports = ReportsProcesses(children, _group_options(ctx), metrics_port=settings.metrics_port)
    try:
        reports.start()
        if children:
            runtime.add("reports-processes", reports.watch)
        start_gateway(gateway, runtime, roles)
        more = f"{children} more process" + ("es" if children > 1 else "")
        shape = f" (bank files applied by {more})" if children else ""
        click.echo(
            f"gateway running against {_redact(settings.amqp_url)}{shape}; Ctrl-C stops", err=True
        )
        runtime.wait()
    except KeyboardInterrupt:  # Ctrl-C while it was starting
        runtime.stop()
    except BaseException:  # a start that failed midway: the workers already started stop cleanly
        runtime.stop()
        raise
    finally:
        reports.stop()
    if reports.failure:
        raise GatewayError(reports.failure)


def _group_options(ctx: click.Context) -> list[str]:
    """The command group's options given to this process, for its child processes (the rest
    they read from the same environment and configuration)."""
    given = ctx.parent.params.get("log_format") if ctx.parent else None
    return ["--log-format", given] if given else []


def _read_orders(path: Path) -> list[dict[str, Any]]:
    """The orders of a JSON file (one, or a list) or a CSV file; none is an error."""
    try:
        # utf-8-sig: a byte-order mark, as spreadsheets write "CSV UTF-8", is not text.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GatewayError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() == ".csv":
        orders = _orders_from_csv(path, text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GatewayError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
        orders = data if isinstance(data, list) else [data]
        for index, item in enumerate(orders):
            if not isinstance(item, dict):
                raise GatewayError(f"{path}: item {index} is not a JSON object (an order)")
    if not orders:
        raise GatewayError(f"{path}: no order in it; nothing published")
    return orders


def _orders_from_csv(path: Path, text: str) -> list[dict[str, Any]]:
    """The rows of a CSV file as orders: comma-separated, or semicolons or tabs as some
    spreadsheets write them (the header line says which)."""
    header = text.split("\n", 1)[0]
    # The separator alone is taken from the header (the most frequent of the three); quoting
    # stays a spreadsheet's, a quote in a field doubled ("ACME ""Ltd""").
    delimiter = max(",;\t", key=header.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    orders = []
    for line, row in enumerate(reader, start=2):
        try:
            orders.append(_order_from_csv(row))
        except KeyError as exc:
            columns = ", ".join(reader.fieldnames or ()) or "nothing"
            raise GatewayError(
                f"{path}: line {line}: no column {exc.args[0]} (the header has {columns})"
            ) from None
    return orders


def _order_from_csv(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as a payment-order/1 order (KeyError: a column missing)."""
    order: dict[str, Any] = {
        "schema": "payment-order/1",
        "order_id": row["order_id"],
        "category": row["category"],
        "debtor": {
            "name": row["debtor_name"],
            "account": {"number": row["debtor_account"], "scheme": "BBAN"},
            "agent_bic": row["debtor_bic"],
        },
        "creditor": {
            "name": row["creditor_name"],
            "account": {"number": row["creditor_account"], "scheme": "BBAN"},
            "agent_bic": row["creditor_bic"],
        },
        "amount": row["amount"],
        "currency": row["currency"],
        "requested_execution_date": row["requested_execution_date"],
        "remittance": row.get("remittance", ""),
    }
    if row.get("batch_ref"):
        order["batch_ref"] = row["batch_ref"]
    return order


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def submit(ctx: click.Context, file: Path) -> None:
    """Publish payment orders from a JSON (one or a list) or CSV file to treasury.orders."""
    from gateway.adapters import topology
    from gateway.adapters.amqp_connect import COMMAND_WAIT
    from gateway.adapters.rabbitmq import Publisher
    from gateway.service.channels import order_routing_key

    settings = _settings(ctx)
    orders = _read_orders(file)
    publisher = Publisher(settings.amqp_url, within=COMMAND_WAIT)
    try:
        for order in orders:
            publisher.publish(
                topology.ORDERS_EXCHANGE,
                order_routing_key(order),
                json.dumps(order, ensure_ascii=False).encode("utf-8"),
                message_id=str(order.get("order_id", "")),
            )
    finally:
        publisher.close()
    click.echo(f"published {len(orders)} order(s) to treasury.orders")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Orders and files by state, and what waits for an admin (parked, quarantined)."""
    from gateway.bootstrap import inbound_folder
    from gateway.service.overview import inbound_folders, overview

    settings = _settings(ctx)
    storage = existing_database(settings)
    result = overview(storage.queries, settings)
    result["inbound_folders"] = inbound_folders(settings, lambda p: inbound_folder(settings, p))
    result["broker"] = _broker_status(settings)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    click.echo(f"database {storage.describe()}")
    for section in ("orders", "files"):
        click.echo(f"{section} by state:")
        for state, count in result[section].items():
            click.echo(f"  {state:<22}{count:>8}")
    outbox = ("outbox_pending", "outbox_parked", "outbox_dropped")
    for key in (
        *outbox,
        "quarantined_inbound",
        "unmatched_lines",
        "files_overdue",
        "duplicate_file_answers",
    ):
        click.echo(f"{key.replace('_', ' '):<24}{result[key]:>8}")
    for answer in result["duplicate_answered_files"]:
        click.echo(
            f"  {answer['partner']} answered DUPL ({answer['msg_id']}) to"
            f" {answer['original_msg_id']}, which is {answer['file_state']}"
        )
    if result["claims"]:
        click.echo("work claimed by instances (expired: the holder died or stalled):")
    for claim in result["claims"]:
        what = f"{claim['messages']} outbox messages" if claim["kind"] == "outbox" else claim["key"]
        until = "expired" if claim["expired"] else f"until {claim['expires_at']}"
        click.echo(f"  {claim['kind']:<12} {what} by {claim['owner']}, {until}")
    if result["inbound_folders"]:
        click.echo("inbound folders (reports waiting / claimed, not finished):")
    for partner, seen in result["inbound_folders"].items():
        if "error" in seen:
            click.echo(f"  {partner:<22}unreadable: {seen['error']}")
            continue
        oldest = seen["oldest_claim_seconds"]
        since = f" (oldest {oldest} s)" if oldest is not None else ""
        partial = f", {seen['partial']} being written" if seen["partial"] else ""
        claimed = f"{seen['claimed']} claimed{since}"
        click.echo(f"  {partner:<22}{seen['waiting']:>8} waiting{partial}, {claimed}")
    _echo_broker(result["broker"])


@cli.group()
def orders() -> None:
    """Look at orders."""


@orders.command("show")
@click.argument("order_id")
@click.pass_context
def orders_show(ctx: click.Context, order_id: str) -> None:
    """One order: its state, file, bank status and reason."""
    from dataclasses import asdict

    order = existing_database(_settings(ctx)).queries.order(order_id)
    if order is None:
        raise GatewayError(f"no order {order_id!r}")
    data = asdict(order)
    data["payload"] = json.loads(data["payload"])
    click.echo(
        json.dumps(
            data,
            ensure_ascii=False,
            indent=2,
            default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v),
        )
    )


def _echo_broker(broker: dict[str, Any]) -> None:
    click.echo(f"broker nodes ({len(broker['nodes'])}): " + ", ".join(broker["nodes"]))
    if broker["quorum_group_size"]:
        click.echo(f"  quorum queues declared with {broker['quorum_group_size']} members")
    for process in broker["processes"]:
        click.echo(f"  gateway run pid {process['pid']} (as of {process['written_at']}):")
        for link in process["links"]:
            where = link["node"] if link["connected"] else f"reconnecting (was {link['node']})"
            click.echo(
                f"    {link['worker']:<20}{where:<24} since {link['connected_at']},"
                f" failovers {link['failovers']}, reconnects {link['reconnects']}"
            )


def _broker_status(settings: Settings) -> dict[str, Any]:
    """The configured broker nodes and, per running `gateway run` of this home, the node each
    of its connections is on and how often it failed over."""
    from gateway.adapters.amqp_connect import broker_urls, node_of, read_links
    from gateway.bootstrap import BROKER_LINKS_DIR

    return {
        "nodes": [node_of(url) for url in broker_urls(settings.amqp_url)],
        "quorum_group_size": settings.quorum_group_size,
        "processes": read_links(settings.path(BROKER_LINKS_DIR)),
    }


def _redact(url: str) -> str:
    from gateway.adapters.amqp_connect import redact

    return redact(url)


def main() -> None:
    """Entry point: one clear line and a non-zero exit for every known failure."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GatewayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except BrokerUnreachableError as exc:  # the nodes tried, the wait and the last one's reason
        click.echo(f"error: broker unavailable: {exc}", err=True)
        sys.exit(1)
    except AMQPError as exc:
        click.echo(f"error: broker unavailable ({exc!r}); is RabbitMQ running?", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# The bank simulator and the demo are tools beside the product: their commands live with them
# (this module is the one product module that names them; see the import rule in pyproject.toml).
cli.add_command(demo)
cli.add_command(bank_sim)
cli.add_command(files_commands.files)
cli.add_command(iso.build)
cli.add_command(iso.parse)
cli.add_command(keys)
cli.add_command(verify)
cli.add_command(dlq)
cli.add_command(reconcile)
cli.add_command(metrics_commands.metrics)
cli.add_command(db)
cli.add_command(quarantine)
cli.add_command(audit)
cli.add_command(users)
cli.add_command(console)
