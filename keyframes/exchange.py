"""Keyframed annotations to per-frame records and back, for the interchange formats.

A stored annotation is a track over a time span whose box on every frame comes from its
keyframes (linear in time on the video's real timeline). Other tools hold one box per frame,
so an export emits every frame of the span, flagging the keyframes; an import rebuilds the
span from all frames of a track and keeps the flagged frames as keyframes. Exporting what an
import built gives the same boxes back, whatever the format could hold of the flags.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from formats.records import Annotation

from .timeline import Timeline
from .tracks import Track, interpolate, visible


def track_records(track: Track, timeline: Timeline, lo: int = 0, hi: int | None = None) -> list[Annotation]:
    """The track's boxes on the frames of its span inside ``[lo, hi)``.

    After the last frame of each visible segment comes an ``outside`` record on the next
    frame of the video (when the video has one), so that formats which mark absence (CVAT)
    end the track there; frames in a gap get no record.
    """
    whole = track.frames(timeline)
    if whole.size == 0 or not track.has_box:
        return []
    first = int(whole[0]) if not track.keyframes else None
    final = int(whole[-1])
    top = timeline.frame_count if hi is None else hi
    whole = whole[(whole >= lo - 1) & (whole <= top)]  # one frame either side: where segments end
    boxes = interpolate(track.keyframes, whole, timeline, track.box)
    shown = visible(boxes)
    extras = {k.frame_number: k.extras for k in track.keyframes if not k.outside}
    times = timeline.time_of(whole)
    out = []
    for i, frame in enumerate(whole.tolist()):
        if not shown[i]:
            continue
        last = frame == final or (i + 1 < whole.size and not shown[i + 1])
        box = (float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3]))
        if lo <= frame < top:
            extra = extras.get(frame)
            is_key = bool(extra.get("keyframe", True)) if extra is not None else frame == first
            extra = extra or {}
            out.append(Annotation(frame, track.label, box, track.track_id, float(times[i]), is_key, False,
                                  bool(extra.get("occluded", False)), track.confidence, extra.get("visibility"),
                                  dict(extra.get("attributes") or {}), track.video_id))
        end = frame + 1
        if last and lo <= end < top and (timeline.frame_count is None or end < timeline.frame_count):
            out.append(Annotation(end, track.label, box, track.track_id, float(timeline.time_of(end)), True, True,
                                  False, track.confidence, None, {}, track.video_id))
    return out


def records_by_track(tracks: Sequence[Track], timeline: Timeline) -> Iterator[Annotation]:
    """Every box, track after track (the order CVAT needs)."""
    for track in tracks:
        yield from track_records(track, timeline)


def records_by_frame(tracks: Sequence[Track], timeline: Timeline, window: int = 512) -> Iterator[Annotation]:
    """Every box ordered by frame, then track; memory bounded by one window of frames."""
    if not tracks:
        return
    spans = [(int(s[0]), int(s[-1])) if (s := t.frames(timeline)).size else (1, 0) for t in tracks]
    lo_all = min(a for a, b in spans if b >= a) if any(b >= a for a, b in spans) else 0
    hi_all = max(b for a, b in spans) + 2  # the outside record after a track's last frame
    for lo in range(lo_all, hi_all, window):
        hi = lo + window
        batch: list[Annotation] = []
        for track, (a, b) in zip(tracks, spans, strict=True):
            if b + 1 >= lo and a < hi:
                batch.extend(track_records(track, timeline, lo, hi))
        batch.sort(key=lambda r: (r.frame_number, r.track_id if r.track_id is not None else -1))
        yield from batch
