"""The keyframes engine: interpolation on a real (variable) timeline, and consistency checks."""
from __future__ import annotations

import numpy as np
import pytest

from keyframes import CheckLimits, Keyframe, Timeline, Track, box_errors, check_track, interpolate


def test_interpolation_is_linear_in_time_not_frame_index():
    # Variable frame rate: frames 0-2 at 0.1 s steps, then 0.4 s steps.
    timeline = Timeline(np.array([0.0, 0.1, 0.2, 0.6, 1.0]))
    keys = [Keyframe(0, (0, 0, 10, 10)), Keyframe(4, (100, 0, 110, 10))]
    boxes = interpolate(keys, np.arange(5), timeline)
    assert boxes[:, 0].tolist() == pytest.approx([0, 10, 20, 60, 100])
    assert boxes[:, 2].tolist() == pytest.approx([10, 20, 30, 70, 110])


def test_boxes_hold_outside_the_keyframes_and_default_without_them():
    timeline = Timeline.constant(10, 5.0)
    keys = [Keyframe(3, (1, 2, 3, 4)), Keyframe(5, (3, 4, 5, 6))]
    boxes = interpolate(keys, np.array([0, 3, 4, 5, 9]), timeline)
    assert boxes == pytest.approx(np.array([[1, 2, 3, 4], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [3, 4, 5, 6]]))
    assert interpolate([], np.arange(2), timeline, (5, 5, 6, 6)).tolist() == [[5, 5, 6, 6]] * 2
    with pytest.raises(ValueError):
        interpolate([], np.arange(2), timeline)


def test_frames_between_uses_real_times():
    timeline = Timeline(np.array([0.0, 0.1, 0.2, 0.6, 1.0]))
    assert timeline.frames_between(0.15, 0.6).tolist() == [2, 3]
    assert timeline.nearest_frame(0.45) == 3 and timeline.nearest_frame(5) == 4


@pytest.mark.parametrize(("box", "ok"), [
    ((0, 0, 10, 10), True), ((-5, -5, 1, 1), True), ((10, 10, 10, 20), False), ((5, 5, 2, 8), False),
    ((320, 0, 330, 10), False), ((0, 0, float("nan"), 1), False), ((0, 0, 1), False),
])
def test_box_errors(box, ok):
    assert (box_errors(box, 320, 240) == []) is ok


def test_checks_find_gaps_jumps_duplicates_and_outside():
    timeline = Timeline.constant(100, 10.0)
    track = Track(0, "pedestrian", 0.0, 5.0, None, (
        Keyframe(0, (0, 0, 10, 10)), Keyframe(30, (2, 0, 12, 10)),  # 3 s gap
        Keyframe(31, (200, 0, 210, 10)),  # 198 px in 0.1 s on a 14 px box
    ), annotation_id="a")
    twin = Track(0, "pedestrian", 0.0, 5.0, None, track.keyframes, annotation_id="b")
    other_class = Track(0, "cyclist", 0.0, 5.0, None, track.keyframes, annotation_id="c")
    found = {f.check: f for f in check_track(track, [twin, other_class], timeline, 320, 240, 10.0,
                                             CheckLimits(max_keyframe_gap_seconds=2.0))}
    assert set(found) == {"keyframe_gap", "implausible_jump", "duplicate"}
    assert found["duplicate"].other_annotation_id == "b" and found["duplicate"].severity == "error"
    assert found["keyframe_gap"].frame_number == 0 and found["implausible_jump"].frame_number == 31
    late = Track(0, "pedestrian", 8.0, 12.0, (0, 0, 5, 5), annotation_id="d")
    assert [f.check for f in check_track(late, [], timeline, 320, 240, 10.0)] == ["outside_video"]
    clean = Track(0, "pedestrian", 1.0, 2.0, (0, 0, 5, 5), (Keyframe(10, (0, 0, 5, 5)),
                                                            Keyframe(20, (5, 0, 10, 5))), annotation_id="e")
    assert check_track(clean, [], timeline, 320, 240, 10.0) == []


def test_checks_do_not_judge_across_a_gap():
    timeline = Timeline.constant(100, 10.0)
    gone = Track(0, "pedestrian", 0.0, 6.0, None, (
        Keyframe(0, (0, 0, 10, 10)), Keyframe(5, (0, 0, 10, 10), True), Keyframe(50, (500, 300, 510, 310))),
        annotation_id="a")
    # out of view from 0.5 s to 5 s, back far away: neither a keyframe gap nor an implausible jump
    assert check_track(gone, [gone], timeline, 640, 480, 10.0) == []
    stays = Track(0, "pedestrian", 0.0, 6.0, None, (Keyframe(0, (0, 0, 10, 10)),
                                                     Keyframe(50, (500, 300, 510, 310))), annotation_id="b")
    assert {f.check for f in check_track(stays, [stays], timeline, 640, 480, 10.0)} == {"keyframe_gap",
                                                                                        "implausible_jump"}


def test_track_keyframes_keep_only_the_turns_and_mark_gaps_outside():
    from keyframes import track_keyframes

    timeline = Timeline(np.arange(60) / 10.0)
    # straight line 0..19, a turn at 20, straight again to 29; then lost for 30..39; seen 40..49 standing still
    frames = np.r_[np.arange(30), np.arange(40, 50)]
    x = np.where(frames <= 20, 5.0 * frames, 100.0 - 5.0 * (frames - 20))
    x[frames >= 40] = 300.0
    boxes = np.stack([x, np.full(frames.size, 10.0), x + 40, np.full(frames.size, 90.0)], axis=1)
    keys = track_keyframes(frames, timeline.time_of(frames), boxes, min_iou=0.95, max_gap=1)
    visible_keys = [k.frame_number for k in keys if not k.outside]
    assert visible_keys == [0, 20, 29, 40, 49]
    assert [k.frame_number for k in keys if k.outside] == [30]
    back = interpolate(keys, frames, timeline)
    assert np.allclose(back, boxes)  # the kept keyframes reproduce every box exactly here
    lost = interpolate(keys, np.arange(30, 40), timeline)
    assert np.isnan(lost).all()


def test_track_keyframes_tolerance_bounds_every_box():
    from keyframes import iou, track_keyframes

    rng = np.random.default_rng(3)
    frames = np.arange(200)
    timeline = Timeline(frames / 25.0)
    x = np.cumsum(rng.normal(0, 2.0, frames.size)) + 300
    boxes = np.stack([x, x * 0 + 50, x + 60, x * 0 + 170], axis=1)
    keys = track_keyframes(frames, timeline.time_of(frames), boxes, min_iou=0.9)
    assert 2 < len(keys) < frames.size / 2
    back = interpolate(keys, frames, timeline)
    assert min(iou(a, b) for a, b in zip(back, boxes, strict=True)) >= 0.9 - 1e-9
    capped = track_keyframes(frames, timeline.time_of(frames), boxes, min_iou=0.9, max_seconds=1.0)
    visible_times = timeline.time_of([k.frame_number for k in capped])
    assert np.diff(visible_times).max() <= 1.0 + 1e-9 and len(capped) >= len(keys)
