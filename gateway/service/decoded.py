"""Orders as intake decoded them, handed to the batcher of the same process.

Intake decodes every order (JSON, the contract's schema, the domain's own checks) before it
stores the order's canonical JSON. The batcher, building the order's file moments later, would
decode that JSON again: about a tenth of the main role's CPU in a bulk run. Where both run in
one process, intake leaves here each order it has committed, and the batcher takes it back.

What the batcher builds from is still the database: an order is taken only when the payload
read with it from the database is the text it was kept with (their SHA-256 digests are equal),
so an order kept by a unit that was rolled back, or stored by another instance with other
content, is never used; the batcher decodes the stored text instead. A miss costs only that
decoding.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable

from gateway.domain.orders import PaymentOrder

# At most this many orders are kept (the oldest go first). A bulk run's groups are cut within
# seconds of their last order, and each built order is taken out: the bound only matters for
# orders that wait (a far execution date, a partner's file held back), which are decoded again
# when their day comes. An order kept here costs about 1.6 KB (its objects, measured on the
# benchmark's orders): about 64 MB when full.
CAPACITY = 40_000


class DecodedOrders:
    """A bounded map from order id to (digest of the stored payload text, decoded order);
    thread-safe."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        # 0: keep nothing (services built without a process-wide map: commands, tests).
        self._capacity = capacity
        self._orders: OrderedDict[str, tuple[bytes, PaymentOrder]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, orders: Iterable[tuple[str, str, PaymentOrder]]) -> None:
        """Keep committed orders: (order id, the payload text stored, the order it decodes to)."""
        if not self._capacity:
            return
        with self._lock:
            for order_id, payload, order in orders:
                self._orders[order_id] = (_digest(payload), order)
            while len(self._orders) > self._capacity:
                self._orders.popitem(last=False)  # the oldest kept

    def take(self, order_id: str, payload: str) -> PaymentOrder | None:
        """The order kept for this id, if it was kept with exactly this payload; it is taken
        out either way (None: decode the payload)."""
        with self._lock:
            kept = self._orders.pop(order_id, None)
        if kept is None or kept[0] != _digest(payload):
            return None
        return kept[1]

    def __len__(self) -> int:
        return len(self._orders)


def _digest(payload: str) -> bytes:
    return hashlib.sha256(payload.encode()).digest()
