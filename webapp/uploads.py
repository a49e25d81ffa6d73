"""Uploads stream straight into the storage directory under generated names.

Werkzeug normally spools file parts into anonymous temporary files; here each part is
written to ``STORAGE_DIR/tmp`` instead, so accepting a video is a rename rather than a
copy, and whatever a failed request leaves there is removed at teardown.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import IO
from urllib.parse import quote

from flask import Request, current_app, g
from werkzeug.http import dump_options_header

CHUNK = 1024 * 1024


class StreamingUploadRequest(Request):
    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
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


#: Control, format (bidi overrides and isolates, zero-width marks), line/paragraph separators, surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_UNSAFE_IN_NAMES = frozenset('/\\:*?"<>|')


def display_name(name: str) -> str:
    """A stored name as it may be shown: without control or bidi characters, which could hide or
    reorder what a reader sees (``evil\u202egpj.exe``)."""
    return "".join(c for c in name if unicodedata.category(c) not in _HIDDEN)


def file_name(name: str, default: str, ext: str = "", limit: int = 80) -> str:
    """A name for a downloaded file: what ``display_name`` keeps, without path characters."""
    clean = "".join("_" if c in _UNSAFE_IN_NAMES else c for c in display_name(name)).strip().strip(".")
    return f"{clean[:limit].strip() or default}{ext}"


def attachment(name: str, default: str, ext: str = "") -> str:
    """A ``Content-Disposition: attachment`` value; names beyond ASCII travel as ``filename*`` (RFC 6266)."""
    download = file_name(name, default, ext)
    options = {"filename": download}
    try:
        download.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", download).encode("ascii", "ignore").decode("ascii").strip()
        options = {"filename": simple or f"{default}{ext}",
                   "filename*": "UTF-8''" + quote(download, safe="!#$&+-.^_`|~")}
    return dump_options_header("attachment", options)
