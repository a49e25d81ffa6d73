"""The one place where an uploaded model's bytes are written and read.

Every reader and writer of model files goes through :func:`put_model_file` and
:func:`open_model_file` (and :func:`delete_model_file`), which keep the bytes in the storage
module's store (the local directory or the object store), so a GPU worker on another host reads
the model it was given. A file is used only when its sha256 is the one recorded at upload: a
model that changed in storage or in a worker's cache is refused, never run.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from storage import NotFound, store
from storage.cache import DigestMismatch


class ModelFileError(RuntimeError):
    """The stored model file is missing or is not the file that was uploaded."""


def file_digest(path: Path) -> tuple[str, int]:
    """``(sha256, size)`` of a file, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest(), os.fstat(fh.fileno()).st_size


def model_key(model_id: object, sha256: str) -> str:
    """The stored name of one model version's file (relative to the storage root)."""
    return f"models/{model_id}/{sha256}"


def put_model_file(source: str | Path, model_id: object, storage_dir: str | Path, *, move: bool = False
                   ) -> tuple[str, str, int]:
    """Store ``source`` as a model version's file; ``(key, sha256, size)``.

    ``move`` takes the file (an upload already in the storage directory is renamed, not
    copied). The file is complete under a temporary name before it gets its final one.
    """
    source = Path(source)
    sha256, size = file_digest(source)
    key = model_key(model_id, sha256)
    store(storage_dir).put_file(key, source, move=move)  # complete before it is visible under its key
    return key, sha256, size


#: Files whose digest was checked in this process, by (path, size, mtime): loading a model again
#: (a new job in the same worker) does not read it twice.
_verified: dict[tuple[str, int, int], str] = {}


def open_model_file(key: str, sha256: str, storage_dir: str | Path) -> Path:
    """A local path to the stored file of ``key``, after checking it still has digest ``sha256``."""
    try:
        path = store(storage_dir).local_path(key, sha256)
        st = path.stat()
    except (NotFound, FileNotFoundError):
        raise ModelFileError(f"the model file {key} is missing from storage") from None
    except DigestMismatch as exc:
        raise ModelFileError(f"the model file {key} is not the uploaded one ({exc}): refused") from None
    stamp = (str(path), st.st_size, st.st_mtime_ns)
    if _verified.get(stamp) != sha256:
        found, _ = file_digest(path)
        if found != sha256:
            raise ModelFileError(f"the model file {key} has sha256 {found}, not the uploaded {sha256}: refused")
        _verified[stamp] = sha256
    return path


def delete_model_file(key: str, storage_dir: str | Path) -> None:
    store(storage_dir).delete_prefix(key.rsplit("/", 1)[0] + "/")
