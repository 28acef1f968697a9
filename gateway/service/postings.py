"""Turning ledger postings into outbox messages for `treasury.ledger`."""

from __future__ import annotations

import orjson

from gateway.domain.postings import LedgerPosting
from gateway.service.channels import LEDGER_EXCHANGE
from gateway.service.ports import OutboxMessage

# Keys sorted, text as UTF-8 (not \u escapes), no blanks between tokens.
_SORTED = orjson.OPT_SORT_KEYS


def posting_message(posting: LedgerPosting) -> OutboxMessage:
    """The outbox message carrying one posting; its id is the posting id."""
    wire = posting.to_json()
    body = orjson.dumps(wire, option=_SORTED)
    return OutboxMessage(
        message_id=wire["posting_id"],  # posting.posting_id, hashed once
        exchange=LEDGER_EXCHANGE,
        routing_key=posting.routing_key,
        body=body,
        headers={"schema": "ledger-posting/1", "kind": posting.kind.value},
    )
