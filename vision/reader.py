"""Video frames with their container presentation time.

Timestamps are read from the container after every grab, never derived from a nominal
frame rate, so variable-frame-rate files keep their real timing.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


class VideoDecodeError(RuntimeError):
    """Decoding stopped before the end the container announced; ``frame_number`` is where."""

    def __init__(self, path: str, frame_number: int, expected: int | None, reason: str) -> None:
        self.path = path
        self.frame_number = frame_number
        self.expected = expected
        of = f" of {expected}" if expected else ""
        super().__init__(f"{path}: decoding failed at frame {frame_number}{of}: {reason}")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8, HxWx3
    frame_number: int  # 0-based index in the file
    timestamp: float  # seconds, container presentation time

    def jpeg(self, width: int | None = None, quality: int = 85) -> bytes | None:
        """The image as JPEG bytes, scaled to ``width`` (height follows); None if encoding fails."""
        image = self.image
        h, w = image.shape[:2]
        if width is not None and width != w:
            image = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes() if ok else None


def read_frame(path: str | Path, frame_number: int) -> Frame | None:
    """One frame by number, seeking to it (for viewers, not for a pass over the video: seeking is
    only as exact as the container's index); None when the file has no such frame."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            return None
        if frame_number:
            cap.set(cv2.CAP_PROP_POS_FRAMES, frame_number)
        ok, image = cap.read()
        timestamp = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
    finally:
        cap.release()
    if not ok or image is None:
        return None
    return Frame(image=image, frame_number=frame_number, timestamp=timestamp)


class VideoReader:
    """Iterate frames ``start <= n < end`` every ``stride``; raise on a premature end.

    The container's frame count is used to tell a normal end from a truncated file when it
    is plausible (positive); skipped frames are grabbed, not decoded into images, which is
    both cheaper and keeps timestamps exact.
    """

    def __init__(self, path: str | Path, stride: int = 1, start: int = 0, end: int | None = None) -> None:
        if stride < 1:
            raise ValueError("stride must be >= 1")
        if start < 0 or (end is not None and end < start):
            raise ValueError("invalid frame range")
        self.path = str(path)
        self.stride, self.start, self.end = stride, start, end
        cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                raise VideoDecodeError(self.path, 0, None, "the file cannot be opened as a video")
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.frame_count: int | None = count if count > 0 else None
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            cap.release()

    @property
    def total(self) -> int | None:
        """How many frames iteration should yield, for progress; None when unknown."""
        last = self.end
        if self.frame_count is not None:
            last = self.frame_count if last is None else min(last, self.frame_count)
        if last is None:
            return None
        return max(0, (last - self.start + self.stride - 1) // self.stride)

    def __iter__(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise VideoDecodeError(self.path, 0, self.frame_count, "the file cannot be opened as a video")
        try:
            n = 0
            while self.end is None or n < self.end:
                wanted = n >= self.start and (n - self.start) % self.stride == 0
                if not cap.grab():
                    self._check_end(n)
                    return
                ts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if wanted:
                    ok, image = cap.retrieve()
                    if not ok or image is None:
                        raise VideoDecodeError(self.path, n, self.frame_count, "frame could not be decoded")
                    yield Frame(image=image, frame_number=n, timestamp=ts)
                n += 1
        finally:
            cap.release()

    def _check_end(self, n: int) -> None:
        if n == 0:
            raise VideoDecodeError(self.path, 0, self.frame_count, "no decodable frame")
        if self.frame_count is not None and n < self.frame_count:
            raise VideoDecodeError(
                self.path, n, self.frame_count, "the stream ended early (truncated or corrupt file)"
            )
