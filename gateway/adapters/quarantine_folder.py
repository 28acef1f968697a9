"""Refused inbound files kept on disk, content-addressed: `<folder>/<first two hex>/<sha256>`.

The quarantine row in the database keeps the partner, reason, hash and size; the bytes are here,
written once whoever sends them again (the name is their hash, so a second write would be the
same bytes). A file is written to a temporary name, flushed to disk and renamed, so a reader sees
all of it or none; it is written before its row is committed, so a row always has its file (a
crash between the two leaves a file without a row, which the next refusal of it reuses).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from gateway.errors import InvalidMessage

_SHA256 = re.compile(r"[0-9a-f]{64}")


class QuarantineFolder:
    """The quarantine folder (the port `QuarantineFiles`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the file with this SHA-256 is kept."""
        if not _SHA256.fullmatch(sha256):
            raise InvalidMessage(f"{sha256[:80]!r} is not a SHA-256 in lower-case hex")
        return self.root / sha256[:2] / sha256

    def keep(self, data: bytes) -> str:
        """Write `data` under its SHA-256 unless it is there already; return the hash."""
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if target.exists():
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return sha256

    def read(self, sha256: str) -> bytes | None:
        """The kept bytes, or None when no file has this hash."""
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
