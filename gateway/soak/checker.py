"""The soak's verdict, from the gateway's database (through its read-only port), the bank's
record of what it received and the ledger's postings."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.service.ports import Queries

# The posting a bank decision owes the treasury ledger.
_POSTING_FOR = {"settled": "payment_settled", "rejected": "payment_rejected"}
_FINAL = ("settled", "rejected", "returned")


@dataclass
class Verdict:
    """The five counts that must be 0, and figures that explain them."""

    orders_lost: list[str] = field(default_factory=list)
    paid_twice: list[str] = field(default_factory=list)
    postings_missing: list[str] = field(default_factory=list)
    postings_duplicated: list[str] = field(default_factory=list)
    not_final: dict[str, str] = field(default_factory=dict)
    info: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """True when nothing was lost, paid twice, missed, duplicated or left unfinished."""
        return not (
            self.orders_lost
            or self.paid_twice
            or self.postings_missing
            or self.postings_duplicated
            or self.not_final
        )

    def counts(self) -> dict[str, int]:
        """The five counts by name."""
        return {
            "orders lost": len(self.orders_lost),
            "EndToEndIds paid twice": len(self.paid_twice),
            "postings missing": len(self.postings_missing),
            "postings duplicated": len(self.postings_duplicated),
            "orders not in a final state": len(self.not_final),
        }


def _read(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def check(published: Iterable[str], gateway: Queries, bank_db: Path, ledger_db: Path) -> Verdict:
    """Compare what was published with what the gateway holds, the bank paid and the ledger got.

    - lost: an order confirmed by the broker that the gateway does not know;
    - paid twice: an EndToEndId the bank settled more than once;
    - postings missing: a bank decision (settled/rejected) without its posting in the ledger;
    - postings duplicated: an order with more than one distinct payment posting (a ledger that
      drops repeated posting_ids would still book it twice);
    - not final: an order still short of settled, rejected or returned.
    """
    verdict = Verdict()
    states = {o.order_id: o.state.value for o in gateway.orders_in_state()}
    wanted = sorted(set(published))
    verdict.orders_lost = [o for o in wanted if o not in states]
    verdict.not_final = {o: states[o] for o in wanted if o in states and states[o] not in _FINAL}

    decisions = _read(bank_db, "SELECT end_to_end_id, decision FROM payments")
    settled: dict[str, int] = defaultdict(int)
    decided: dict[str, set[str]] = defaultdict(set)
    for e2e, decision in decisions:
        decided[str(e2e)].add(str(decision))
        if decision == "settled":
            settled[str(e2e)] += 1
    verdict.paid_twice = sorted(e2e for e2e, n in settled.items() if n > 1)

    postings: dict[str, set[tuple[str, str]]] = defaultdict(set)
    redelivered = 0
    for body, duplicates in _read(ledger_db, "SELECT body, duplicates FROM postings"):
        posting = json.loads(str(body))
        redelivered += int(str(duplicates))
        if posting.get("order_id"):
            postings[posting["order_id"]].add((posting["kind"], posting["posting_id"]))
    for e2e, kinds in decided.items():
        for decision in kinds:
            expected = _POSTING_FOR[decision]
            if not any(kind == expected for kind, _ in postings.get(e2e, ())):
                verdict.postings_missing.append(f"{e2e}:{expected}")
    for order_id, seen in postings.items():
        payment = {p for p in seen if p[0] in ("payment_settled", "payment_rejected")}
        if len(payment) > 1:
            verdict.postings_duplicated.append(order_id)

    files = _read(bank_db, "SELECT COALESCE(SUM(times_seen), 0), COUNT(*) FROM files")[0]
    invalid = gateway.invalid_count()
    verdict.info = {
        "orders published": len(wanted),
        "orders settled": sum(1 for o in wanted if states.get(o) == "settled"),
        "orders rejected by the bank": sum(1 for o in wanted if states.get(o) == "rejected"),
        "files the bank received": int(str(files[1])),
        "files resent (same MsgId)": int(str(files[0])) - int(str(files[1])),
        "posting copies redelivered": redelivered,
        "conflicting resends refused": int(str(invalid)),
    }
    return verdict
