"""A worker's local copies of stored objects, keyed by digest, bounded in size (LRU).

An entry is ``<root>/<digest>/<name>``. Every hand-out re-hashes the file: a copy that was
changed on disk (or half written by a crashed process) is deleted and fetched again, never used.
Use refreshes the entry's mtime; when the total passes ``max_bytes`` the least recently used
entries go (never the one just handed out).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

CHUNK = 1024 * 1024


class DigestMismatch(ValueError):
    """Bytes whose digest is not the one they were asked for."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ChecksumCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self.hits = self.misses = self.refused = 0

    def entry(self, digest: str, name: str) -> Path:
        if not digest or not all(c in "0123456789abcdef" for c in digest.lower()):
            raise ValueError(f"not a hex digest: {digest!r}")
        return self.root / f"{digest.lower()}" / Path(name).name

    def get(self, digest: str, name: str, fetch: Callable[[Path], None], algorithm: str = "sha256") -> Path:
        """The cached file for ``digest``; ``fetch(tmp_path)`` writes the bytes when there is none."""
        path = self.entry(digest, name)
        if path.is_file():
            if file_digest(path, algorithm) == digest.lower():
                self.hits += 1
                os.utime(path)
                return path
            self.refused += 1
            shutil.rmtree(path.parent, ignore_errors=True)
        self.misses += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fetch-", suffix=".part")
        os.close(fd)
        try:
            fetch(Path(tmp))
            got = file_digest(tmp, algorithm)
            if got != digest.lower():
                raise DigestMismatch(f"{name}: fetched bytes have {algorithm} {got}, expected {digest}")
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.evict(keep=path)
        return path

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self):
        if not self.root.is_dir():
            return []
        out = []
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
            size = sum(f.stat().st_size for f in files)
            mtime = max((f.stat().st_mtime for f in files), default=0.0)
            out.append((folder, size, mtime))
        return out

    def evict(self, keep: Path | None = None) -> None:
        with self._lock:
            entries = sorted(self._entries(), key=lambda e: e[2])
            total = sum(size for _, size, _ in entries)
            for folder, size, _ in entries:
                if total <= self.max_bytes:
                    break
                if keep is not None and keep.parent == folder:
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                total -= size
