"""Boxes between keyframes, interpolated linearly in time."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .timeline import Timeline


@dataclass(frozen=True)
class Keyframe:
    """A box at a frame; ``outside`` marks the frame where the object leaves the view.

    An outside keyframe starts a gap: the track has no box from that frame until its next
    visible keyframe (a track that reappears stays one track). Its ``box`` is not used.
    """

    frame_number: int
    box: tuple[float, float, float, float]
    outside: bool = False
    #: What the stored keyframe holds beside its box (``keyframe``, ``occluded``, ``visibility``,
    #: ``attributes``...), kept so that an export writes back what an import read.
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def stored(cls, frame_number: int, box: Sequence[float], extras: Mapping[str, Any] | None = None) -> Keyframe:
        """A keyframe as stored: its box and the rest of its data (``outside`` among them)."""
        extras = dict(extras or {})
        return cls(int(frame_number), tuple(float(c) for c in box), bool(extras.get("outside")), extras)


@dataclass(frozen=True)
class Track:
    """One annotation as every engine sees it: a label over a time span whose box on each frame
    comes from its keyframes (or its static ``box`` when it has none).

    ``track_id`` is the number the consumer gives it (an export's track id, an evaluation's
    index); ``annotation_id`` is the stored annotation it came from; ``class_id`` is set where a
    class index applies (evaluation); ``data`` is the annotation's own extra data.
    """

    track_id: int
    label: str
    start: float
    end: float
    box: Sequence[float] | None = None
    keyframes: Sequence[Keyframe] = ()
    class_id: int = -1
    confidence: float = 1.0
    validation_status: str = "validated"
    annotation_id: str | None = None
    video_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def has_box(self) -> bool:
        """False for a purely temporal annotation (no box, no keyframes)."""
        return self.box is not None or bool(self.keyframes)

    def frames(self, timeline: Timeline) -> np.ndarray:
        """The video's frames inside this track's time span."""
        return timeline.frames_between(self.start, self.end)


def interpolate(keyframes: Sequence[Keyframe], frames: np.ndarray, timeline: Timeline,
                default_box: Sequence[float] | None = None) -> np.ndarray:
    """The box on each of ``frames`` (``[N, 4]``).

    Between two keyframes the box moves linearly in *time* (not frame index), so a
    variable-frame-rate video moves at its real speed; before the first and after the last
    keyframe it holds still. Without keyframes every frame gets ``default_box``. Frames in a gap
    (from an outside keyframe to the next visible one) are NaN: callers drop them.
    """
    frames = np.asarray(frames, dtype=np.int64)
    visible = [k for k in keyframes if not k.outside]
    if not visible:
        if default_box is None:
            raise ValueError("no keyframes and no default box")
        boxes = np.tile(np.asarray(default_box, dtype=np.float64), (frames.size, 1))
        return _gaps(boxes, keyframes, frames)
    ordered = sorted(visible, key=lambda k: k.frame_number)
    key_times = timeline.time_of([k.frame_number for k in ordered]).astype(np.float64)
    key_boxes = np.asarray([k.box for k in ordered], dtype=np.float64)
    times = timeline.time_of(frames).astype(np.float64)
    # np.interp holds the end values outside the keyframe range, as wanted.
    boxes = np.stack([np.interp(times, key_times, key_boxes[:, c]) for c in range(4)], axis=1)
    return _gaps(boxes, keyframes, frames)


def _gaps(boxes: np.ndarray, keyframes: Sequence[Keyframe], frames: np.ndarray) -> np.ndarray:
    """NaN on the frames whose latest keyframe (at or before them) is an outside one."""
    if not any(k.outside for k in keyframes):
        return boxes
    ordered = sorted(keyframes, key=lambda k: (k.frame_number, not k.outside))
    key_frames = np.asarray([k.frame_number for k in ordered], dtype=np.int64)
    outside = np.asarray([k.outside for k in ordered], dtype=bool)
    latest = np.searchsorted(key_frames, frames, side="right") - 1
    hidden = (latest >= 0) & outside[np.maximum(latest, 0)]
    boxes[hidden] = np.nan
    return boxes


def visible(boxes: np.ndarray) -> np.ndarray:
    """Which rows of :func:`interpolate`'s result hold a box (not in a gap)."""
    return ~np.isnan(boxes[:, 0])
