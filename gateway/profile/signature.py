"""How files to and from a partner are signed, and which certificates of theirs we trust."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.profile.reading import Table

# enveloped: in AppHdr/Sgntr with an AppHdr, else at the document root; detached: a signature
# file beside the XML; none: the partner relies on transport security.
SIGNATURE_MODES = ("enveloped", "detached", "none")


@dataclass(frozen=True, slots=True)
class PinnedCertificate:
    """One of the partner's certificates, trusted only within its window."""

    # PEM file; relative paths are under GATEWAY_HOME.
    path: str
    # Optional narrowing of the certificate's own validity (e.g. when the next one takes over).
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """Signature mode, our key for this partner, and the partner's pinned certificates."""

    mode: str = "enveloped"
    # Name of our key pair in keys/; empty means the gateway's signing_key setting.
    key: str = ""
    # Current and next certificates of the partner.
    certificates: tuple[PinnedCertificate, ...] = ()

    @property
    def current(self) -> PinnedCertificate | None:
        """The first pinned certificate (the one a bank simulator signs with); None for a partner
        with signature mode `none` that pins none (transport-level security only)."""
        return self.certificates[0] if self.certificates else None


def read_signature(table: Table) -> SignaturePolicy:
    """The [signature] table with its [[signature.certificates]]."""
    mode = table.choice("mode", SIGNATURE_MODES, "enveloped")
    key = table.text("key", "")
    pinned = []
    for cert in table.tables("certificates"):
        entry = PinnedCertificate(
            path=cert.text("path"),
            not_before=cert.moment("not_before"),
            not_after=cert.moment("not_after"),
        )
        if entry.not_before and entry.not_after and entry.not_before >= entry.not_after:
            raise cert.error("not_after", "must be later than not_before")
        cert.finish()
        pinned.append(entry)
    if mode != "none" and not pinned:
        raise table.error(
            "certificates", f"are required with mode {mode!r}: add a [[signature.certificates]]"
        )
    table.finish()
    return SignaturePolicy(mode=mode, key=key, certificates=tuple(pinned))
