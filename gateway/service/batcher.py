"""Batcher: cuts received orders into signed pain.001 files and puts them in the outbox."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from lxml import etree

from gateway import crashpoints
from gateway.config import PartnerProfile, Settings
from gateway.domain.money import total
from gateway.domain.orders import PaymentOrder, order_from_payload
from gateway.domain.states import TxState
from gateway.domain.text import Charset, fit
from gateway.errors import GatewayError, InvalidMessage
from gateway.iso20022 import apphdr, xsd
from gateway.iso20022.model import OutboundBatch, PaymentGroup
from gateway.iso20022.pain001 import WrittenPain001, write_pain001
from gateway.metrics import NO_METRICS, Metrics
from gateway.service.channels import PRIORITY_HEADER, TO_BANK_EXCHANGE
from gateway.service.clock import Clock, utcnow
from gateway.service.decoded import DecodedOrders
from gateway.service.intake import is_urgent_group
from gateway.service.ports import (
    BankAnswer,
    ClaimLost,
    OutboundFile,
    OutboxMessage,
    Storage,
    StoredOrder,
    UnitOfWork,
    WaitingGroup,
)
from gateway.service.transitions import advance
from gateway.signing import KeySource, SignedFile, sign_for_partner

log = structlog.get_logger("gateway.batcher")


def make_msg_id(partner: PartnerProfile, day: str, seq: int) -> str:
    """A MsgId unique per gateway database: prefix, date, partner, sequence (≤35 characters)."""
    return f"KBNN-{day}-{partner.name[:8].upper()}-{seq:07d}"


def payment_groups(msg_id: str, orders: list[PaymentOrder]) -> tuple[PaymentGroup, ...]:
    """One PmtInf per category within a file (debtor and date are already shared)."""
    by_category: dict[str, list[PaymentOrder]] = {}
    for order in orders:
        by_category.setdefault(order.category.value, []).append(order)
    groups = []
    for index, members in enumerate(by_category.values(), start=1):
        first = members[0]
        groups.append(
            PaymentGroup(
                pmt_inf_id=f"{msg_id}-{index:03d}",
                debtor=first.debtor,
                execution_date=first.requested_execution_date,
                category=first.category,
                orders=tuple(members),
            )
        )
    return tuple(groups)


# Claims on batch groups, so that several instances never build one group into two files.
GROUP_CLAIM = "batch-group"

# How long the batcher waits between looks that built nothing: until the first moment a waiting
# group can go quiet, but at least TICK_MIN_SECONDS and at most TICK_MAX_SECONDS (a group that
# fills a file between looks is cut at the next).
TICK_MIN_SECONDS = 0.2
TICK_MAX_SECONDS = 1.0
# Looked at this much after a group's quiet moment, so that the look finds it quiet.
_PAST_QUIET = timedelta(milliseconds=10)


# A file built from a group's orders: signed, its count, its control sum and its payment groups.
_Built = tuple[SignedFile, int, Decimal, tuple[PaymentGroup, ...]]


class BatchService:
    """Every tick, turns each quiet (or full) group of received orders into one file.

    A group is claimed, its orders read and a MsgId drawn in one short unit of work; the file is
    built and signed outside any transaction; a second unit records it, marks its orders batched
    and puts it in the outbox, only while the claim is still this instance's (a takeover by
    another instance drops this file unsent: its orders go in the other's).
    """

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        keys: KeySource,
        clock: Clock = utcnow,
        metrics: Metrics = NO_METRICS,
        owner: str = "gateway",
        decoded: DecodedOrders | None = None,
    ) -> None:
        self._storage = storage
        # Orders this process's intake decoded: built from without decoding their JSON again.
        self._decoded = decoded if decoded is not None else DecodedOrders(capacity=0)
        self._metrics = metrics
        self._settings = settings
        self._keys = keys
        self._clock = clock
        self._owner = owner
        # The first moment the groups seen by the last tick can go quiet.
        self._quiet_at: datetime | None = None

    def for_owner(self, owner: str) -> BatchService:
        """The same service claiming groups under another name: the urgent lane's cuts and the
        ticks' never take the same group at once."""
        return BatchService(
            self._storage,
            self._settings,
            self._keys,
            self._clock,
            self._metrics,
            owner,
            self._decoded,
        )

    def tick(self) -> int:
        """Cut every ready group: quiet for `batch_quiet_seconds`, or holding a file's worth of
        orders for the partner with the smallest files; returns the number of files built."""
        now = self._clock()
        quiet = timedelta(seconds=self._settings.batch_quiet_seconds)
        smallest_limit = min(
            (p.messages.max_txs_per_file for p in self._settings.partners.values()), default=50_000
        )
        with self._storage.unit_of_work() as uow:
            waiting = uow.orders.waiting_groups()
        ready: list[WaitingGroup] = []
        # A group with no received order now gets its first after `now`: none goes quiet
        # before the first of these.
        quiet_at = [now + quiet]
        for group in waiting:
            if group.newest < now - quiet or group.count >= smallest_limit:
                ready.append(group)
            else:
                quiet_at.append(group.newest + quiet)
        self._quiet_at = min(quiet_at)
        return self.cut_now([(group.partner, group.group_key) for group in ready])

    def pause(self) -> float:
        """Seconds to wait after a tick that built nothing: until the first waiting group can
        go quiet (see TICK_MIN_SECONDS and TICK_MAX_SECONDS). Looking five times a second
        read every received order's group that often, tens of thousands during a bulk intake,
        on each instance."""
        if self._quiet_at is None:
            return TICK_MIN_SECONDS
        left = (self._quiet_at + _PAST_QUIET - self._clock()).total_seconds()
        return min(max(left, TICK_MIN_SECONDS), TICK_MAX_SECONDS)

    def cut_now(self, groups: Sequence[tuple[str, str]]) -> int:
        """Cut these groups (partner, group key) at once, ready or not (urgent orders: a group of
        one each); returns the number of files built. A group another instance holds, or already
        cut, is passed."""
        built = 0
        for partner, key in groups:
            try:
                built += self._cut_group(partner, key)
            except InvalidMessage as exc:
                # One order the bank file cannot carry must not hold back the others.
                log.error("batch.refused", group=key, error=str(exc))
                try:
                    if self._reject_unbuildable(partner, key):
                        built += self._cut_group(partner, key)
                except GatewayError as again:
                    log.error("batch.blocked", group=key, error=str(again))
            except ClaimLost as exc:
                log.warning("batch.claim_lost", group=key, error=str(exc))
            except GatewayError as exc:
                # A fault of ours (a missing XSD, a bad profile): no order is to blame. The group
                # waits, and every tick says why, until an admin mends it.
                log.error("batch.blocked", group=key, error=str(exc))
        return built

    def _cut_group(self, partner_name: str, key: str) -> int:
        """Cut a ready group into files of at most the partner's size; how many were built.

        Orders that arrive while a file is built wait for their group to be ready again."""
        partner = self._settings.partner(partner_name)
        limit = partner.messages.max_txs_per_file
        built = 0
        while (cut := self._cut(partner, key, limit)) > 0:
            built += 1
            if cut < limit:
                break
        return built

    def _reject_unbuildable(self, partner_name: str, key: str) -> int:
        """Reject, with a posting, each order of a group that fails alone; returns how many."""
        partner = self._settings.partner(partner_name)
        now = self._clock()
        rejected = 0
        with self._storage.unit_of_work() as uow:
            for stored in uow.orders.received_in_group(key, partner.messages.max_txs_per_file):
                try:
                    self._build("KBNN-CHECK", partner, [stored], now)
                except InvalidMessage as exc:
                    advance(
                        uow,
                        stored,
                        TxState.REJECTED,
                        now,
                        BankAnswer(
                            status_code="RJCT",
                            reason_code="NARR",
                            reason_text=f"the gateway cannot send this order: {exc}"[:500],
                        ),
                    )
                    log.error("order.unbuildable", order_id=stored.order_id, error=str(exc))
                    rejected += 1
        return rejected

    def _claim(self, key: str, limit: int) -> tuple[list[StoredOrder], int] | None:
        """Claim a group and read its next orders, with a new file number; None when another
        instance holds the group or nothing is left in it.

        The orders are read as committed, outside any unit of work: a file's worth (20,000
        orders) took up to a third of a second to read, and the write lock is not needed for
        it. Once the claim is committed no other batcher moves the group's orders, and the
        write of the file moves them only from received (`mark_batched`); an order that
        arrives after the read waits for the group's next file."""
        now = self._clock()
        until = now + timedelta(seconds=self._settings.claim_seconds)
        with self._storage.unit_of_work() as uow:
            if not uow.claims.claim(GROUP_CLAIM, key, self._owner, now, until):
                return None
        stored = self._storage.queries.received_in_group(key, limit)
        with self._storage.unit_of_work() as uow:
            if not stored:
                uow.claims.release(GROUP_CLAIM, key, self._owner)
                return None
            return stored, uow.counters.next_value("pain.001")

    def _cut(self, partner: PartnerProfile, key: str, limit: int) -> int:
        """Build one file of the group's oldest orders; how many it carries (0: none built)."""
        started = time.perf_counter()
        claimed = self._claim(key, limit)
        if claimed is None:
            return 0
        stored, seq = claimed
        now = self._clock()
        msg_id = make_msg_id(partner, now.strftime("%Y%m%d"), seq)
        try:
            with self._claim_kept(key):
                built = self._build(msg_id, partner, stored, now)
        except BaseException:
            with self._storage.unit_of_work() as uow:
                uow.claims.release(GROUP_CLAIM, key, self._owner)
            raise
        with self._storage.unit_of_work() as uow:
            if not uow.claims.holds(GROUP_CLAIM, key, self._owner, now):
                raise ClaimLost(f"group {key} was taken over while {msg_id} was built")
            self._write_file(uow, partner, key, msg_id, built, now)
            crashpoints.hit("batch.before_commit")
        crashpoints.hit("batch.after_commit")
        self._file_built(partner, msg_id, built, started)
        return built[1]

    @contextmanager
    def _claim_kept(self, key: str) -> Iterator[None]:
        """Renew this batcher's claim on a group every third of `claim_seconds` while the block
        runs (a file's build and signature). Without it, a build longer than the claim (a
        large file on a starved machine, a slow signing token) was taken over by another
        instance, which lost it the same way in turn: the group's files never committed."""
        seconds = self._settings.claim_seconds
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(seconds / 3):
                until = self._clock() + timedelta(seconds=seconds)
                try:
                    with self._storage.unit_of_work() as uow:
                        # Only a claim still ours: one taken over (and perhaps released since)
                        # is never taken back here.
                        kept = uow.claims.extend(GROUP_CLAIM, key, self._owner, until)
                except GatewayError as exc:  # the database away for now: try at the next third
                    log.warning("batch.claim_not_renewed", group=key, error=str(exc))
                    continue
                except Exception as exc:  # said; the build goes on, its claim not renewed
                    log.error("batch.claim_renewal_failed", group=key, error=repr(exc))
                    return
                if not kept:
                    return  # taken over: the commit finds it lost and says so
                log.info("batch.claim_renewed", group=key, owner=self._owner)

        keeper = threading.Thread(target=renew, name="batch-claim", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()

    def cut_urgent(self, groups: Sequence[tuple[str, str]]) -> int:
        """Cut urgent orders' groups (one order each) in one transaction that claims, numbers,
        builds and keeps each file. Under load every transaction waits for the write lock behind
        the bulk run's, and costs the urgent lane more than building a one-order file inside it
        does; urgent orders also come several at a time. A group this cannot build is cut alone
        (`cut_now` says why). Returns the number of files built."""
        started = time.perf_counter()
        now = self._clock()
        until = now + timedelta(seconds=self._settings.claim_seconds)
        written: list[tuple[PartnerProfile, str, _Built]] = []
        alone: list[tuple[str, str]] = []
        with self._storage.unit_of_work() as uow:
            for partner_name, key in groups:
                try:
                    partner = self._settings.partner(partner_name)
                except GatewayError:
                    alone.append((partner_name, key))
                    continue
                # The claim keeps out another instance's batcher, and this one's ticks, until
                # the commit finds the group's orders batched.
                if not uow.claims.claim(GROUP_CLAIM, key, self._owner, now, until):
                    continue
                stored = uow.orders.received_in_group(key, partner.messages.max_txs_per_file)
                if not stored:
                    uow.claims.release(GROUP_CLAIM, key, self._owner)
                    continue
                seq = uow.counters.next_value("pain.001")
                msg_id = make_msg_id(partner, now.strftime("%Y%m%d"), seq)
                try:
                    built = self._build(msg_id, partner, stored, now)
                except GatewayError:
                    uow.claims.release(GROUP_CLAIM, key, self._owner)
                    alone.append((partner.name, key))
                    continue
                self._write_file(uow, partner, key, msg_id, built, now)
                written.append((partner, msg_id, built))
            crashpoints.hit("batch.before_commit")
        crashpoints.hit("batch.after_commit")
        for partner, msg_id, built in written:
            self._file_built(partner, msg_id, built, started)
        return len(written) + (self.cut_now(alone) if alone else 0)

    def _write_file(
        self,
        uow: UnitOfWork,
        partner: PartnerProfile,
        key: str,
        msg_id: str,
        built: _Built,
        now: datetime,
    ) -> None:
        """Keep a built file, its orders batched into it and its message to the bank, in the
        caller's transaction, and let the group go."""
        signed, nb, ctrl_sum, groups = built
        body = signed.body
        uow.files.add(
            OutboundFile(
                msg_id=msg_id,
                partner=partner.name,
                message_type=partner.messages.pain001_version,
                nb_of_txs=nb,
                ctrl_sum=ctrl_sum,
                sha256=hashlib.sha256(body).hexdigest(),
            ),
            now,
        )
        uow.orders.mark_batched(
            [(o.order_id, g.pmt_inf_id) for g in groups for o in g.orders], msg_id, now
        )
        uow.outbox.enqueue(
            OutboxMessage(
                message_id=msg_id,
                exchange=TO_BANK_EXCHANGE,
                routing_key=partner.name,
                body=body,
                headers={
                    "partner": partner.name,
                    "message_type": partner.messages.pain001_version,
                    "msg_id": msg_id,
                    **signed.headers,  # the detached signature, when the partner wants one
                    **({PRIORITY_HEADER: "urgent"} if is_urgent_group(key) else {}),
                },
            ),
            now,
        )
        uow.claims.release(GROUP_CLAIM, key, self._owner)

    def _file_built(
        self, partner: PartnerProfile, msg_id: str, built: _Built, started: float
    ) -> None:
        _, nb, ctrl_sum, _ = built
        self._metrics.file_built(partner.name, time.perf_counter() - started)
        log.info("file.built", msg_id=msg_id, partner=partner.name, txs=nb, ctrl_sum=str(ctrl_sum))

    def _build(
        self, msg_id: str, partner: PartnerProfile, stored: list[StoredOrder], now: datetime
    ) -> _Built:
        take = self._decoded.take
        orders = [
            take(row.order_id, row.payload) or order_from_payload(json.loads(row.payload))
            for row in stored
        ]
        # The key first: a file whose key cannot be read is not written (nor its pieces checked).
        ring = self._keys.ring(partner.signature.key)
        rendered = render(
            msg_id, partner, orders, now, self._settings.initiating_party, validate=False
        )
        # Nothing is signed unless the XSD check passes (it parses the pain.001, whole or in
        # pieces, from the very text that is signed and sent; an envelope is checked while its
        # digest is computed).
        signed = sign_for_partner(
            rendered.envelope,
            ring,
            partner.signature,
            f"{msg_id}.xml",
            now,
            check=rendered.check,
            canonical=rendered.canonical,
        )
        return signed, len(orders), total([o.money.amount for o in orders]), rendered.groups


@dataclass(frozen=True, slots=True)
class Rendered:
    """The unsigned file of one batch for a partner, with its payment groups: the pain.001 as
    its canonical text (`write_pain001`), or, for a partner that takes a head.001 AppHdr, the
    tree of the envelope holding both."""

    groups: tuple[PaymentGroup, ...]
    written: WrittenPain001 | None
    envelope: etree._Element | None = None

    @property
    def canonical(self) -> bytes | None:
        """The file's bytes without the XML declaration (None for an envelope)."""
        return None if self.written is None else self.written.canonical

    def tree(self) -> etree._Element:
        """The file's tree: the envelope, or the pain.001 parsed from its text."""
        if self.envelope is not None:
            return self.envelope
        assert self.written is not None
        return self.written.parse()

    def check(self) -> None:
        """The XSD validation of the file (each part of an envelope against its own XSD). The
        pain.001's text is checked as `WrittenPain001.check` says (its tree, or the trees of its
        pieces, let go once checked: only the text is kept)."""
        if self.written is not None:  # a pain.001 without an envelope
            self.written.check()
            return
        xsd.validate(self.tree())


def render(
    msg_id: str,
    partner: PartnerProfile,
    orders: list[PaymentOrder],
    now: datetime,
    initiating_party: str,
    *,
    validate: bool = True,
) -> Rendered:
    """The validated, unsigned file of one batch for a partner: pain.001, in its envelope when the
    partner takes a head.001 AppHdr (each part checked against its own XSD). With validate=False
    the caller validates it (`Rendered.check`), e.g. while signing it."""
    policy = partner.messages
    groups = payment_groups(msg_id, orders)
    batch = OutboundBatch(
        msg_id=msg_id, created_at=now, initiating_party=initiating_party, groups=groups
    )
    written = write_pain001(
        batch,
        policy.pain001_version,
        charset=policy.charset,
        account_id=policy.account_id,
        check=not policy.app_header,  # a large file's pieces checked as they are written
    )
    if not policy.app_header:
        rendered = Rendered(groups, written)
    else:
        header = apphdr.build_app_header(
            apphdr.AppHeader(
                sender_name=fit(initiating_party, Charset(policy.charset), "AppHdr/Fr", 140),
                receiver_bic=partner.bic,
                business_msg_id=msg_id,
                message_definition=policy.pain001_version,
                created_at=now,
            )
        )
        rendered = Rendered(groups, None, apphdr.wrap(header, written.parse()))
    if validate:
        rendered.check()
    return rendered
