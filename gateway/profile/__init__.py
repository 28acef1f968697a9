"""Partner profiles (conf/partners/<name>.toml): how each bank is reached, trusted and scheduled.

Each table of the file has its own module: [messages], [signature], [schedule], [files], [inbound].
Every mistake is refused at start with the file, table and key it is in.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from gateway.errors import ConfigError
from gateway.profile.files import FileExchange, SftpAccess, read_files
from gateway.profile.inbound import InboundPolicy, read_inbound
from gateway.profile.messages import MessagePolicy, read_messages
from gateway.profile.reading import Table
from gateway.profile.schedule import Schedule, read_schedule
from gateway.profile.signature import PinnedCertificate, SignaturePolicy, read_signature

TRANSPORTS = ("amqp", "files")
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
_BIC = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
# How an order names the debtor account: an IBAN, or SCHEME:number (e.g. BBAN:7411058271001).
_ACCOUNT = re.compile(r"^([A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}|[A-Za-z0-9]{1,35}:[A-Za-z0-9-]{1,34})$")

__all__ = [
    "FileExchange",
    "InboundPolicy",
    "MessagePolicy",
    "PartnerProfile",
    "PinnedCertificate",
    "Schedule",
    "SftpAccess",
    "SignaturePolicy",
    "load_partner",
    "load_partners",
]


@dataclass(frozen=True, slots=True)
class PartnerProfile:
    """How one bank partner is reached and trusted."""

    # Short name used in queues, file names and postings, e.g. "agribank".
    name: str
    # The partner bank's BIC.
    bic: str
    # "amqp" (exchanges on the broker) or "files" (a pair of folders, local or over SFTP).
    transport: str = "amqp"
    # Debtor accounts (the treasury's own) held at this partner; orders are routed by them.
    accounts: tuple[str, ...] = ()
    # Minutes within which a status report is expected for each file sent.
    status_deadline_minutes: int = 60
    messages: MessagePolicy = field(default_factory=MessagePolicy)
    signature: SignaturePolicy = field(default_factory=SignaturePolicy)
    schedule: Schedule = field(default_factory=Schedule)
    files: FileExchange | None = None
    # Limits of each inbound file and the tolerance on its creation time ([inbound]).
    inbound: InboundPolicy = field(default_factory=InboundPolicy)


def load_partner(path: Path) -> PartnerProfile:
    """Read one partner profile, naming the file, table and key of any mistake."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    top = Table(path, "", data)
    top.only(*(f.name for f in fields(PartnerProfile)))
    name = top.text("name")
    if not _NAME.match(name):
        raise top.error("name", f"{name!r} must be 2-31 lower-case letters, digits or dashes")
    bic = top.text("bic")
    if not _BIC.match(bic):
        raise top.error("bic", f"{bic!r} is not a BIC (8 or 11 characters, e.g. VBAAVNVX)")
    transport = top.choice("transport", TRANSPORTS, "amqp")
    accounts = top.texts("accounts")
    for account in accounts:
        if not _ACCOUNT.match(account):
            raise top.error(
                "accounts",
                f"{account!r} is neither an IBAN nor SCHEME:number (e.g. BBAN:7411058271001)",
            )
    if len(set(accounts)) != len(accounts):
        twice = sorted({a for a in accounts if accounts.count(a) > 1})
        raise top.error("accounts", f"lists {', '.join(twice)} more than once")
    profile = PartnerProfile(
        name=name,
        bic=bic,
        transport=transport,
        accounts=accounts,
        status_deadline_minutes=top.integer("status_deadline_minutes", 60, minimum=1),
        messages=read_messages(top.table("messages")),
        signature=read_signature(top.table("signature")),
        schedule=read_schedule(top.table("schedule")),
        files=read_files(top.table("files"), required=transport == "files"),
        inbound=read_inbound(top.table("inbound")),
    )
    top.finish()
    return profile


def load_partners(folder: Path) -> dict[str, PartnerProfile]:
    """Every profile in `folder` (*.toml), refusing two partners with one name or one account."""
    partners: dict[str, PartnerProfile] = {}
    holders: dict[str, str] = {}
    folders: dict[str, str] = {}
    for path in sorted(folder.glob("*.toml")):
        profile = load_partner(path)
        if profile.name in partners:
            raise ConfigError(f"{path}: name {profile.name!r} is already used by another profile")
        for account in profile.accounts:
            if account in holders:
                raise ConfigError(
                    f"{path}: accounts: {account} is already held by partner {holders[account]}"
                )
            holders[account] = profile.name
        if profile.files is not None:
            for side in (profile.files.outbound, profile.files.inbound):
                where = f"{profile.files.sftp.host}:{side}" if profile.files.sftp else side
                if where in folders:
                    raise ConfigError(
                        f"{path}: [files] folder {side!r} is already used by partner"
                        f" {folders[where]}"
                    )
                folders[where] = profile.name
        partners[profile.name] = profile
    return partners
