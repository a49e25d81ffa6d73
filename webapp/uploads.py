"""Uploads stream straight into the storage directory under generated names.

Werkzeug normally spools file parts into anonymous temporary files; here each part is
written to ``STORAGE_DIR/tmp`` instead, so accepting a video is a rename rather than a
copy, and whatever a failed request leaves there is removed at teardown.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from flask import Request, current_app, g

CHUNK = 1024 * 1024


class StreamingUploadRequest(Request):
    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        tmp_dir = Path(current_app.config["STORAGE_DIR"]) / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="upload-", suffix=".part", delete=False)
        g.setdefault("upload_paths", []).append(handle.name)
        return handle


def discard_uploads(_exc: BaseException | None = None) -> None:
    """Remove every part this request wrote and did not keep."""
    for path in g.pop("upload_paths", []):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def sha256_of(path: str | Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
