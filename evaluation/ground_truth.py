"""Ground truth for a test session from annotations: keyframed tracks, one box per frame.

Each annotation is a track over its time span; its box on every evaluated frame comes from
its keyframes, interpolated linearly in time on the video's real timeline (the same rule as
the annotation API's ``/boxes``); frames in a gap (after an outside keyframe) have no box.
Frames are matched by frame number; rejected annotations are excluded, pending ones only when
asked for.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keyframes import Timeline, Track, interpolate, visible

from .boxes import Boxes


def ground_truth_boxes(tracks: Sequence[Track], timeline: Timeline, frames: Sequence[int] | None = None,
                       include_pending: bool = False) -> Boxes:
    """Boxes of every usable track on every evaluated frame inside its span (all frames by default)."""
    wanted = None if frames is None else np.unique(np.asarray(frames, dtype=np.int64))
    columns: dict[str, list[np.ndarray]] = {"frame": [], "xyxy": [], "class_id": [], "track_id": []}
    allowed = {"validated", "pending"} if include_pending else {"validated"}
    for track in tracks:
        if track.validation_status not in allowed or not track.has_box:
            continue
        span = track.frames(timeline)
        if wanted is not None:
            span = span[np.isin(span, wanted)]
        if span.size == 0:
            continue
        boxes = interpolate(track.keyframes, span, timeline, track.box)
        shown = visible(boxes)  # frames where the object is outside the view are no ground truth
        span, boxes = span[shown], boxes[shown]
        columns["frame"].append(span)
        columns["xyxy"].append(boxes)
        columns["class_id"].append(np.full(span.size, track.class_id))
        columns["track_id"].append(np.full(span.size, track.track_id))
    if not columns["frame"]:
        return Boxes.from_arrays(np.zeros(0), np.zeros(0), xyxy=np.zeros((0, 4)), tracker_id=np.zeros(0))
    return Boxes.from_arrays(np.concatenate(columns["frame"]), np.concatenate(columns["class_id"]),
                             xyxy=np.concatenate(columns["xyxy"]), tracker_id=np.concatenate(columns["track_id"]))
