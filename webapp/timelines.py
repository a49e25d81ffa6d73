"""Each video's frame timestamps, saved at upload next to the file and loaded on demand."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from flask import current_app

from keyframes import Timeline
from models import Video
from storage import timeline_file

_cache: OrderedDict[tuple[str, int], Timeline] = OrderedDict()
_lock = threading.Lock()
CACHE_SIZE = 64


def save_timeline(path: Path, timestamps: np.ndarray) -> None:
    """Written under a temporary name and renamed, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(timestamps, dtype=np.float64))
    os.replace(tmp, path)


def video_timeline(video: Video) -> Timeline:
    """The video's frame times; frames past the scanned part (very long videos) at its rate."""
    key = (str(video.id), video.frame_count)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    timeline = Timeline.from_file(timeline_file(video, current_app.config["STORAGE_DIR"]),
                                  video.frame_count, video.fps)
    with _lock:
        _cache[key] = timeline
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return timeline
