"""pain.002 status reports: each line moves its order forward, or is kept as unmatched."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from functools import cache

import structlog

from gateway.config import PartnerProfile
from gateway.domain.states import FileState, TxState, can_move, state_for_status
from gateway.iso20022.model import StatusReport, TxStatus
from gateway.reasons import bounded
from gateway.service.channels import ADMIN_EXCHANGE
from gateway.service.clock import stamp
from gateway.service.deadlines import clear_overdue
from gateway.service.notifications import APPLY_CHUNK, MORE, Step
from gateway.service.ports import (
    BankAnswer,
    DuplicateAnswer,
    OutboxMessage,
    UnitOfWork,
    UnmatchedLine,
)
from gateway.service.transitions import advance

log = structlog.get_logger("gateway.inbound")

# The group reason of a bank refusing a file whose MsgId it has already received.
DUPLICATE_FILE = "DUPL"
# Routing key of the admin event on `gateway.admin`.
FILE_DUPLICATE_ANSWER = "admin.file_duplicate_answer"

# What a group status says of the whole file.
_FILE_STATE = {
    "ACTC": FileState.ACKNOWLEDGED,
    "ACCP": FileState.ACKNOWLEDGED,
    "ACSP": FileState.ACKNOWLEDGED,
    "ACSC": FileState.ACKNOWLEDGED,
    "PART": FileState.PARTIALLY_REJECTED,
    "RJCT": FileState.REJECTED,
}


def apply_report(
    uow: UnitOfWork, partner: PartnerProfile, report: StatusReport, raw: bytes, now: datetime
) -> str:
    """Apply a verified pain.002 in the caller's transaction: applied or duplicate."""
    log_ = log.bind(msg_id=report.msg_id, original_msg_id=report.original_msg_id)
    if not uow.inbound.first_sight(partner.name, report.msg_id, "pain.002", raw, now):
        log_.info("report.duplicate")
        return "duplicate"
    owner = uow.files.partner_of(report.original_msg_id)
    if owner != partner.name:
        reason = bounded(
            f"{partner.name} reports on {report.original_msg_id}, a file we never sent to it"
            + (f" (it went to {owner})" if owner else "")
        )
        uow.inbound.unmatched(
            UnmatchedLine(
                partner=partner.name,
                msg_id=report.msg_id,
                reference=report.original_msg_id,
                reason=reason,
                detail={"group_status": report.group_status},
            ),
            now,
        )
        log_.warning("report.unmatched", reason=reason)
        return "applied"
    if is_duplicate_answer(report):
        return _duplicate_answer(uow, partner, report, now)
    lines = status_lines(uow, report)
    moved = _apply_lines(uow, partner, report, lines, now)
    _file_reported(uow, partner, report, moved, bool(lines), now)
    log_.info("report.applied", lines=len(lines), moved=moved, group_status=report.group_status)
    return "applied"


def report_steps(
    partner: PartnerProfile,
    report: StatusReport,
    raw: bytes,
    now: datetime,
    chunk: int = APPLY_CHUNK,
) -> Iterator[Step]:
    """A verified pain.002 applied in transactions of at most `chunk` status lines, as
    `notification_steps` does for a camt.054 (the caller runs steps while they return MORE):
    the file is kept by the last step, which also records what the report says of the file;
    lines applied before a stop move nothing again (an order does not move back).

    The lines are known once the first step has read the file's orders (a group status covers
    the orders the report does not name), so the later steps are made as they are asked for.
    """
    log_ = log.bind(msg_id=report.msg_id, original_msg_id=report.original_msg_id)
    # The file's hash, for the steps before the last (a large file hashed once, not per step).
    digest = cache(lambda: hashlib.sha256(raw).hexdigest())
    runs: list[list[TxStatus]] = []
    # Orders moved by each run of lines (a step run again replaces its count).
    moved: dict[int, int] = {}

    def first(uow: UnitOfWork) -> str:
        if uow.files.partner_of(report.original_msg_id) != partner.name or is_duplicate_answer(
            report
        ):
            return apply_report(uow, partner, report, raw, now)  # kept or recorded: one step
        lines = status_lines(uow, report)
        runs[:] = [lines[start : start + chunk] for start in range(0, len(lines), chunk)]
        if not runs:
            runs.append([])  # a report naming no order still records the file's status
        return run(uow, 0)

    def run(uow: UnitOfWork, index: int) -> str:
        last = index == len(runs) - 1
        if last:
            new = uow.inbound.first_sight(partner.name, report.msg_id, "pain.002", raw, now)
        else:
            new = not uow.inbound.known_file(partner.name, report.msg_id, digest())
        if not new:
            log_.info("report.duplicate")
            return "duplicate"
        moved[index] = _apply_lines(uow, partner, report, runs[index], now)
        if not last:
            return MORE
        lines = sum(map(len, runs))
        total = sum(moved.values())
        _file_reported(uow, partner, report, total, bool(lines), now)
        log_.info(
            "report.applied",
            lines=lines,
            moved=total,
            group_status=report.group_status,
            transactions=len(runs),
        )
        return "applied"

    def later(index: int) -> Step:
        return lambda uow: run(uow, index)

    yield first
    yield from (later(index) for index in range(1, len(runs)))


