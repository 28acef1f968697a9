"""What the gateway accepts from a partner before trusting it: structural limits of each file
(checked by a streaming pass before any signature work) and how far the file's stated creation
time may lie from the moment it is received."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from gateway.iso20022.limits import InboundLimits
from gateway.profile.reading import Table


@dataclass(frozen=True, slots=True)
class InboundPolicy:
    """The [inbound] table: limits of one file, and the tolerance on its creation time."""

    limits: InboundLimits = field(default_factory=InboundLimits)
    # A file created (CreDtTm, or the AppHdr's CreDt) longer ago than this is refused as stale.
    max_age: timedelta = timedelta(days=7)
    # A file created further ahead of its receipt than this (clock skew) is refused.
    max_ahead: timedelta = timedelta(minutes=15)


def read_inbound(table: Table) -> InboundPolicy:
    """The [inbound] table; every key is optional (the defaults admit a 100,000-transaction
    camt.054)."""
    default = InboundLimits()
    limits = InboundLimits(
        max_bytes=table.integer("max_bytes", default.max_bytes, minimum=1024),
        max_elements=table.integer("max_elements", default.max_elements, minimum=10),
        max_depth=table.integer("max_depth", default.max_depth, minimum=8),
        max_attributes=table.integer("max_attributes", default.max_attributes, minimum=4),
        max_text=table.integer("max_text", default.max_text, minimum=4096),
        max_attribute_length=table.integer(
            "max_attribute_length", default.max_attribute_length, minimum=256
        ),
        max_nodes_general=table.integer("max_nodes_general", default.max_nodes_general, minimum=10),
        max_bytes_general=table.integer(
            "max_bytes_general", default.max_bytes_general, minimum=1024
        ),
    )
    policy = InboundPolicy(
        limits=limits,
        max_age=timedelta(hours=table.integer("max_age_hours", 7 * 24, minimum=1)),
        max_ahead=timedelta(minutes=table.integer("max_ahead_minutes", 15, minimum=0)),
    )
    table.finish()
    return policy
