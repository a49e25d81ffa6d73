"""What a video file is: size, timing and codec, read from the container with OpenCV.

Timing comes from each frame's presentation time (``CAP_PROP_POS_MSEC``), never from an
assumed frame rate, so variable-frame-rate files are recognised as such.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np


class NotAVideo(ValueError):
    """The file could not be decoded as a video."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int
    width: int
    height: int
    duration: float
    codec: str
    variable_frame_rate: bool
    timestamps_scanned: int
    #: Presentation time of each scanned frame, seconds from the first frame.
    timestamps: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("timestamps")
        return data


def _fourcc(value: float) -> str:
    code = int(value)
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars.strip("\x00 ") if chars.isprintable() else ""


def probe_video(path: str | Path, max_scan_frames: int = 20000, vfr_tolerance: float = 0.1) -> VideoInfo:
    """Probe ``path``; raise :class:`NotAVideo` for anything OpenCV cannot decode as video.

    Up to ``max_scan_frames`` frames are grabbed to read their timestamps: this gives the
    exact frame count and duration of most uploads and detects variable frame rate. Past
    that, the container's own counts are used.
    """
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise NotAVideo("not a decodable video")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise NotAVideo("no decodable frame")
        height, width = frame.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        codec = _fourcc(cap.get(cv2.CAP_PROP_FOURCC))
        container_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        stamps = [cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0]
        while len(stamps) < max_scan_frames and cap.grab():
            stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        complete = len(stamps) < max_scan_frames
    finally:
        cap.release()

    if len(stamps) < 2:
        raise NotAVideo("a single image, not a video")
    ts = np.asarray(stamps, dtype=np.float64)
    deltas = np.diff(ts)
    positive = deltas[deltas > 0]
    step = float(np.median(positive)) if positive.size else (1.0 / fps if fps > 0 else 0.0)
    variable = bool(positive.size and np.any(np.abs(positive - step) > vfr_tolerance * step))
    if fps <= 0 and step > 0:
        fps = 1.0 / step
    if complete:
        frame_count = len(stamps)
        duration = float(ts[-1] - ts[0] + step)
    else:
        frame_count = max(container_count, len(stamps))
        duration = frame_count / fps if fps > 0 else float(ts[-1] - ts[0] + step)
    return VideoInfo(fps=round(fps, 6), frame_count=frame_count, width=int(width), height=int(height),
                     duration=round(duration, 6), codec=codec, variable_frame_rate=variable,
                     timestamps_scanned=len(stamps), timestamps=ts - ts[0])
