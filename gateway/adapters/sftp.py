"""The bank's folders over SFTP (paramiko), trusting only the host key pinned in the profile.

The same `Folder` operations as on a local disk: atomic writes (temporary name, fsync through
OpenSSH's fsync extension, POSIX rename) and claims by rename (an SFTP rename never replaces a
file, so only one reader wins). One connection per folder object, opened on first use and
reopened after a fault.
"""

from __future__ import annotations

import contextlib
import socket
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

import paramiko
import structlog

from gateway.adapters.filedrop import Entry, temporary_name
from gateway.errors import GatewayError, TransientError
from gateway.profile import SftpAccess

log = structlog.get_logger("gateway.sftp")

T = TypeVar("T")
# The SFTP status OpenSSH answers to a rename onto an existing file (SSH_FX_FAILURE).
_FAILURE = 4


class HostKeyRefusedError(GatewayError):
    """The SFTP host showed a key other than the pinned one: nothing is sent or read."""


def connect(access: SftpAccess, key_file: Path) -> paramiko.SFTPClient:
    """Log in with our key after checking the host key against the pinned fingerprint."""
    where = f"{access.user}@{access.host}:{access.port}"
    try:
        sock = socket.create_connection((access.host, access.port), timeout=access.timeout)
    except OSError as exc:
        raise TransientError(f"SFTP host {where} unreachable: {exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = access.timeout
        transport.start_client(timeout=access.timeout)
        shown = transport.get_remote_server_key().fingerprint
        if shown != access.host_key:
            raise HostKeyRefusedError(
                f"SFTP host {where} presented host key {shown}, not the pinned {access.host_key};"
                " refusing to connect (check the host, then update [files.sftp] host_key)"
            )
        try:
            key = paramiko.PKey.from_path(key_file)
        except (OSError, paramiko.SSHException) as exc:
            raise GatewayError(f"SFTP key {key_file} unreadable: {exc}") from None
        transport.auth_publickey(access.user, key)
        transport.set_keepalive(30)  # an idle scanner's connection is not dropped by firewalls
        client = paramiko.SFTPClient.from_transport(transport)
        if client is None:
            raise TransientError(f"SFTP host {where} opened no SFTP session")
        return client
    except paramiko.AuthenticationException as exc:
        transport.close()
        raise GatewayError(f"SFTP host {where} refused our key {key_file}: {exc}") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise TransientError(f"SFTP host {where}: {exc!r}") from None
    except BaseException:
        transport.close()
        raise


class SftpFolder:
    """A folder on the partner's SFTP host."""

    def __init__(self, access: SftpAccess, key_file: Path, path: str) -> None:
        self._access = access
        self._key_file = key_file
        self._root = PurePosixPath(path)
        self._client: paramiko.SFTPClient | None = None

    def describe(self) -> str:
        """sftp://user@host:port/path."""
        a = self._access
        return f"sftp://{a.user}@{a.host}:{a.port}/{str(self._root).lstrip('/')}"

    def _sftp(self) -> paramiko.SFTPClient:
        client = self._client
        if client is None or not client.get_channel().get_transport().is_active():  # type: ignore[union-attr]
            self.close()
            client = self._client = connect(self._access, self._key_file)
        return client

    def _path(self, name: str) -> str:
        return str(self._root / name)

    def _run(self, action: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run one operation; a broken connection is closed and reported as transient."""
        try:
            return action(self._sftp())
        except (paramiko.SSHException, EOFError, TimeoutError, ConnectionError) as exc:
            self.close()
            raise TransientError(f"SFTP {self.describe()}: {exc!r}") from None

    def files(self, sub: str = "") -> list[Entry]:
        """Regular files, sorted by name."""
        folder = self._path(sub) if sub else str(self._root)

        def listing(sftp: paramiko.SFTPClient) -> list[Entry]:
            try:
                attrs = sftp.listdir_attr(folder)
            except FileNotFoundError:
                return []
            return sorted(
                (
                    Entry(a.filename, a.st_size or 0, float(a.st_mtime or 0))
                    for a in attrs
                    if a.st_mode is not None and stat.S_ISREG(a.st_mode)
                ),
                key=lambda e: e.name,
            )

        return self._run(listing)

    def read(self, name: str) -> bytes:
        """The file's bytes."""

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(self._path(name), "rb") as handle:
                handle.prefetch()
                return handle.read()

        return self._run(read)

    def write_atomic(self, name: str, data: bytes) -> None:
        """Temporary name, fsync on the host, POSIX rename into place."""
        target = self._root / name
        temporary = str(target.parent / temporary_name(target.name))

        def write(sftp: paramiko.SFTPClient) -> None:
            try:
                with sftp.open(temporary, "wb") as handle:
                    handle.set_pipelined(True)
                    handle.write(data)
                    handle.flush()
                    # OpenSSH's fsync@openssh.com: paramiko has no public call for it.
                    sftp._request(  # type: ignore[attr-defined]  # pinned paramiko, see pyproject
                        paramiko.sftp.CMD_EXTENDED, "fsync@openssh.com", handle.handle
                    )
                sftp.posix_rename(temporary, str(target))
            except BaseException:
                with contextlib.suppress(OSError, paramiko.SSHException):
                    sftp.remove(temporary)
                raise

        self._run(write)

    def claim(self, name: str, new_name: str) -> bool:
        """SFTP rename: refused when the target exists, so only one reader wins."""

        def rename(sftp: paramiko.SFTPClient) -> bool:
            try:
                sftp.rename(self._path(name), self._path(new_name))
            except FileNotFoundError:
                return False
            return True

        return self._run(rename)

    def move(self, name: str, new_name: str) -> None:
        """SFTP rename (never replaces a file)."""
        self._run(lambda sftp: sftp.rename(self._path(name), self._path(new_name)))

    def exists(self, name: str) -> bool:
        """Whether the file is there."""

        def present(sftp: paramiko.SFTPClient) -> bool:
            try:
                sftp.stat(self._path(name))
            except FileNotFoundError:
                return False
            return True

        return self._run(present)

    def ensure(self, sub: str) -> None:
        """Create the sub-folder if missing."""

        def mkdir(sftp: paramiko.SFTPClient) -> None:
            path = self._path(sub)
            try:
                sftp.stat(path)
            except FileNotFoundError:
                try:
                    sftp.mkdir(path)
                except OSError:
                    # Another scanner made it between our stat and mkdir; only a still
                    # missing folder is an error.
                    sftp.stat(path)

        self._run(mkdir)

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            with contextlib.suppress(paramiko.SSHException, OSError, AttributeError):
                self._client.get_channel().get_transport().close()  # type: ignore[union-attr]
            self._client = None
