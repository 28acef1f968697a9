"""Where a file-exchange partner's folders are, and how they are reached (locally or over SFTP)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.profile.reading import Table

# local: the folders are on a disk this machine mounts; sftp: on the partner's SFTP host.
ACCESS_MODES = ("local", "sftp")
# An OpenSSH SHA-256 key fingerprint, as `ssh-keygen -lf` prints it.
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


@dataclass(frozen=True, slots=True)
class SftpAccess:
    """How to log in to the partner's SFTP host, and the host key we trust there."""

    host: str
    # Our user on the host.
    user: str
    # Our private key file (OpenSSH or PEM); relative paths are under GATEWAY_HOME.
    key: str
    # The host's key fingerprint, e.g. SHA256:...; any other host key is refused.
    host_key: str
    port: int = 22
    # Seconds to wait for the host before the transfer is retried later.
    timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class FileExchange:
    """The pair of folders shared with the bank; local relative paths are under GATEWAY_HOME."""

    # Where the gateway writes payment files for the bank.
    outbound: str = ""
    # Where the bank writes its reports for the gateway.
    inbound: str = ""
    # "local" or "sftp" (then `sftp` says where, and the folders are paths on that host).
    access: str = "local"
    # Seconds between two scans of the inbound folder.
    poll_seconds: float = 2.0
    # A file modified less than this many seconds ago may still be being written: left alone.
    settle_seconds: float = 2.0
    # A claimed file whose scanner has not finished it within this many seconds is taken over.
    stale_claim_seconds: float = 600.0
    sftp: SftpAccess | None = None


def read_sftp(table: Table) -> SftpAccess:
    """The [files.sftp] table."""
    fingerprint = table.text("host_key")
    if not _FINGERPRINT.match(fingerprint):
        raise table.error(
            "host_key",
            f"{fingerprint!r} is not an SSH key fingerprint like SHA256:<43 base64 characters>"
            " (ssh-keygen -lf <host key>.pub prints it)",
        )
    port = table.integer("port", 22, minimum=1)
    if port > 65535:
        raise table.error("port", f"must be at most 65535, got {port}")
    access = SftpAccess(
        host=table.word("host"),
        user=table.word("user"),
        key=table.word("key"),
        host_key=fingerprint,
        port=port,
        timeout=table.number("timeout", 15.0, minimum=0.1),
    )
    table.finish()
    return access


def read_files(table: Table, required: bool) -> FileExchange | None:
    """The [files] table; required when the transport is files, refused otherwise."""
    if not required:
        for key in ("outbound", "inbound", "access", "sftp"):
            if table.has(key):
                raise table.error(key, "is set but transport is not 'files'")
        table.finish()
        return None
    outbound = table.word("outbound")
    inbound = table.word("inbound")
    if outbound.rstrip("/") == inbound.rstrip("/"):
        raise table.error("inbound", f"must be another folder than outbound ({outbound!r})")
    access = table.choice("access", ACCESS_MODES, "local")
    sftp_table = table.table("sftp")
    if access == "sftp":
        if not table.has("sftp"):
            raise table.error("sftp", "is required with access 'sftp': add a [files.sftp] table")
        sftp: SftpAccess | None = read_sftp(sftp_table)
    else:
        if table.has("sftp"):
            raise table.error("sftp", "is set but access is not 'sftp'")
        sftp = None
    exchange = FileExchange(
        outbound=outbound,
        inbound=inbound,
        access=access,
        poll_seconds=table.number("poll_seconds", 2.0, minimum=0.05),
        settle_seconds=table.number("settle_seconds", 2.0, minimum=0.0),
        stale_claim_seconds=table.number("stale_claim_seconds", 600.0, minimum=1.0),
        sftp=sftp,
    )
    table.finish()
    return exchange
