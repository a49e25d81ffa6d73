"""The local-directory backend: keys are paths under one root, publication is a rename."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import NotFound, Store, check_key


class LocalStore(Store):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.scratch = self.root

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, path: str | Path, *, move: bool = False) -> None:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if move:
            os.replace(path, final)
            return
        tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise NotFound(key) from None

    def local_path(self, key: str, checksum: str | None = None) -> Path:
        # The directory is the store itself, not a copy of it: nothing to verify or cache.
        path = self.path(key)
        if not path.is_file():
            raise NotFound(key)
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(key) from None

    def modified(self, key: str) -> float:
        try:
            return self.path(key).stat().st_mtime
        except FileNotFoundError:
            raise NotFound(key) from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        n = super().delete_prefix(prefix)
        folder = self.root / check_key(prefix)
        if prefix.endswith("/") and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)  # and the empty folders it leaves
        return n

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / check_key(prefix) if prefix.strip("/") else self.root
        if base.is_file():
            yield str(base.relative_to(self.root))
            return
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                yield Path(dirpath, name).relative_to(self.root).as_posix()
