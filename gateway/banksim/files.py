"""The simulated bank's side of a file exchange: our payment files in, its reports out.

It reads each complete file the gateway left in the outbound folder, answers it as the bank
simulator does, writes each report atomically into the inbound folder as `<MsgId>.xml`, and
only then moves the payment file into the bank's own `taken/` sub-folder. A crash in between
answers the same file again with the same reports, which the gateway recognises.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from gateway.adapters.filedrop import SIGNATURE_SUFFIX, Folder, is_partial
from gateway.banksim.bank import BankSimulator, Reply

log = structlog.get_logger("gateway.banksim.files")

TAKEN = "taken"


class FileBank:
    """A bank reached by file exchange, over the same folders the gateway uses."""

    def __init__(
        self,
        bank: BankSimulator,
        outbound: Folder,
        inbound: Folder,
        settle_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bank = bank
        # Where the gateway writes payment files (the bank reads and takes them).
        self._outbound = outbound
        # Where the bank writes its reports (the gateway reads them).
        self._inbound = inbound
        self._settle = settle_seconds
        self._clock = clock
        self._ready = False

    def poll(self) -> int:
        """Answer every complete payment file waiting; returns how many were taken."""
        if not self._ready:
            self._outbound.ensure(TAKEN)
            self._ready = True
        taken = 0
        now = self._clock()
        for entry in self._outbound.files():
            if is_partial(entry.name) or entry.name.endswith(SIGNATURE_SUFFIX):
                continue
            if now - entry.mtime < self._settle:
                continue
            raw = self._outbound.read(entry.name)
            signature = entry.name + SIGNATURE_SUFFIX
            detached = self._outbound.read(signature) if self._outbound.exists(signature) else None
            for reply in self.bank.receive(raw, detached):
                self.deliver(reply)
            target = f"{TAKEN}/{entry.name}"
            if self._outbound.exists(target):
                target = f"{target}.{now:.0f}"
            if detached is not None:
                self._outbound.move(signature, target + SIGNATURE_SUFFIX)
            self._outbound.move(entry.name, target)
            log.info("bank.file_taken", file=entry.name)
            taken += 1
        return taken

    def deliver(self, reply: Reply) -> None:
        """Write one report into the gateway's inbound folder, atomically; its detached signature
        (partners signing detached) is written first, as `<name>.sig`, so that it is there when
        the gateway sees the report."""
        reply_id, kind, _ = reply
        signed = self.bank.wire(reply)
        if signed.signature is not None:
            self._inbound.write_atomic(f"{reply_id}.xml{SIGNATURE_SUFFIX}", signed.signature)
        self._inbound.write_atomic(f"{reply_id}.xml", signed.body)
        log.info("bank.report_written", msg_id=reply_id, kind=kind)

    def close(self) -> None:
        """Release the folders' connections."""
        self._outbound.close()
        self._inbound.close()
