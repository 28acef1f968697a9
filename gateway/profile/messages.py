"""What a partner's files look like: message versions, header, charset, ids, batching."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.text import Charset
from gateway.iso20022.pain001 import ACCOUNT_STYLES
from gateway.iso20022.pain001 import VERSIONS as PAIN001_VERSIONS
from gateway.profile.reading import Table

# The builder's own lists, so a profile accepts exactly what the builder writes:
# PAIN001_VERSIONS (.09 and .03); CHARSETS utf8 (text as given, NFC) or latin (transliterated to
# the restricted SWIFT/EPC Latin set); ACCOUNT_STYLES auto (IBAN when the account is one,
# Othr/Id otherwise), iban (only IBANs) or other (always Othr/Id).
CHARSETS = tuple(Charset)

__all__ = ["ACCOUNT_STYLES", "CHARSETS", "PAIN001_VERSIONS", "MessagePolicy", "read_messages"]


@dataclass(frozen=True, slots=True)
class MessagePolicy:
    """The partner's message format choices."""

    pain001_version: str = "pain.001.001.09"
    # Whether each file carries a head.001.001.02 Business Application Header.
    app_header: bool = False
    charset: str = "utf8"
    account_id: str = "auto"
    # Most transactions in one pain.001 file.
    max_txs_per_file: int = 50_000


def read_messages(table: Table) -> MessagePolicy:
    """The [messages] table."""
    policy = MessagePolicy(
        pain001_version=table.choice("pain001_version", PAIN001_VERSIONS, "pain.001.001.09"),
        app_header=table.flag("app_header", False),
        charset=table.choice("charset", CHARSETS, "utf8"),
        account_id=table.choice("account_id", ACCOUNT_STYLES, "auto"),
        max_txs_per_file=table.integer("max_txs_per_file", 50_000, minimum=1),
    )
    table.finish()
    return policy
