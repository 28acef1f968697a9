"""The channel port: where messages go (exchange and queue names) and the folders shared with
banks reached by file exchange. The adapters (gateway/adapters/topology.py, rabbitmq.py,
filedrop.py, sftp.py) implement them; the services know only these names and this Protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Treasury core publishes payment orders here, routing key `order.<category>`.
ORDERS_EXCHANGE = "treasury.orders"
ORDERS_QUEUE = "gateway.orders"
# Urgent orders published with a routing key under URGENT_ORDERS_KEY also reach this queue,
# read by a consumer of its own: they overtake a backlog of bulk orders (the main queue gets a
# copy too, which intake takes as a duplicate).
URGENT_ORDERS_QUEUE = "gateway.orders.urgent"
URGENT_ORDERS_KEY = "order.urgent"


def order_routing_key(order: dict[str, object]) -> str:
    """The routing key the treasury core publishes an order with: `order.<category>`, or
    `order.urgent.<category>` for an order with `priority: urgent`."""
    category = order.get("category", "unknown")
    if order.get("priority") == "urgent":
        return f"{URGENT_ORDERS_KEY}.{category}"
    return f"order.{category}"


# The gateway publishes ledger postings here, routing key `posting.<kind>`.
LEDGER_EXCHANGE = "treasury.ledger"
LEDGER_QUEUE = "treasury.ledger.postings"
# Files to banks reached by message: routing key = partner name, one inbox queue per partner.
TO_BANK_EXCHANGE = "gateway.to-bank"
# The header of a file carrying an urgent order (value `urgent`): the urgent lane's relay sends
# only those, and a bank may use it to take the file first.
PRIORITY_HEADER = "priority"


# Bank reports to the gateway: routing key = partner name.
FROM_BANK_EXCHANGE = "gateway.from-bank"
FROM_BANK_QUEUE = "gateway.from-bank"
# Dead letters land in `<queue>.parking`, routed by the source queue's name.
PARKING_EXCHANGE = "gateway.parking"
# Events for admins (a file overdue, ...), routing key `admin.<event>`.
ADMIN_EXCHANGE = "gateway.admin"
ADMIN_QUEUE = "gateway.admin.events"

# Names a writer uses while a file is incomplete: never read, never claimed.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".crdownload")
# A detached XML signature travels beside its file as `<name>.sig`.
SIGNATURE_SUFFIX = ".sig"


@dataclass(frozen=True, slots=True)
class Entry:
    """One regular file in a folder."""

    name: str
    size: int
    # Last modification, seconds since the epoch.
    mtime: float


class Folder(Protocol):
    """One directory the gateway and a bank share."""

    def describe(self) -> str:
        """Where the folder is, for logs and error messages."""

    def files(self, sub: str = "") -> list[Entry]:
        """Regular files directly in the folder (or in its sub-folder `sub`)."""

    def read(self, name: str) -> bytes:
        """The content of a file (a path relative to the folder)."""

    def write_atomic(self, name: str, data: bytes) -> None:
        """Write under a temporary name, flush to disk, then rename to `name` (replacing it)."""

    def claim(self, name: str, new_name: str) -> bool:
        """Rename `name` to `new_name`; False when `name` is gone (another reader took it)."""

    def move(self, name: str, new_name: str) -> None:
        """Rename, failing when `new_name` exists; OSError when the target is not writable."""

    def exists(self, name: str) -> bool:
        """Whether a file of that name is there."""

    def ensure(self, sub: str) -> None:
        """Create the sub-folder `sub` if it is missing."""

    def close(self) -> None:
        """Release the connection, if any."""


def is_partial(name: str) -> bool:
    """Whether the name is one writers use while the file is incomplete (or is hidden)."""
    return name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES)
