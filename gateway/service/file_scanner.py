"""Inbound file exchange: the bank's reports picked up from its folder, each exactly once.

One scan of a partner's inbound folder:

1. takes over claims left by a scanner that died (its process is gone, or it has held the file
   longer than `stale_claim_seconds`);
2. leaves alone files still being written (hidden or `.tmp`/`.part` names, or modified within
   `settle_seconds`) and detached signatures (`<name>.sig`, which travel with their file);
3. claims each other file by renaming it into `claimed/` under a name only this scanner uses,
   so two scanners never read one file;
4. hands it to the inbound service (signature, XSD, the report rules), unless the very same
   bytes were already taken in, which the sha256 of every kept file tells;
5. moves it to `processed/`, or to `failed/` beside a `<name>.reason.txt` saying why.

A crash anywhere leaves the file in the inbound folder or in `claimed/`; the next scan finishes
it. A file already applied is recognised by its sha256 and only moved, never applied twice.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.errors import GatewayError
from gateway.profile import PartnerProfile
from gateway.service.channels import SIGNATURE_SUFFIX, Entry, Folder, is_partial
from gateway.service.inbound import InboundService
from gateway.service.ports import Queries

log = structlog.get_logger("gateway.files")

CLAIMED = "claimed"
PROCESSED = "processed"
FAILED = "failed"
REASON_SUFFIX = ".reason.txt"


@dataclass(frozen=True, slots=True)
class Claim:
    """A file in `claimed/`: its original name, who claimed it and when."""

    name: str
    owner: str
    since: float

    @property
    def path(self) -> str:
        """Its path relative to the inbound folder."""
        return f"{CLAIMED}/{self.name}@{self.owner}@{self.since:.0f}"

    @classmethod
    def parse(cls, entry: Entry) -> Claim | None:
        """The claim a name in claimed/ stands for; None for a name no scanner wrote."""
        parts = entry.name.rsplit("@", 2)
        if len(parts) != 3 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], float(parts[2]))


def _owner_alive(owner: str, host: str) -> bool | None:
    """Whether the claiming process still runs: None when it ran on another host."""
    claimed_on, _, rest = owner.rpartition("~")
    if claimed_on != host:
        return None
    pid = rest.split("-", 1)[0]
    if not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def inbound_backlog(folder: Folder, now: float) -> dict[str, Any]:
    """What waits in one inbound folder: complete reports not yet claimed (`waiting`), reports
    still being written (`partial`), and reports a scanner claimed but has not finished
    (`claimed`, with the age in seconds of the oldest claim)."""
    top = [e for e in folder.files() if not e.name.endswith(SIGNATURE_SUFFIX)]
    claims = [
        claim
        for entry in folder.files(CLAIMED)
        if (claim := Claim.parse(entry)) is not None and not claim.name.endswith(SIGNATURE_SUFFIX)
    ]
    oldest = min((claim.since for claim in claims), default=None)
    return {
        "waiting": sum(not is_partial(e.name) for e in top),
        "partial": sum(is_partial(e.name) for e in top),
        "claimed": len(claims),
        "oldest_claim_seconds": None if oldest is None else max(0, round(now - oldest)),
    }


class FileScanner:
    """Scans one partner's inbound folder; several scanners may share it safely."""

    def __init__(
        self,
        partner: PartnerProfile,
        folder: Folder,
        inbound: InboundService,
        queries: Queries,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if partner.files is None:
            raise GatewayError(f"partner {partner.name} is not reached by file exchange")
        self._partner = partner
        self._exchange = partner.files
        self._folder = folder
        self._inbound = inbound
        self._queries = queries
        self._clock = clock
        self._host = socket.gethostname().replace("@", "_").replace("~", "_")
        # Unique per scanner, even among scanners of one process.
        self.owner = f"{self._host}~{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ready = False

    @property
    def partner(self) -> str:
        """The partner whose folder this is."""
        return self._partner.name

    @property
    def poll_seconds(self) -> float:
        """Seconds between two scans."""
        return self._exchange.poll_seconds

    def close(self) -> None:
        """Close the folder (an SFTP connection) when the scanner is no longer used."""
        self._folder.close()

    def scan(self) -> Counter[str]:
        """One pass over the folder; returns how many files ended how."""
        outcomes: Counter[str] = Counter()
        with structlog.contextvars.bound_contextvars(partner=self._partner.name):
            if not self._ready:
                for sub in (CLAIMED, PROCESSED, FAILED):
                    self._folder.ensure(sub)
                self._ready = True
            for claim in self._orphans():
                outcomes[self._finish(claim, recovered=True)] += 1
            now = self._clock()
            # Oldest first: a bank's status report before the notification it wrote after it.
            for entry in sorted(self._folder.files(), key=lambda e: (e.mtime, e.name)):
                if is_partial(entry.name) or entry.name in (CLAIMED, PROCESSED, FAILED):
                    continue
                if entry.name.endswith(SIGNATURE_SUFFIX):
                    continue  # claimed with the file it signs
                if now - entry.mtime < self._exchange.settle_seconds:
                    outcomes["settling"] += 1
                    continue
                claim = Claim(entry.name, self.owner, now)
                if not self._folder.claim(entry.name, claim.path):
                    outcomes["taken_by_another"] += 1
                    continue
                signature = entry.name + SIGNATURE_SUFFIX
                if self._folder.exists(signature):
                    sig_claim = Claim(signature, self.owner, now)
                    self._folder.claim(signature, sig_claim.path)
                outcomes[self._finish(claim)] += 1
        return outcomes

    def _orphans(self) -> list[Claim]:
        """Claims to take over: ours from an earlier pass, and those of dead or stale scanners."""
        now = self._clock()
        taken = []
        for entry in self._folder.files(CLAIMED):
            claim = Claim.parse(entry)
            if claim is None or claim.name.endswith(SIGNATURE_SUFFIX):
                continue
            alive = _owner_alive(claim.owner, self._host)
            stale = now - claim.since > self._exchange.stale_claim_seconds
            if claim.owner != self.owner and alive is not False and not stale:
                continue  # another scanner is working on it
            if claim.owner != self.owner:
                mine = Claim(claim.name, self.owner, now)
                if not self._folder.claim(claim.path, mine.path):
                    continue  # another scanner took it over first
                self._take_signature(claim, mine)
                log.warning("files.claim_recovered", file=claim.name, from_owner=claim.owner)
                claim = mine
            taken.append(claim)
        return taken

    def _take_signature(self, old: Claim, new: Claim) -> None:
        sig_old = Claim(old.name + SIGNATURE_SUFFIX, old.owner, old.since)
        if self._folder.exists(sig_old.path):
            self._folder.claim(sig_old.path, Claim(sig_old.name, new.owner, new.since).path)

    def _finish(self, claim: Claim, *, recovered: bool = False) -> str:
        """Apply one claimed file and move it out of claimed/; returns the outcome."""
        raw = self._folder.read(claim.path)
        digest = hashlib.sha256(raw).hexdigest()
        earlier = self._queries.seen_inbound(self._partner.name, digest)
        reason = None
        if earlier is None:
            outcome = self._take_in(claim, raw)
        else:
            outcome = "duplicate" if earlier[0] == "applied" else "quarantined"
            reason = earlier[1]
            log.info("files.already_taken_in", file=claim.name, sha256=digest, earlier=earlier[0])
        log.info("files.read", file=claim.name, outcome=outcome, recovered=recovered)
        try:
            if outcome == "quarantined":
                self._set_aside(claim, FAILED, reason or self._reason(digest))
            else:
                self._set_aside(claim, PROCESSED, None)
        except OSError as exc:
            # Already taken in: the file stays claimed, and the next pass moves it again.
            log.error("files.move_failed", file=claim.name, error=str(exc))
            return "left_claimed"
        return outcome

    def _take_in(self, claim: Claim, raw: bytes) -> str:
        """Hand the file to the inbound service, with its detached signature when one is beside."""
        sig = Claim(claim.name + SIGNATURE_SUFFIX, claim.owner, claim.since)
        signature = self._folder.read(sig.path) if self._folder.exists(sig.path) else None
        return self._inbound.apply(self._partner.name, raw, signature)

    def _reason(self, digest: str) -> str:
        seen = self._queries.seen_inbound(self._partner.name, digest)
        return (seen[1] if seen else None) or "refused by the inbound checks"

    def _set_aside(self, claim: Claim, where: str, reason: str | None) -> None:
        """Move the file (and its signature) to processed/ or failed/, never replacing one."""
        target = f"{where}/{claim.name}"
        if self._folder.exists(target):
            target = f"{target}.{claim.since:.0f}-{self.owner.rsplit('-', 1)[-1]}"
        if reason is not None:
            self._folder.write_atomic(target + REASON_SUFFIX, (reason + "\n").encode("utf-8"))
        sig = Claim(claim.name + SIGNATURE_SUFFIX, claim.owner, claim.since)
        if self._folder.exists(sig.path):
            self._folder.move(sig.path, target + SIGNATURE_SUFFIX)
        self._folder.move(claim.path, target)
        log.info("files.set_aside", file=claim.name, to=target)
