"""Each video's frame timestamps, saved at upload next to the file and loaded on demand."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from flask import current_app

import bindings
from keyframes import Timeline
from models import Video


def save_timeline(path: Path, timestamps: np.ndarray) -> None:
    """Written under a temporary name and renamed, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(timestamps, dtype=np.float64))
    os.replace(tmp, path)


def video_timeline(video: Video) -> Timeline:
    """The video's frame times (see :func:`bindings.video_timeline`), from this app's storage."""
    return bindings.video_timeline(video, current_app.config["STORAGE_DIR"])
