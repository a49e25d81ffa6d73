"""One way to every stored byte: videos, frame timelines, models, imports, exports, reports.

Two backends behind one :class:`~storage.base.Store` interface, chosen by ``STORAGE_URL``:

- a local directory (the default, ``STORAGE_DIR``), where a key is a relative path;
- an S3-compatible object store (``STORAGE_URL=s3://bucket/prefix``, ``S3_ENDPOINT_URL``, the
  usual ``AWS_*`` credentials), where uploads are multipart and streamed from disk, downloads are
  streamed or presigned, and readers that need a file (OpenCV) get one from a local cache keyed
  by checksum, bounded in size, that never hands out a file whose digest does not match.

Keys are always relative, ``/``-separated paths (``videos/<id>.avi``); rows store keys, never
absolute paths, so a database moves between backends with its files.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .base import NotFound, StorageUnavailable, Store, check_key
from .cache import ChecksumCache, DigestMismatch
from .local import LocalStore

__all__ = ["ChecksumCache", "DigestMismatch", "LocalStore", "NotFound", "Store", "StorageUnavailable",
           "check_key", "open_store", "store", "timeline_file", "timeline_key", "video_file"]

_lock = threading.Lock()
_stores: dict[tuple, Store] = {}


def open_store(url: str | None, root: str | Path, *, endpoint_url: str | None = None,
               cache_dir: str | Path | None = None, cache_max_bytes: int = 10 * 1024**3,
               region: str | None = None) -> Store:
    """A store for ``url`` (``s3://bucket/prefix``) or, without one, the local directory ``root``.

    ``root`` is also the S3 backend's scratch space: its cache lives under ``root/cache``
    unless ``cache_dir`` says otherwise.
    """
    if not url or url.startswith("file:"):
        return LocalStore(Path(url[len("file://"):]) if url and url.startswith("file://") else Path(root))
    if url.startswith("s3://"):
        from .s3 import S3Store

        bucket, _, prefix = url[len("s3://"):].partition("/")
        cache = ChecksumCache(Path(cache_dir) if cache_dir else Path(root) / "cache", cache_max_bytes)
        return S3Store(bucket, prefix, cache=cache, endpoint_url=endpoint_url, region=region)
    raise ValueError(f"STORAGE_URL must be s3://bucket/prefix or a file:// path, not {url!r}")


def store(root: str | Path | None = None) -> Store:
    """The process's store, as the settings say; ``root`` overrides ``STORAGE_DIR`` (an app's config)."""
    from settings import cached_settings

    s = cached_settings()
    key = (s.storage_url, str(root or s.storage_dir), s.s3_endpoint_url, str(s.storage_cache_dir),
           s.storage_cache_bytes)
    with _lock:
        found = _stores.get(key)
        if found is None:
            found = _stores[key] = open_store(s.storage_url, root or s.storage_dir, endpoint_url=s.s3_endpoint_url,
                                              cache_dir=s.storage_cache_dir, cache_max_bytes=s.storage_cache_bytes)
        return found


def timeline_key(video_key: str) -> str:
    """A video's frame times are kept beside it, as ``<key>.timestamps.npy``."""
    return f"{check_key(video_key)}.timestamps.npy"


def video_file(video, root: str | Path | None = None) -> Path:
    """A local file with a video row's bytes (``storage_path``, verified by ``checksum`` when copied)."""
    return store(root).local_path(video.storage_path, getattr(video, "checksum", None) or None)


def timeline_file(video, root: str | Path | None = None) -> Path | None:
    """A local file with the frame times saved at upload for a video row, or None when there is none."""
    try:
        return store(root).local_path(timeline_key(video.storage_path))
    except NotFound:
        return None
