"""The storage contract for the operations console: users, the audit trail and the console's
read-only questions. Mixed into `StoreContract`, so every backend runs it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from gateway.domain.audit import ZERO_HASH, row_seal, verify
from gateway.domain.states import FileState, TxState
from gateway.service.channels import TO_BANK_EXCHANGE
from gateway.service.ports import AuditEntry, BankAnswer, OutboxMessage, Storage
from tests.contract.values import (
    OTHER_PARTNER,
    PARTNER,
    T0,
    UndoError,
    at,
    new_order,
    order_id,
    outbound_file,
    returned,
    run_threads,
)


def entry(n: int, actor: str = "lan") -> AuditEntry:
    """An admin action, with Vietnamese text in its detail."""
    return AuditEntry(
        actor, "console", "dlq.drop", f"msg-{n}", {"reason": "sai tài khoản", "n": str(n)}
    )


class ConsoleContract:
    """What every backend must do for the console and the audit trail."""

    # --- the audit trail ---

    def test_audit_rows_chain(self, store: Storage) -> None:
        """Appended rows get seq 1, 2, 3, each sealed with the hash of the one before."""
        with store.unit_of_work() as uow:
            first = uow.audit.append(entry(1), T0)
            second = uow.audit.append(entry(2), at(1))
        with store.unit_of_work() as uow:
            third = uow.audit.append(entry(3, actor="Nguyễn Thị Hường"), at(2))
        rows = store.queries.audit_trail()
        assert rows == [first, second, third]
        assert [r.seq for r in rows] == [1, 2, 3]
        assert rows[0].prev_hash == ZERO_HASH
        assert rows[1].prev_hash == rows[0].row_hash
        assert rows[2].prev_hash == rows[1].row_hash
        assert all(row_seal(r) == r.row_hash for r in rows)
        assert rows[0].at == T0  # microseconds kept: the hash covers them
        assert rows[2].actor == "Nguyễn Thị Hường"
        assert rows[0].detail_json == '{"n":"1","reason":"sai tài khoản"}'
        assert store.queries.audit_head() == (3, third.row_hash)
        assert verify(rows, store.queries.audit_head()) is None
        newest = store.queries.audit_trail(limit=2, newest_first=True)
        assert [r.seq for r in newest] == [3, 2]

    def test_audit_append_is_undone_with_its_unit(self, store: Storage) -> None:
        """An append in a unit that fails leaves no row and the head where it was."""
        assert store.queries.audit_head() == (0, ZERO_HASH)
        with pytest.raises(UndoError), store.unit_of_work() as uow:
            uow.audit.append(entry(1), T0)
            raise UndoError
        assert store.queries.audit_trail() == []
        assert store.queries.audit_head() == (0, ZERO_HASH)
        with store.unit_of_work() as uow:
            assert uow.audit.append(entry(2), T0).seq == 1

    def test_concurrent_appends_never_fork_the_chain(self, store: Storage) -> None:
        """Appenders working at once take turns: one chain, no seq twice, every link sound."""

        def appender(worker: int) -> int:
            for n in range(4):
                with store.unit_of_work() as uow:
                    uow.audit.append(entry(worker * 10 + n, actor=f"w{worker}"), at(n))
            return worker

        results = run_threads([lambda w=w: appender(w) for w in range(5)])  # type: ignore[misc]
        assert results == list(range(5)), results
        rows = store.queries.audit_trail()
        assert [r.seq for r in rows] == list(range(1, 21))
        assert verify(rows, store.queries.audit_head()) is None

    # --- users ---

    def test_users(self, store: Storage) -> None:
        """Users are added once, disabled and enabled, and listed by name."""
        with store.unit_of_work() as uow:
            assert uow.users.add("lan", "operator", "$argon2id$x", T0)
            assert uow.users.add("an", "viewer", "$argon2id$y", T0)
            assert not uow.users.add("lan", "viewer", "$argon2id$z", T0)
            assert not uow.users.set_disabled("nobody", True, T0)
        with store.unit_of_work() as uow:
            assert uow.users.set_disabled("an", True, at(5))
        q = store.queries
        assert [u.name for u in q.users()] == ["an", "lan"]
        lan = q.user("lan")
        assert lan is not None
        assert (lan.role, lan.password_hash, lan.disabled, lan.created_at) == (
            "operator",
            "$argon2id$x",
            False,
            T0,
        )
        an = q.user("an")
        assert an is not None and an.disabled and an.updated_at == at(5)
        assert q.user("nobody") is None

    # --- the console's questions ---

    def test_orders_per_partner_and_search(self, store: Storage) -> None:
        """Orders counted per partner and state; found by id, MsgId or payload text."""
        with store.unit_of_work() as uow:
            for n in (1, 2, 3):
                uow.orders.add(new_order(n), T0)
            uow.orders.add(new_order(4, partner=OTHER_PARTNER), T0)
            uow.files.add(outbound_file("MSG-A"), T0)
            uow.orders.mark_batched([(order_id(2), "P1")], "MSG-A", T0)
        q = store.queries
        assert q.orders_by_partner_state() == {
            (PARTNER, "received"): 2,
            (PARTNER, "batched"): 1,
            (OTHER_PARTNER, "received"): 1,
        }
        assert q.files_by_partner_state() == {(PARTNER, "built"): 1}
        assert [o.order_id for o in q.search_orders(order_id(3))] == [order_id(3)]
        assert [o.order_id for o in q.search_orders("MSG-A")] == [order_id(2)]
        assert len(q.search_orders("Trợ cấp")) == 4
        assert len(q.search_orders("Trợ cấp", limit=2)) == 2
        assert q.search_orders("100%_") == []  # LIKE's wildcards are taken literally

    def test_files_and_their_bytes(self, store: Storage) -> None:
        """Files are listed newest first, narrowed by partner and state; their sent bytes are
        the outbox message of their MsgId."""
        body = b"<Document>\x00\xff exact</Document>"
        with store.unit_of_work() as uow:
            uow.files.add(outbound_file("MSG-1"), T0)
            uow.files.add(outbound_file("MSG-2", partner=OTHER_PARTNER), at(10))
            uow.files.add(outbound_file("MSG-3"), at(20))
            uow.files.sent("MSG-3", at(21))
            uow.outbox.enqueue(OutboxMessage("MSG-3", TO_BANK_EXCHANGE, PARTNER, body, {}), at(20))
        q = store.queries
        assert [f.msg_id for f in q.files()] == ["MSG-3", "MSG-2", "MSG-1"]
        assert [f.msg_id for f in q.files(partner=PARTNER)] == ["MSG-3", "MSG-1"]
        assert [f.msg_id for f in q.files(state=FileState.SENT)] == ["MSG-3"]
        assert [f.msg_id for f in q.files(limit=1)] == ["MSG-3"]
        got = q.file("MSG-3")
        assert got is not None
        assert (got.state, got.sent_at, got.attempts, got.ctrl_sum) == (
            FileState.SENT,
            at(21),
            1,
            Decimal("606000"),
        )
        assert q.file("MSG-9") is None
        (sent,) = q.outbox_messages(["MSG-3", "nothing"])
        assert sent.body == body and sent.exchange == TO_BANK_EXCHANGE
        assert q.outbox_messages([]) == []

    def test_inbound_and_quarantined_files(self, store: Storage) -> None:
        """Kept bank files come back byte for byte; refused ones newest first, found by id (their
        bytes are in the quarantine folder, by SHA-256)."""
        with store.unit_of_work() as uow:
            assert uow.inbound.first_sight(PARTNER, "STS-1", "pain.002", b"<a>\x00</a>", T0)
            assert uow.inbound.first_sight(PARTNER, "STS-2", "camt.054", b"<b/>", at(60))
            assert uow.inbound.first_sight(OTHER_PARTNER, "STS-3", "pain.002", b"<c/>", at(60))
            assert uow.inbound.quarantine(PARTNER, "a1" * 32, 12, "signature missing", T0)
            assert uow.inbound.quarantine(OTHER_PARTNER, "b2" * 32, 13, "fails its XSD", at(1))
        q = store.queries
        assert [f.msg_id for f in q.inbound_files(PARTNER)] == ["STS-1", "STS-2"]
        assert [f.msg_id for f in q.inbound_files(PARTNER, at(30))] == ["STS-2"]
        kept = q.inbound_file(PARTNER, "STS-1")
        assert kept is not None and kept.raw == b"<a>\x00</a>" and kept.received_at == T0
        assert q.inbound_file(PARTNER, "STS-3") is None
        listed = q.quarantined()
        assert [(f.partner, f.reason) for f in listed] == [
            (OTHER_PARTNER, "fails its XSD"),
            (PARTNER, "signature missing"),
        ]
        assert [f.reason_class for f in listed] == ["schema", "signature"]
        one = q.quarantined_file(listed[1].quarantine_id)
        assert one is not None and one.reason_class == "signature"
        assert (one.sha256, one.size, one.received_at) == ("a1" * 32, 12, T0)
        assert q.quarantined_file(10_000) is None
        assert len(q.quarantined(limit=1)) == 1

    def test_returns_of_an_order(self, store: Storage) -> None:
        """The returns received for one order."""
        with store.unit_of_work() as uow:
            uow.orders.add(new_order(1), T0)
            current = uow.orders.get(order_id(1))
            assert current is not None
            uow.orders.move(current, TxState.SETTLED, BankAnswer(bank_ref="S1"), T0)
            uow.evidence.add_return(returned("RET-1", 1), at(1))
            uow.evidence.add_return(replace(returned("RET-2", 2)), at(2))
        got = store.queries.returns_of(order_id(1))
        assert [(r.bank_ref, r.reason_code) for r in got] == [("RET-1", "AC04")]
        assert store.queries.returns_of(order_id(9)) == []
