"""The neutral records that flow between readers, writers and the rest of the platform.

Conventions, the same in every format module:

* Frame numbers are the target video's own, 0-based; each format's numbering (MOT 1-based,
  CVAT ``start_frame`` + ``frame_filter`` step, COCO frame fields or file names) is converted
  at the edge so that the same box read from two formats lands on the same frame.
* Boxes are ``(x1, y1, x2, y2)`` in pixels of the full-resolution frame, continuous
  coordinates with the origin at the top-left corner of the top-left pixel; width is
  ``x2 - x1`` (no ``+ 1``). Boxes partly outside the frame are kept exactly as given.
* ``timestamp`` is seconds of presentation time when the source says so, else ``None``: it is
  never derived from the frame number by assuming a constant frame rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

BoxXYXY = tuple[float, float, float, float]
Kind = Literal["annotations", "results"]


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """The video a file is imported into or exported from.

    Readers use it to refuse files whose declared frame size or length does not fit, and
    YOLO needs it to turn normalized coordinates into pixels.
    """

    width: int
    height: int
    frame_count: int | None = None
    fps: float | None = None
    name: str = "video"
    video_id: str | None = None


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """One evaluated frame; writers list these so that frames without objects still count."""

    frame_number: int
    timestamp: float | None = None
    video_id: str | None = None
    width: int | None = None
    height: int | None = None
    file_name: str | None = None


@dataclass(slots=True)
class Annotation:
    """One ground-truth box on one frame; a track is the set of annotations sharing ``track_id``.

    ``outside`` marks a frame where a track is known to be absent (CVAT keeps these to end a
    track); formats that cannot express absence skip such records on export.
    """

    frame_number: int
    label: str
    box: BoxXYXY
    track_id: int | None = None
    timestamp: float | None = None
    keyframe: bool = True
    outside: bool = False
    occluded: bool = False
    confidence: float = 1.0
    visibility: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    video_id: str | None = None


@dataclass(slots=True)
class Detection:
    """One model output box (a result), with its score."""

    frame_number: int
    label: str
    box: BoxXYXY
    score: float
    track_id: int | None = None
    timestamp: float | None = None
    video_id: str | None = None


Record = Annotation | Detection
