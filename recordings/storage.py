"""Where sealed recordings are kept, behind a small interface (local filesystem today).

Objects are named by keys such as `2026/11/24/call-...-recording.opus.sealed`; a recording
row's `storage_uri` names its object. What an S3-compatible backend must do to take this
place is written down in docs/recordings.md (object layout, multipart upload for long calls,
ranged GETs, our encryption rather than the server's).

Files hold ePHI, sealed or not: folders are created 0700 and files 0600 (45 CFR
164.312(a)(1), access control), whatever the process umask.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

DIR_MODE = 0o700
FILE_MODE = 0o600


class OutsideArchive(ValueError):
    """A storage URI that does not name an object of this archive."""


class StoredObject(Protocol):
    """An object opened for reading: positioned reads (for byte ranges) and its size."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes: ...

    def close(self) -> None: ...


class ObjectWriter(Protocol):
    """A new object being written; invisible until `commit()`, gone after `abort()`."""

    def write(self, data: bytes, /) -> object: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class RecordingStorage(Protocol):
    def uri(self, key: str) -> str: ...

    def key_for_uri(self, uri: str) -> str:
        """The key of the object `uri` names; `OutsideArchive` when not in this archive."""
        ...

    def create(self, key: str) -> ObjectWriter: ...

    def open(self, key: str) -> StoredObject:
        """`FileNotFoundError` when there is no such object."""
        ...

    def get_small(self, key: str) -> bytes: ...

    def put_small(self, key: str, data: bytes) -> None:
        """Write (or replace) a small object atomically and durably."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool:
        """True when it existed."""
        ...

    def keys(self, suffixes: tuple[str, ...]) -> Iterator[str]:
        """Every object key ending with one of `suffixes`."""
        ...


def file_uri_path(storage_uri: str) -> Path:
    """The path a `recordings.storage_uri` names (a file:// URI, or a plain path)."""
    return Path(unquote(urlsplit(storage_uri).path)) if storage_uri.startswith("file://") else Path(storage_uri)


def private_dirs(path: Path) -> None:
    """Create `path` and its missing parents 0700 (whatever the umask); existing ones are left."""
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)


def open_private(path: Path, *, exclusive: bool = False) -> int:
    """A descriptor for writing `path` (created 0600; an existing file is made 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_EXCL if exclusive else 0)
    descriptor = os.open(path, flags, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)
    return descriptor


class _LocalObject:
    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self.size = os.fstat(self._file.fileno()).st_size

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._file.fileno(), size, offset)

    def close(self) -> None:
        self._file.close()


class _LocalWriter:
    """Writes `PATH.partial`, then fsync and rename: the object appears whole or not at all."""

    def __init__(self, path: Path) -> None:
        self._path = path
        # A name of its own: two writers of one object (two threads noting a key, a retry)
        # never share, or rename away, each other's partial file.
        self._partial = path.with_name(f"{path.name}.{secrets.token_hex(6)}.partial")
        self._file = os.fdopen(open_private(self._partial), "wb")

    def write(self, data: bytes, /) -> int:
        return self._file.write(data)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._partial.replace(self._path)
        _fsync_dir(self._path.parent)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._partial.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LocalStorage:
    """Objects as files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise OutsideArchive(f"{key!r} is not a key of this archive")
        return self.root.joinpath(*relative.parts)

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def key_for_uri(self, uri: str) -> str:
        resolved = file_uri_path(uri).resolve()
        if not resolved.is_relative_to(self.root) or resolved == self.root:
            raise OutsideArchive(f"{uri} is not in the archive {self.root}")
        return resolved.relative_to(self.root).as_posix()

    def create(self, key: str) -> _LocalWriter:
        path = self.path(key)
        private_dirs(path.parent)
        self._tighten(path.parent)
        return _LocalWriter(path)

    def _tighten(self, folder: Path) -> None:
        """Folders from before this rule (0755) are made 0700 as they are written to again."""
        current = folder
        while True:
            if current.stat().st_mode & 0o777 != DIR_MODE:
                os.chmod(current, DIR_MODE)
            if current == self.root or current == current.parent:
                return
            current = current.parent

    def open(self, key: str) -> _LocalObject:
        return _LocalObject(self.path(key))

    def get_small(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def put_small(self, key: str, data: bytes) -> None:
        writer = self.create(key)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def keys(self, suffixes: tuple[str, ...]) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for folder, _, files in os.walk(self.root):
            for name in files:
                if name.endswith(suffixes):
                    yield (Path(folder) / name).relative_to(self.root).as_posix()
