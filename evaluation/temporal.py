"""Road-safety timing: how long after an object appears is it first detected, and on what
share of its frames. A late pedestrian detection matters even when AP looks good.

An object is a ground-truth track (class, track id); boxes without a track id are objects of
their own. "Detected" on a frame means matched there at the operating point (same class,
score >= threshold, IoU >= threshold, COCO greedy matching). Latency in seconds uses the
timestamps given per frame, never an assumed frame rate. Undefined values are None.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .boxes import Boxes, at_threshold
from .operating import match_at_iou


@dataclass(frozen=True)
class ObjectTemporal:
    class_id: int
    track_id: int
    first_frame: int
    first_detected_frame: int | None
    latency_frames: int | None
    latency_seconds: float | None
    frames_present: int
    frames_detected: int
    detected_share: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClassTemporalSummary:
    class_id: int
    objects: int
    missed_objects: int
    median_latency_frames: float | None
    p90_latency_frames: float | None
    median_latency_seconds: float | None
    p90_latency_seconds: float | None
    mean_detected_share: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TemporalResult:
    objects: list[ObjectTemporal]
    per_class: dict[int, ClassTemporalSummary]

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [o.to_dict() for o in self.objects],
                "per_class": {str(k): v.to_dict() for k, v in self.per_class.items()}}


def _pct(values: list[float], q: float) -> float | None:
    return None if not values else float(np.percentile(np.asarray(values, dtype=float), q))


def object_runs(gt: Boxes, dt: Boxes, score_threshold: float, iou_threshold: float) -> tuple[np.ndarray, ...]:
    """Ground-truth boxes grouped into objects: (frame, class, track id, detected, box height,
    ``area`` column, starts, ends), rows sorted by class, track and frame, object ``i`` being rows
    ``starts[i]:ends[i]``. Ignored ground truth is left out; untracked boxes are objects of their own."""
    dt = dt.select(at_threshold(dt.confidence, score_threshold))  # unscored detections are never thresholded away
    m = match_at_iou(gt, dt, iou_threshold, np.union1d(gt.frame_index, dt.frame_index), None)
    g = m.prep.gt
    hit = np.zeros(len(g), dtype=bool)
    hit[m.match[m.match >= 0]] = True
    keep = ~g.ignore
    frame, cls, tid, hit = g.frame_index[keep], g.class_id[keep], g.tracker_id[keep], hit[keep]
    height, area = g.xyxy[keep, 3] - g.xyxy[keep, 1], g.area[keep]
    # Untracked boxes get unique negative ids so each is an object of its own.
    tid = np.where(tid >= 0, tid, -1 - np.arange(tid.size))
    order = np.lexsort((frame, tid, cls))
    frame, cls, tid, hit, height, area = (a[order] for a in (frame, cls, tid, hit, height, area))
    new = np.ones(frame.size, dtype=bool)
    new[1:] = (cls[1:] != cls[:-1]) | (tid[1:] != tid[:-1])
    starts = np.nonzero(new)[0]
    ends = np.append(starts[1:], frame.size) if frame.size else starts
    return frame, cls, tid, hit, height, area, starts, ends


def evaluate_temporal(
    gt: Boxes,
    dt: Boxes,
    timestamps: Mapping[int, float] | None = None,
    score_threshold: float = 0.0,
    iou_threshold: float = 0.5,
) -> TemporalResult:
    """Per-object latency and coverage, then per-class median / p90 / missed counts.

    Percentiles use numpy's linear interpolation. Ignored and crowd ground truth is left out.
    """
    frame, cls, tid, hit, _, _, starts, ends = object_runs(gt, dt, score_threshold, iou_threshold)
    objects: list[ObjectTemporal] = []
    if frame.size:
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            f, h = frame[s:e], hit[s:e]
            present = int(np.unique(f).size)
            detected = int(np.unique(f[h]).size)
            first = int(f[0])
            first_hit = int(f[h][0]) if h.any() else None
            lat_s = None
            if first_hit is not None and timestamps is not None:
                lat_s = float(timestamps[first_hit]) - float(timestamps[first])
            objects.append(ObjectTemporal(
                int(cls[s]), int(tid[s]) if tid[s] >= 0 else -1, first, first_hit,
                None if first_hit is None else first_hit - first, lat_s, present, detected, detected / present))
    per_class: dict[int, ClassTemporalSummary] = {}
    for c in sorted({o.class_id for o in objects}):
        mine = [o for o in objects if o.class_id == c]
        lf = [float(o.latency_frames) for o in mine if o.latency_frames is not None]
        ls = [o.latency_seconds for o in mine if o.latency_seconds is not None]
        per_class[c] = ClassTemporalSummary(
            c, len(mine), sum(o.first_detected_frame is None for o in mine), _pct(lf, 50), _pct(lf, 90),
            _pct(ls, 50), _pct(ls, 90), float(np.mean([o.detected_share for o in mine])))
    return TemporalResult(objects, per_class)
