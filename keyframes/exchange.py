"""Keyframed annotations to per-frame records and back, for the interchange formats.

A stored annotation is a track over a time span whose box on every frame comes from its
keyframes (linear in time on the video's real timeline). Other tools hold one box per frame,
so an export emits every frame of the span, flagging the keyframes; an import rebuilds the
span from all frames of a track and keeps the flagged frames as keyframes. Exporting what an
import built gives the same boxes back, whatever the format could hold of the flags.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from formats.records import Annotation

from .timeline import Timeline
from .tracks import Keyframe, Track, interpolate, visible


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


def number_tracks(sources: Sequence[Any], used: set[int]) -> list[int]:
    """Track ids for tracks written out: each keeps its source id (the id it had in the file it
    was imported from) where that is a non-negative integer still free, the others get the next
    numbers after the largest one used. ``used`` holds the ids already given (several videos in
    one file) and grows with these."""
    numbers: list[int | None] = []
    for source in sources:
        if isinstance(source, int) and not isinstance(source, bool) and source >= 0 and source not in used:
            numbers.append(source)
            used.add(source)
        else:
            numbers.append(None)
    free = max(used, default=0) + 1
    out = []
    for number in numbers:
        if number is None:
            number, free = free, free + 1
            used.add(number)
        out.append(number)
    return out


# ----------------------------------------------------------------------------- and back


@dataclass(frozen=True, slots=True)
class TrackOpened:
    """A record starts a track: the first box of a track id, or a box without one (a track of its own).

    ``number`` counts the tracks of the stream from 0 in the order of their first box.
    """

    number: int
    record: Annotation


@dataclass(frozen=True, slots=True)
class KeyframeRead:
    """One stored keyframe of track ``number``: its box and extras (``outside`` for a gap marker,
    ``keyframe: false`` for a box the source interpolated, ``occluded``, ``visibility``,
    ``attributes``). ``final`` says the track gets no more keyframes (a box without a track id)."""

    number: int
    frame_number: int
    box: tuple[float, float, float, float]
    extras: dict[str, Any]
    final: bool = False


@dataclass(frozen=True, slots=True)
class TrackSpan:
    """After the last record: a track of several frames spans from its first to its last box."""

    number: int
    first: int
    last: int


TrackEvent = TrackOpened | KeyframeRead | TrackSpan


def keyframe_extras(rec: Any) -> dict[str, Any]:
    """What a visible box stores beside its coordinates (only what differs from the defaults)."""
    data: dict[str, Any] = {}
    if not getattr(rec, "keyframe", True):
        data["keyframe"] = False
    if getattr(rec, "occluded", False):
        data["occluded"] = True
    if getattr(rec, "visibility", None) is not None:
        data["visibility"] = rec.visibility
    if getattr(rec, "attributes", None):
        data["attributes"] = rec.attributes
    return data


class _Open:
    """A track id's state while its records stream in."""

    __slots__ = ("first", "gone", "last", "last_box", "number")

    def __init__(self, number: int, frame: int, box: Any) -> None:
        self.number, self.first, self.last, self.last_box = number, frame, frame, box
        self.gone: Annotation | None = None  # an outside record waiting for the track to reappear


def track_events(records: Iterable[Any]) -> Iterator[TrackEvent]:
    """The inverse of :func:`records_by_track`, streamed: per-frame records back into tracks.

    Records of one track id become one track spanning its visible frames; every box is kept
    as a keyframe (``keyframe: false`` where the source interpolated it), and an ``outside``
    record inside the span becomes a gap marker (the last box, flagged ``outside``), so the
    track has no box until it is visible again. A record without a track id is a track of its
    own. Memory holds one small state per track id, nothing per untracked record.
    """
    open_: dict[int, _Open] = {}
    count = 0
    for rec in records:
        if isinstance(rec, Annotation) and rec.outside:
            entry = open_.get(rec.track_id) if rec.track_id is not None else None
            if entry is not None and entry.gone is None:  # before a track's first box, absence says nothing
                entry.gone = rec  # a gap only if the track comes back: after its last box the span ends anyway
            continue
        box = tuple(rec.box)
        if rec.track_id is None:
            yield TrackOpened(count, rec)
            yield KeyframeRead(count, rec.frame_number, box, keyframe_extras(rec), True)
            count += 1
            continue
        entry = open_.get(rec.track_id)
        if entry is None:
            entry = open_[rec.track_id] = _Open(count, rec.frame_number, box)
            count += 1
            yield TrackOpened(entry.number, rec)
        else:
            gone = entry.gone
            if gone is not None and entry.last < gone.frame_number <= rec.frame_number:
                yield KeyframeRead(entry.number, gone.frame_number, entry.last_box, {"outside": True})
            entry.gone = None
            entry.first = min(entry.first, rec.frame_number)
            entry.last = max(entry.last, rec.frame_number)
            entry.last_box = box
        yield KeyframeRead(entry.number, rec.frame_number, box, keyframe_extras(rec))
    for entry in open_.values():
        if entry.first != entry.last:
            yield TrackSpan(entry.number, entry.first, entry.last)


def tracks_from_records(records: Iterable[Any], timeline: Timeline) -> list[Track]:
    """The tracks :func:`track_events` rebuilds, held in memory (what an import stores).

    A track keeps its source track id; a box without one gets the next number after the
    largest id in the stream, in order, as an export numbers them.
    """
    opened: list[Any] = []
    keys: list[list[Keyframe]] = []
    frames: list[tuple[int, int]] = []
    for event in track_events(records):
        if isinstance(event, TrackOpened):
            opened.append(event.record)
            keys.append([])
            frames.append((event.record.frame_number, event.record.frame_number))
        elif isinstance(event, KeyframeRead):
            keys[event.number].append(Keyframe.stored(event.frame_number, event.box, event.extras))
        else:
            frames[event.number] = (event.first, event.last)
    numbers = number_tracks([rec.track_id for rec in opened], set())
    return [Track(number, rec.label, float(timeline.time_of(first)), float(timeline.time_of(last)), tuple(rec.box),
                  tuple(kfs), confidence=float(getattr(rec, "confidence", 1.0)),
                  video_id=getattr(rec, "video_id", None))
            for rec, kfs, number, (first, last) in zip(opened, keys, numbers, frames, strict=True)]
