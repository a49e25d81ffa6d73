"""The contract every backend keeps."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

CHUNK = 1024 * 1024


class StorageUnavailable(RuntimeError):
    """The store cannot be reached now; the request answers 503, a job retries."""


class NotFound(FileNotFoundError):
    """No object under that key."""


def check_key(key: str) -> str:
    """A key is a relative ``/`` path without ``..``: a row can never name a file outside the store."""
    path = PurePosixPath(str(key))
    if not str(key) or path.is_absolute() or ".." in path.parts or "\\" in str(key):
        raise ValueError(f"not a storage key: {key!r}")
    return str(path)


class Store(ABC):
    """Objects under relative keys. Every write is atomic: a reader sees the whole object or none."""

    #: Where a request or job writes what it is about to publish (always a local directory).
    scratch: Path

    @abstractmethod
    def put_file(self, key: str, path: str | Path, *, move: bool = False) -> None:
        """Publish the local file ``path`` under ``key``; ``move`` lets the store take the file."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A stream of the object's bytes (read in chunks; never loaded whole)."""

    @abstractmethod
    def local_path(self, key: str, checksum: str | None = None) -> Path:
        """A local file with the object's bytes, for readers that need a path (OpenCV, numpy).

        With ``checksum`` (sha256 hex) the file is verified against it; a backend that copies
        keeps the copy in its cache under that checksum."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def modified(self, key: str) -> float:
        """When the object was last written (seconds since the epoch)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (a folder: ``exports/``)."""

    def delete_prefix(self, prefix: str) -> int:
        n = 0
        for key in list(self.keys(prefix)):
            self.delete(key)
            n += 1
        return n

    def url(self, key: str, *, filename: str | None = None, mimetype: str | None = None,
            ttl_seconds: int = 300) -> str | None:
        """A short-lived URL a client may download from directly, or None (serve it yourself)."""
        return None

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.staged(key) as path:
            path.write_bytes(data)

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def copy(self, src: str, dst: str) -> None:
        with self.staged(dst) as path, self.open(src) as fh, open(path, "wb") as out:
            shutil.copyfileobj(fh, out, CHUNK)

    def temp_file(self, suffix: str = ".part") -> Path:
        """A new empty local file in the scratch area (the caller removes or publishes it)."""
        folder = self.scratch / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix="stage-", suffix=suffix)
        os.close(fd)
        return Path(name)

    @contextlib.contextmanager
    def staged(self, key: str, suffix: str = ".part") -> Iterator[Path]:
        """Write a local file, published under ``key`` only when the block ends without error."""
        check_key(key)
        path = self.temp_file(suffix)
        try:
            yield path
            self.put_file(key, path, move=True)
        finally:
            path.unlink(missing_ok=True)
