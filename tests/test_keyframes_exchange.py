"""Per-frame records from stored tracks and back (keyframes.exchange), without a database."""
from __future__ import annotations

import itertools

import numpy as np

from formats import Annotation
from keyframes import Keyframe, Timeline, Track
from keyframes.exchange import (
    KeyframeRead,
    TrackOpened,
    TrackSpan,
    number_tracks,
    records_by_track,
    track_events,
    tracks_from_records,
)

# a variable frame rate: the gaps between frames are not all the same
TIMELINE = Timeline(np.cumsum(np.r_[0.0, np.tile([0.04, 0.03, 0.05], 10)])[:30])


def _t(frame: int) -> float:
    return float(TIMELINE.time_of(frame))


def _box(frame: int, dx: float = 0.0) -> tuple[float, float, float, float]:
    return (10.0 + 2.5 * frame + dx, 20.0 + frame, 60.0 + 2.5 * frame + dx, 90.5 + frame)


def _keys(*keyframes: tuple) -> tuple[Keyframe, ...]:
    return tuple(Keyframe.stored(f, box, extras) for f, box, extras in keyframes)


def _stored() -> list[Track]:
    """Tracks in the form an import stores them: a keyframe on every visible frame."""
    walking = Track(3, "pedestrian", _t(2), _t(12), _box(2), video_id="v1", confidence=0.75, keyframes=_keys(
        *[(f, _box(f), {}) for f in (2, 3)],
        (4, _box(4), {"keyframe": False}),
        (5, _box(5), {"occluded": True, "visibility": 0.5, "attributes": {"pose": "side"}}),
        (6, _box(5), {"outside": True}),  # a gap of frames 6-9: the last box, marked outside
        *[(f, _box(f), {}) for f in (10, 11)],
        (12, _box(12), {"keyframe": False}),
    ))
    riding = Track(7, "cyclist", _t(0), _t(4), _box(0, 300.0), video_id="v1",
                   keyframes=_keys(*[(f, _box(f, 300.0), {}) for f in range(5)]))
    single = Track(8, "scooter", _t(29), _t(29), _box(29, 600.0), video_id="v1",
                   keyframes=_keys((29, _box(29, 600.0), {})))
    return [walking, riding, single]


def test_records_by_track_then_back_gives_the_tracks():
    records = list(records_by_track(_stored(), TIMELINE))
    assert any(r.outside for r in records)  # the gap and the track ends travel as outside records
    assert [r.keyframe for r in records if r.track_id == 3 and not r.outside].count(False) == 2
    back = tracks_from_records(records, TIMELINE)
    assert back == _stored()
    # Keyframes compare without their extras: those must come back too.
    assert [[(k.frame_number, dict(k.extras)) for k in t.keyframes] for t in back] == [
        [(k.frame_number, dict(k.extras)) for k in t.keyframes] for t in _stored()]


def test_tracks_back_to_records_give_the_same_records():
    records = list(records_by_track(_stored(), TIMELINE))
    assert list(records_by_track(tracks_from_records(records, TIMELINE), TIMELINE)) == records


def test_a_box_without_a_track_id_is_a_track_of_its_own_numbered_after_the_ids():
    records = [Annotation(4, "pedestrian", (1.0, 2.0, 3.0, 4.0)),
               Annotation(4, "cyclist", (5.0, 6.0, 7.0, 8.0), track_id=5),
               Annotation(4, "pedestrian", (1.0, 2.0, 3.0, 4.0), confidence=0.5),
               Annotation(5, "cyclist", (5.0, 6.0, 7.0, 9.0), track_id=5)]
    tracks = tracks_from_records(records, TIMELINE)
    assert [(t.track_id, t.label, t.start, t.end, t.confidence) for t in tracks] == [
        (6, "pedestrian", _t(4), _t(4), 1.0), (5, "cyclist", _t(4), _t(5), 1.0), (7, "pedestrian", _t(4), _t(4), 0.5)]
    assert [len(t.keyframes) for t in tracks] == [1, 2, 1]


def test_absence_before_the_first_box_or_after_the_last_is_not_stored():
    records = [Annotation(1, "pedestrian", (1.0, 2.0, 3.0, 4.0), track_id=1, outside=True),
               Annotation(2, "pedestrian", (1.0, 2.0, 3.0, 4.0), track_id=1),
               Annotation(3, "pedestrian", (2.0, 2.0, 4.0, 4.0), track_id=1),
               Annotation(4, "pedestrian", (2.0, 2.0, 4.0, 4.0), track_id=1, outside=True)]
    (track,) = tracks_from_records(records, TIMELINE)
    assert [k.frame_number for k in track.keyframes] == [2, 3]
    assert (track.start, track.end) == (_t(2), _t(3))


def test_events_stream_without_state_for_untracked_boxes():
    endless = (Annotation(i % 30, "pedestrian", (1.0, 2.0, 3.0, 4.0)) for i in itertools.count())
    events = list(itertools.islice(track_events(endless), 6))
    assert [type(e) for e in events] == [TrackOpened, KeyframeRead] * 3
    assert [e.number for e in events] == [0, 0, 1, 1, 2, 2]
    assert all(e.final for e in events if isinstance(e, KeyframeRead))


def test_a_track_of_several_frames_ends_with_its_span():
    records = [Annotation(f, "pedestrian", (1.0, 2.0, 3.0, 4.0), track_id=2) for f in (6, 3, 9)]
    events = list(track_events(records))
    assert events[-1] == TrackSpan(0, 3, 9)
    assert not any(e.final for e in events if isinstance(e, KeyframeRead))


def test_tracks_keep_their_source_ids_where_free_and_the_rest_follow_the_largest():
    used: set[int] = set()
    assert number_tracks([4, None, 2, 4, True, -1, "7"], used) == [4, 5, 2, 6, 7, 8, 9]
    assert number_tracks([2, 10, None], used) == [11, 10, 12]  # a second video of the same file
    assert used == {2, *range(4, 13)}
