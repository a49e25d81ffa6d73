"""A video's frames and their presentation times."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def timeline_path(video_path: str | Path) -> Path:
    """Where a video's frame times are kept: next to the file, as ``<name>.timestamps.npy``."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.name + ".timestamps.npy")


@dataclass(frozen=True)
class Timeline:
    """Presentation time (seconds) of every frame, in frame order.

    Built from the timestamps read at upload, so variable-frame-rate videos map frames to
    times correctly; :meth:`constant` exists for videos known to be constant-rate.
    """

    timestamps: np.ndarray

    @classmethod
    def constant(cls, frame_count: int, fps: float) -> Timeline:
        return cls(np.arange(frame_count, dtype=np.float64) / fps)

    @classmethod
    def for_video(cls, video_path: str | Path, frame_count: int, fps: float) -> Timeline:
        """The frame times saved at upload next to ``video_path`` (see :func:`timeline_path`);
        frames past the scanned part (very long videos) follow at the video's rate."""
        return cls.from_file(timeline_path(video_path), frame_count, fps)

    @classmethod
    def from_file(cls, path: str | Path | None, frame_count: int, fps: float) -> Timeline:
        """The frame times saved in ``path`` (None or missing: none saved), completed at the video's rate."""
        stamps = np.load(path) if path is not None and Path(path).exists() else np.zeros(0)
        if stamps.size < frame_count:
            start = stamps[-1] + 1.0 / fps if stamps.size else 0.0
            stamps = np.concatenate([stamps, start + np.arange(frame_count - stamps.size) / fps])
        return cls(np.asarray(stamps[:frame_count], dtype=np.float64))

    @property
    def frame_count(self) -> int:
        return int(self.timestamps.size)

    def time_of(self, frames: np.ndarray | int) -> np.ndarray:
        return self.timestamps[np.asarray(frames)]

    def frames_between(self, start: float, end: float, eps: float = 1e-6) -> np.ndarray:
        """Frame numbers whose timestamp lies in ``[start, end]``."""
        lo = int(np.searchsorted(self.timestamps, start - eps, side="left"))
        hi = int(np.searchsorted(self.timestamps, end + eps, side="right"))
        return np.arange(lo, hi)

    def nearest_frame(self, timestamp: float) -> int:
        i = int(np.searchsorted(self.timestamps, timestamp))
        if i <= 0:
            return 0
        if i >= self.frame_count:
            return self.frame_count - 1
        return i if self.timestamps[i] - timestamp < timestamp - self.timestamps[i - 1] else i - 1

    def frame_interval(self, frame: int) -> float:
        """Time to the next frame (to the previous one for the last frame)."""
        if self.frame_count < 2:
            return 0.0
        if frame + 1 < self.frame_count:
            return float(self.timestamps[frame + 1] - self.timestamps[frame])
        return float(self.timestamps[frame] - self.timestamps[frame - 1])