def _apply_lines(
    uow: UnitOfWork,
    partner: PartnerProfile,
    report: StatusReport,
    lines: list[TxStatus],
    now: datetime,
) -> int:
    """Apply status lines in the caller's transaction; how many orders moved."""
    together, alone = _moved_together(uow, report, lines)
    moved = 0
    for (source, target, status, code, text), order_ids in together.items():
        answer = BankAnswer(status_code=status, reason_code=code, reason_text=text)
        uow.orders.move_together(order_ids, source, target, answer, now)
        moved += len(order_ids)
    uow.orders.prefetch([line.original_end_to_end_id or "" for line in alone])
    return moved + sum(_apply_line(uow, partner, report, line, now) for line in alone)


# Orders moved by one statement: from, to, and the bank's status, reason code and reason text.
_Together = tuple[TxState, TxState, str, str | None, str | None]


def _moved_together(
    uow: UnitOfWork, report: StatusReport, lines: list[TxStatus]
) -> tuple[dict[_Together, list[str]], list[TxStatus]]:
    """The lines that move an order of this file to a state that is not final (an accepted
    file: thousands of ACCP lines), by move, to be made a statement per thousand orders; and the
    lines to apply one by one (`_apply_line`).

    A line moved together does what `_apply_line` does with it: its order is in the file, so
    nothing is kept as unmatched; a move that would not go forward (a late or repeated status)
    moves nothing; a state that is not final writes no posting. Every line of an order named
    more than once is applied alone, in the report's order."""
    targets = {line.status: state_for_status(line.status) for line in lines}
    movable = {status for status, target in targets.items() if target and not target.final}
    named = Counter(line.original_end_to_end_id or "" for line in lines)
    candidates = [
        line.original_end_to_end_id or ""
        for line in lines
        if line.status in movable and named[line.original_end_to_end_id or ""] == 1
    ]
    states = uow.orders.states_in_file(candidates, report.original_msg_id) if candidates else {}
    together: dict[_Together, list[str]] = {}
    alone: list[TxStatus] = []
    for line in lines:
        order_id = line.original_end_to_end_id or ""
        source = states.get(order_id)
        target = targets[line.status]
        if source is None or target is None or line.status not in movable or named[order_id] > 1:
            alone.append(line)
            continue
        if can_move(source, target):
            key = (source, target, line.status, line.reason_code, line.reason_text)
            together.setdefault(key, []).append(order_id)
    return together, alone


def _file_reported(
    uow: UnitOfWork,
    partner: PartnerProfile,
    report: StatusReport,
    moved: int,
    any_lines: bool,
    now: datetime,
) -> None:
    """What a report says of the file: its status (when it moved orders, or names none), the
    time of its report, and the end of its deadline watch."""
    if report.group_status in _FILE_STATE and (moved or not any_lines):
        uow.files.set_status(report.original_msg_id, _FILE_STATE[report.group_status], now)
    uow.files.status_reported(report.original_msg_id, now)
    clear_overdue(uow, partner.name, report.original_msg_id, now)


def is_duplicate_answer(report: StatusReport) -> bool:
    """A group-level RJCT with reason DUPL: the bank has this MsgId already (our resend after a
    crash, say) and refuses the copy, not the payments of the file it is executing."""
    return report.group_status == "RJCT" and report.group_reason_code == DUPLICATE_FILE


