"""Keyframes for a track seen box by box (a tracker's output): few keyframes, same boxes.

A pre-annotation made from a model's track should not put a keyframe on every frame: a person
correcting it edits a handful of keyframes, and the frames between them show the interpolated
box. :func:`track_keyframes` keeps a frame as a keyframe only where linear interpolation in time
between the kept neighbours would move the box by more than the tolerance (Douglas-Peucker on
boxes: split where the guess is furthest off until every box keeps the IoU asked for), and marks
the track outside across gaps where it was not seen.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .boxes import iou
from .tracks import Keyframe


def _kept(times: np.ndarray, boxes: np.ndarray, min_iou: float, max_seconds: float | None) -> list[int]:
    """Indices to keep so that interpolating between them gives every box with IoU >= ``min_iou``,
    and no two kept ones are more than ``max_seconds`` apart (when given)."""
    n = len(times)
    if n <= 2:
        return list(range(n))
    keep = {0, n - 1}
    stack = [(0, n - 1)]
    while stack:
        lo, hi = stack.pop()
        if hi - lo < 2:
            continue
        inner = np.arange(lo + 1, hi)
        span = times[hi] - times[lo]
        w = (times[inner] - times[lo]) / span if span > 0 else np.zeros(inner.size)
        guess = boxes[lo] + w[:, None] * (boxes[hi] - boxes[lo])
        # split where the guess is furthest off (IoU is 0 for every box that misses: no order)
        worst = int(np.argmax(np.abs(guess - boxes[inner]).max(axis=1)))
        if iou(guess, boxes[inner]).min() < min_iou:
            mid = int(inner[worst])
        elif max_seconds is not None and span > max_seconds:  # close enough, but too far apart to review
            mid = int(inner[np.argmin(np.abs(times[inner] - (times[lo] + span / 2)))])
        else:
            mid = None
        if mid is not None:
            keep.add(mid)
            stack += [(lo, mid), (mid, hi)]
    return sorted(keep)


def track_keyframes(frames: Sequence[int], times: Sequence[float], boxes: np.ndarray, min_iou: float = 0.9,
                    max_gap: int = 1, next_frames: Sequence[int] | None = None,
                    max_seconds: float | None = None) -> list[Keyframe]:
    """Keyframes reproducing a track's boxes within ``min_iou`` when interpolated in time.

    ``frames`` (ascending, one box each) are where the track was seen, ``times`` their
    timestamps. Where consecutive sightings are more than ``max_gap`` apart, the track is marked
    outside from the frame after the last sighting (``next_frames[i]``, the frame following
    ``frames[i]`` among those the model ran on, when given; else ``frames[i] + 1``) until it is
    seen again, so the frames it was not detected on are not claimed as ground truth.
    ``max_seconds`` bounds the time between keyframes (the consistency checks warn about longer
    gaps, which a reviewer cannot judge by eye).
    """
    frames = np.asarray(frames, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if frames.size == 0:
        return []
    breaks = np.nonzero(np.diff(frames) > max_gap)[0]
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks + 1, [frames.size]])
    out: list[Keyframe] = []
    for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        for i in _kept(times[a:b], boxes[a:b], min_iou, max_seconds):
            out.append(Keyframe(int(frames[a + i]), tuple(float(v) for v in boxes[a + i])))
        if k < len(starts) - 1:  # a gap follows: outside from the next frame the model looked at
            last = b - 1
            after = int(next_frames[last]) if next_frames is not None else int(frames[last]) + 1
            if after < int(frames[b]):
                out.append(Keyframe(after, tuple(float(v) for v in boxes[last]), outside=True))
    return out
