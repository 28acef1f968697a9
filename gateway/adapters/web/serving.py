"""The console's listening: its TLS files checked and its sockets bound before it serves, for
`gateway console` and for `gateway run` with console_with_run."""

from __future__ import annotations

import contextlib
import socket
import ssl

from gateway.config import Settings
from gateway.errors import ConfigError

# Connections the console's sockets queue while the server starts (uvicorn's own default).
BACKLOG = 2048


def check_tls(settings: Settings) -> None:
    """Refuse TLS settings the server could not start with, naming the setting and its file:
    each file set must exist, and together be a PEM certificate and its unencrypted key (the key
    may be in the certificate's file, console_tls_key then unset). uvicorn would only say
    `[Errno 2] No such file or directory` or `[SSL] PEM lib`."""
    if not settings.console_tls_cert:
        if settings.console_tls_key:
            raise ConfigError(
                "console_tls_key is set without console_tls_cert: console TLS needs the"
                " certificate (PEM), and its key in console_tls_key or in the same file"
            )
        return
    for setting in ("console_tls_cert", "console_tls_key"):
        value = getattr(settings, setting)
        if not value:
            continue
        path = settings.path(value)
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{setting} {path}: {exc.strerror or exc}") from None
    cert = settings.path(settings.console_tls_cert)
    key = settings.path(settings.console_tls_key) if settings.console_tls_key else None
    try:
        # An empty password: an encrypted key is refused with this line, not met at the first
        # connection (the server is given no password for it).
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password="")
    except ssl.SSLError as exc:
        detail = f" ({exc.reason})" if exc.reason else ""
        files = f"console_tls_cert {cert}" + (f" and console_tls_key {key}" if key else "")
        raise ConfigError(
            f"{files}: not a PEM certificate and its unencrypted private key{detail}"
        ) from None


def listen(address: str, port: int) -> list[socket.socket]:
    """Sockets bound and listening on every address `address` resolves to (as uvicorn binds
    them itself), so that a wrong address or a port taken is said naming them before the
    console says it serves. Port 0 takes one free port, the same for every address."""
    try:
        # "" is every interface, as asyncio (and uvicorn before) took it.
        found = socket.getaddrinfo(
            address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"console address {address!r}: {reason}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, resolved_to in dict.fromkeys(found):
            where = resolved_to
            if port == 0 and sockets:
                where = (where[0], sockets[0].getsockname()[1], *where[2:])
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:
                continue  # a family this host cannot open (IPv6 switched off): as asyncio does
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # One socket per family, as asyncio binds them.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(where)
            except OSError as exc:
                resolved = f" ({where[0]})" if where[0] != address else ""
                raise ConfigError(
                    f"console cannot listen on {address}{resolved} port {port}:"
                    f" {exc.strerror or exc}"
                ) from None
            sock.listen(BACKLOG)
    except BaseException:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        raise
    if not sockets:
        raise ConfigError(f"console address {address!r}: no address this host can listen on")
    return sockets
