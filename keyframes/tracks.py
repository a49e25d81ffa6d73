"""Boxes between keyframes, interpolated linearly in time."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .timeline import Timeline


@dataclass(frozen=True)
class Keyframe:
    frame_number: int
    box: tuple[float, float, float, float]


def interpolate(keyframes: Sequence[Keyframe], frames: np.ndarray, timeline: Timeline,
                default_box: Sequence[float] | None = None) -> np.ndarray:
    """The box on each of ``frames`` (``[N, 4]``).

    Between two keyframes the box moves linearly in *time* (not frame index), so a
    variable-frame-rate video moves at its real speed; before the first and after the last
    keyframe it holds still. Without keyframes every frame gets ``default_box``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if not keyframes:
        if default_box is None:
            raise ValueError("no keyframes and no default box")
        return np.tile(np.asarray(default_box, dtype=np.float64), (frames.size, 1))
    ordered = sorted(keyframes, key=lambda k: k.frame_number)
    key_times = timeline.time_of([k.frame_number for k in ordered]).astype(np.float64)
    key_boxes = np.asarray([k.box for k in ordered], dtype=np.float64)
    times = timeline.time_of(frames).astype(np.float64)
    # np.interp holds the end values outside the keyframe range, as wanted.
    return np.stack([np.interp(times, key_times, key_boxes[:, c]) for c in range(4)], axis=1)
