"""Turning ledger postings into outbox messages for `treasury.ledger`."""

from __future__ import annotations

import json

from gateway.domain.postings import LedgerPosting
from gateway.service.channels import LEDGER_EXCHANGE
from gateway.service.ports import OutboxMessage

# One encoder for every posting (json.dumps with options makes one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False)


def posting_message(posting: LedgerPosting) -> OutboxMessage:
    """The outbox message carrying one posting; its id is the posting id."""
    wire = posting.to_json()
    body = _ENCODER.encode(wire).encode("utf-8")
    return OutboxMessage(
        message_id=wire["posting_id"],  # posting.posting_id, hashed once
        exchange=LEDGER_EXCHANGE,
        routing_key=posting.routing_key,
        body=body,
        headers={"schema": "ledger-posting/1", "kind": posting.kind.value},
    )