def _duplicate_answer(
    uow: UnitOfWork, partner: PartnerProfile, report: StatusReport, now: datetime
) -> str:
    """Keep the bank's answer to a copy of a file it already has, and move nothing.

    The orders and the file stay where the original's reports put them (or will put them): no
    status is recorded on the file, so it keeps waiting for the original's pain.002 and stays
    under its deadline watch. Admins hear of it by a log event, `gateway status`, the metrics and
    an admin event through the outbox.
    """
    original = report.original_msg_id
    answer = DuplicateAnswer(partner.name, report.msg_id, original, report.group_reason_text)
    uow.inbound.record_duplicate_answer(answer, now)
    event = {
        "event": "file_duplicate_answer",
        "partner": partner.name,
        "msg_id": report.msg_id,
        "original_msg_id": original,
        "reason_code": DUPLICATE_FILE,
        "reason_text": report.group_reason_text,
        "received_at": stamp(now),
    }
    uow.outbox.enqueue(
        OutboxMessage(
            message_id=f"dupl:{partner.name}:{report.msg_id}",
            exchange=ADMIN_EXCHANGE,
            routing_key=FILE_DUPLICATE_ANSWER,
            body=json.dumps(event, sort_keys=True).encode(),
            headers={"partner": partner.name, "msg_id": original},
        ),
        now,
    )
    log.warning(
        "report.duplicate_file",
        msg_id=report.msg_id,
        original_msg_id=original,
        reason_text=report.group_reason_text,
    )
    return "applied"


def status_lines(uow: UnitOfWork, report: StatusReport) -> list[TxStatus]:
    """One line per order the report speaks of.

    A transaction's own status comes first; a PmtInf status covers that group's other orders;
    a group status covers the file's remaining orders (when it names a state at all).
    """
    lines = [
        replace(s, original_end_to_end_id=_order_id(s)) for s in report.transactions if _order_id(s)
    ]
    covered = {s.original_end_to_end_id for s in lines}

    def cover(order_ids: list[str], status: str, code: str | None, text: str | None) -> None:
        for order_id in order_ids:
            if order_id not in covered:
                covered.add(order_id)
                lines.append(TxStatus(order_id, status, reason_code=code, reason_text=text))

    for group in report.transactions:
        if _order_id(group) is None and group.original_pmt_inf_id:
            ids = uow.orders.ids_in_group(report.original_msg_id, group.original_pmt_inf_id)
            cover(ids, group.status, group.reason_code, group.reason_text)
    if report.group_status and state_for_status(report.group_status) is not None:
        cover(
            uow.orders.ids_in_file(report.original_msg_id),
            report.group_status,
            report.group_reason_code,
            report.group_reason_text,
        )
    return lines


def _order_id(line: TxStatus) -> str | None:
    """The order a line speaks of: its EndToEndId, else its InstrId (we send the same id)."""
    return line.original_end_to_end_id or line.original_instr_id


def _apply_line(
    uow: UnitOfWork, partner: PartnerProfile, report: StatusReport, line: TxStatus, now: datetime
) -> int:
    order_id = line.original_end_to_end_id or ""
    order = uow.orders.get(order_id)
    if order is None:
        return _keep(uow, partner, report, line, f"no order {order_id}", now)
    if order.msg_id != report.original_msg_id:
        reason = f"order {order_id} was not sent in {report.original_msg_id}"
        return _keep(uow, partner, report, line, reason, now)
    target = state_for_status(line.status)
    if target is None:
        return 0
    moved = advance(
        uow,
        order,
        target,
        now,
        BankAnswer(
            status_code=line.status, reason_code=line.reason_code, reason_text=line.reason_text
        ),
    )
    current = order.state
    if not moved and target.final and current.final and current is not target:
        # The bank now says the opposite of what it said before: a person must look.
        reason = f"{line.status} for order {order_id}, which is already {order.state}"
        _keep(uow, partner, report, line, reason, now)
    return int(moved)


def _keep(
    uow: UnitOfWork,
    partner: PartnerProfile,
    report: StatusReport,
    line: TxStatus,
    reason: str,
    now: datetime,
) -> int:
    """Keep a status line that moves nothing, with the reason, for an admin; moves 0 orders."""
    reason = bounded(reason)
    uow.inbound.unmatched(
        UnmatchedLine(
            partner=partner.name,
            msg_id=report.msg_id,
            reference=line.original_end_to_end_id,
            reason=reason,
            detail={"status": line.status, "reason": line.reason_code},
        ),
        now,
    )
    log.warning("report.line_unmatched", end_to_end_id=line.original_end_to_end_id, reason=reason)
    return 0
