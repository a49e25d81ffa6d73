"""Consistency checks run before an annotation is accepted as validated ground truth."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .boxes import box_errors, iou
from .timeline import Timeline
from .tracks import Track, interpolate


@dataclass(frozen=True)
class CheckLimits:
    max_keyframe_gap_seconds: float = 2.0
    #: Centre displacement per second, in box diagonals, above which a move is implausible.
    max_speed_diagonals_per_second: float = 4.0
    duplicate_iou: float = 0.7


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # "error" blocks validation unless forced; "warning" is reported
    message: str
    frame_number: int | None = None
    other_annotation_id: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_track(track: Track, others: Sequence[Track], timeline: Timeline, width: int, height: int,
                duration: float, limits: CheckLimits = CheckLimits()) -> list[Finding]:
    findings: list[Finding] = []
    if track.start < 0 or track.end > duration + 1e-6 or track.end < track.start:
        findings.append(Finding("outside_video", "error",
                                f"time span {track.start:.3f}-{track.end:.3f} s is not within the video's "
                                f"0-{duration:.3f} s"))
    frames = timeline.frames_between(track.start, track.end)
    if frames.size == 0:
        findings.append(Finding("outside_video", "error", "the time span contains no frame of the video"))
        return findings
    if not track.has_box:
        return findings  # a purely temporal annotation has no box to check
    boxes = interpolate(track.keyframes, frames, timeline, track.box)
    for kf in track.keyframes:
        for err in box_errors(kf.box, width, height):
            findings.append(Finding("outside_video", "error", f"keyframe box: {err}", kf.frame_number))

    ordered = sorted(track.keyframes, key=lambda k: k.frame_number)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.outside or b.outside:  # the object is out of view in between: no gap or jump to judge
            continue
        ta, tb = (float(t) for t in timeline.time_of([a.frame_number, b.frame_number]))
        gap = tb - ta
        if gap > limits.max_keyframe_gap_seconds:
            findings.append(Finding("keyframe_gap", "warning",
                                    f"{gap:.2f} s between keyframes at frames {a.frame_number} and "
                                    f"{b.frame_number} (limit {limits.max_keyframe_gap_seconds:.2f} s)",
                                    a.frame_number))
        if gap > 0:
            ba, bb = np.asarray(a.box, float), np.asarray(b.box, float)
            shift = np.hypot(*((bb[:2] + bb[2:]) / 2 - (ba[:2] + ba[2:]) / 2))
            diagonal = max(np.hypot(ba[2] - ba[0], ba[3] - ba[1]), np.hypot(bb[2] - bb[0], bb[3] - bb[1]), 1e-9)
            speed = shift / diagonal / gap
            if speed > limits.max_speed_diagonals_per_second:
                findings.append(Finding("implausible_jump", "warning",
                                        f"box centre moves {shift:.0f} px in {gap:.2f} s between frames "
                                        f"{a.frame_number} and {b.frame_number} ({speed:.1f} box diagonals/s, "
                                        f"limit {limits.max_speed_diagonals_per_second:.1f})", b.frame_number))

    for other in others:
        if (other.annotation_id, other.track_id) == (track.annotation_id, track.track_id) \
                or other.label != track.label or not other.has_box:
            continue
        common = timeline.frames_between(max(track.start, other.start), min(track.end, other.end))
        if common.size == 0:
            continue
        mine = boxes[np.searchsorted(frames, common)]
        theirs = interpolate(other.keyframes, common, timeline, other.box)
        both = ~(np.isnan(mine[:, 0]) | np.isnan(theirs[:, 0]))  # frames where either is out of view do not count
        if not both.any():
            continue
        mine, theirs, common = mine[both], theirs[both], common[both]
        overlap = iou(mine, theirs)
        if float(np.median(overlap)) >= limits.duplicate_iou:
            findings.append(Finding("duplicate", "error",
                                    f"overlaps another '{other.label}' annotation on {common.size} frames "
                                    f"(median IoU {float(np.median(overlap)):.2f})", int(common[0]),
                                    other.annotation_id))
    return findings
