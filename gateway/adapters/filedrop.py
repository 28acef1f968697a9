"""Folders shared with a bank: files written atomically, and claimed by rename before reading.

A `Folder` is one directory, on this machine (`LocalFolder`) or on an SFTP host
(`gateway.adapters.sftp.SftpFolder`). Writers never show a half-written file: the bytes go to a
temporary name, are flushed to disk, and the file is renamed into place. Readers claim a file by
renaming it to a name only they use, so two readers never take the same file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from gateway.service.channels import PARTIAL_SUFFIXES, SIGNATURE_SUFFIX, Entry, Folder, is_partial


def temporary_name(name: str) -> str:
    """A hidden, partial name beside `name`, unique to this writer."""
    return f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"


__all__ = ["PARTIAL_SUFFIXES", "SIGNATURE_SUFFIX", "Entry", "Folder", "LocalFolder", "is_partial"]


class LocalFolder:
    """A folder on a disk of this machine (or a share it mounts)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        """The folder's path."""
        return str(self.path)

    def files(self, sub: str = "") -> list[Entry]:
        """Regular files, sorted by name."""
        folder = self.path / sub if sub else self.path
        entries = []
        try:
            with os.scandir(folder) as listing:
                for item in listing:
                    if item.is_file(follow_symlinks=False):
                        stat = item.stat(follow_symlinks=False)
                        entries.append(Entry(item.name, stat.st_size, stat.st_mtime))
        except FileNotFoundError:
            return []
        return sorted(entries, key=lambda e: e.name)

    def read(self, name: str) -> bytes:
        """The file's bytes."""
        return (self.path / name).read_bytes()

    def write_atomic(self, name: str, data: bytes) -> None:
        """Temporary file, fsync, rename into place, fsync of the folder."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / temporary_name(target.name)
        try:
            with temporary.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._sync_folder(target.parent)

    def claim(self, name: str, new_name: str) -> bool:
        """Atomic rename; whoever renames first owns the file."""
        target = self.path / new_name
        if target.exists():
            raise FileExistsError(f"{target} already exists")
        try:
            (self.path / name).rename(target)
        except FileNotFoundError:
            return False
        self._sync_folder(self.path)
        return True

    def move(self, name: str, new_name: str) -> None:
        """Rename without replacing anything."""
        target = self.path / new_name
        if target.exists():
            raise FileExistsError(f"{target} already exists")
        (self.path / name).rename(target)
        self._sync_folder(target.parent)

    def exists(self, name: str) -> bool:
        """Whether the file is there."""
        return (self.path / name).exists()

    def ensure(self, sub: str) -> None:
        """mkdir -p."""
        (self.path / sub).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Nothing to release."""

    @staticmethod
    def _sync_folder(folder: Path) -> None:
        """Make a rename in `folder` durable."""
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
