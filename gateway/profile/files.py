"""Where a file-exchange partner's folders are."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.profile.reading import Table


@dataclass(frozen=True, slots=True)
class FileExchange:
    """The pair of folders shared with the bank; relative paths are under GATEWAY_HOME."""

    # Where the gateway writes payment files for the bank.
    outbound: str = ""
    # Where the bank writes its reports for the gateway.
    inbound: str = ""


def read_files(table: Table, required: bool) -> FileExchange | None:
    """The [files] table; required when the transport is files, refused otherwise."""
    if not required:
        if table.has("outbound") or table.has("inbound"):
            raise table.error("outbound", "is set but transport is not 'files'")
        table.finish()
        return None
    exchange = FileExchange(outbound=table.text("outbound"), inbound=table.text("inbound"))
    table.finish()
    return exchange
