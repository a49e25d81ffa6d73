"""One view over what a user uploads: a single file, a zip archive or (for tests and tools) a folder.

Archives are hostile until proven otherwise: member names with ``..`` or absolute paths,
links and encrypted members are refused before anything is read, and the expanded size is
limited both as declared by the archive and as actually read (headers can lie).
"""
from __future__ import annotations

import io
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import ARCHIVE_LIMIT, UNSAFE_ARCHIVE, WRONG_FORMAT, FormatError, Issue


@dataclass(frozen=True)
class Limits:
    """Bounds on what an archive may expand to; the defaults suit a 2 GiB upload."""

    max_total_bytes: int = 8 << 30
    max_member_bytes: int = 4 << 30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 16 << 20   # below this expanded size any ratio is harmless
    max_members: int = 2_000_000
    max_text_file_bytes: int = 16 << 20  # small side files (yaml, names, ini) read whole


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_member_reason(name: str) -> str | None:
    """Why a member name could escape the extraction folder (None when it is safe)."""
    if not name:
        return "empty member name"
    if "\x00" in name:
        return "NUL byte in member name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return "absolute member path"
    if any(part == ".." for part in norm.split("/")):
        return "member path contains '..'"
    return None


class Source:
    """Named members readable as bytes or text; ``display`` names them in issues."""

    label: str = "<input>"

    def names(self) -> list[str]:
        raise NotImplementedError

    def open_binary(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    @contextmanager
    def open_text(self, name: str) -> Iterator[IO[str]]:
        with self.open_binary(name) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                yield text
            finally:
                text.detach()

    def read_small_text(self, name: str, limit: int) -> str:
        with self.open_binary(name) as fp:
            data = fp.read(limit + 1)
        if len(data) > limit:
            raise FormatError([Issue("error", ARCHIVE_LIMIT, f"{name} is larger than {limit} bytes", file=name)])
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FormatError([Issue("error", WRONG_FORMAT, f"not UTF-8 text ({exc.reason})", file=name)]) from None

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSource(Source):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = path.name

    def names(self) -> list[str]:
        return [self.path.name]

    def open_binary(self, name: str) -> IO[bytes]:
        return open(self.path, "rb")


class DirSource(Source):
    def __init__(self, path: Path, limits: Limits) -> None:
        self.root = path
        self.label = path.name
        names = []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames.sort()
            for f in sorted(filenames):
                full = Path(dirpath) / f
                if full.is_symlink():
                    continue
                names.append(full.relative_to(path).as_posix())
                if len(names) > limits.max_members:
                    raise FormatError([Issue("error", ARCHIVE_LIMIT, f"more than {limits.max_members} files")])
        self._names = names

    def names(self) -> list[str]:
        return list(self._names)

    def open_binary(self, name: str) -> IO[bytes]:
        if unsafe_member_reason(name):
            raise FileNotFoundError(name)
        return open(self.root / name, "rb")


def _corrupt(name: str, exc: BaseException) -> FormatError:
    """A damaged archive member is a clean validation error, not a crash."""
    return FormatError([Issue("error", WRONG_FORMAT, f"archive member is corrupt ({exc})", file=name)])


class _Bounded(io.RawIOBase):
    """Reads at most ``limit`` bytes of a member, so a lying size header cannot bomb us."""

    def __init__(self, inner: IO[bytes], limit: int, name: str) -> None:
        self.inner, self.left, self.name_ = inner, limit, name

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        try:
            data = self.inner.read(min(len(b), self.left + 1))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise _corrupt(self.name_, exc) from None
        if len(data) > self.left:
            raise FormatError([Issue("error", ARCHIVE_LIMIT,
                                     "member expands beyond its declared size or the size limit", file=self.name_)])
        self.left -= len(data)
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


class ZipSource(Source):
    def __init__(self, path: Path, limits: Limits) -> None:
        self.label = path.name
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:  # e.g. a zip version we cannot read
            raise FormatError([Issue("error", WRONG_FORMAT, f"not a readable zip archive: {exc}", file=path.name)]) \
                from None
        try:
            self._infos = self._check(limits)
        except FormatError:
            self.zf.close()
            raise
        self.limits = limits

    def _check(self, limits: Limits) -> dict[str, zipfile.ZipInfo]:
        issues: list[Issue] = []
        infos = self.zf.infolist()
        if len(infos) > limits.max_members:
            raise FormatError([Issue("error", ARCHIVE_LIMIT,
                                     f"archive has {len(infos)} members; the limit is {limits.max_members}")])
        total = packed = 0
        kept: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            reason = unsafe_member_reason(info.filename)
            mode = info.external_attr >> 16
            if reason is None and stat.S_ISLNK(mode):
                reason = "symbolic link member"
            if reason is None and info.flag_bits & 0x1:
                reason = "encrypted member"
            if reason:
                issues.append(Issue("error", UNSAFE_ARCHIVE, f"refused: {reason}", file=info.filename))
                continue
            if info.file_size > limits.max_member_bytes:
                issues.append(Issue("error", ARCHIVE_LIMIT,
                                    f"member expands to {info.file_size} bytes; the limit is {limits.max_member_bytes}",
                                    file=info.filename))
            total += info.file_size
            packed += info.compress_size
            if not info.is_dir():
                kept[PurePosixPath(info.filename.replace("\\", "/")).as_posix()] = info
        if total > limits.max_total_bytes:
            issues.append(Issue("error", ARCHIVE_LIMIT,
                                f"archive expands to {total} bytes; the limit is {limits.max_total_bytes}"))
        if total > limits.ratio_floor_bytes and total > limits.max_ratio * max(packed, 1):
            issues.append(Issue("error", ARCHIVE_LIMIT,
                                f"archive expands {total / max(packed, 1):.0f}x ({packed} -> {total} bytes); "
                                f"the limit is {limits.max_ratio:.0f}x"))
        if issues:
            raise FormatError(issues)
        return kept

    def names(self) -> list[str]:
        return list(self._infos)

    def open_binary(self, name: str) -> IO[bytes]:
        info = self._infos[name]
        limit = min(info.file_size, self.limits.max_member_bytes)
        try:
            member = self.zf.open(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise _corrupt(name, exc) from None
        return io.BufferedReader(_Bounded(member, limit, name), 1 << 16)

    def close(self) -> None:
        self.zf.close()


def open_source(path: str | os.PathLike[str], limits: Limits | None = None) -> Source:
    """Open an upload as a source; zip archives are detected by content, not by name."""
    limits = limits or Limits()
    p = Path(path)
    if p.is_dir():
        return DirSource(p, limits)
    if not p.is_file():
        raise FormatError([Issue("error", WRONG_FORMAT, f"no such file: {p.name}")])
    if zipfile.is_zipfile(p):
        return ZipSource(p, limits)
    return FileSource(p)
