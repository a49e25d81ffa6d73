"""The tracker on generated sequences with known tracks, at different frame rates."""
from __future__ import annotations

import numpy as np
import pytest

from vision.detections import Detections
from vision.tracker import ByteTracker, TrackerConfig, iou_matrix


def scene(t: float) -> dict[int, np.ndarray]:
    """Three people walking at constant speeds (pixels per second); the key is the true identity."""
    out = {}
    for who, (x0, y0, vx, vy) in {1: (10, 50, 60, 0), 2: (400, 60, -50, 5), 3: (200, 300, 0, -30)}.items():
        x, y = x0 + vx * t, y0 + vy * t
        out[who] = np.array([x, y, x + 40, y + 100], dtype=np.float32)
    return out


def run(fps: float, seconds: float, hidden=lambda who, t: False, conf=lambda who, t: 0.9, buffer=1.0):
    tracker = ByteTracker(TrackerConfig(lost_buffer_seconds=buffer))
    seen: dict[int, list[int]] = {}
    for k in range(int(seconds * fps)):
        t = k / fps
        people = {w: b for w, b in scene(t).items() if not hidden(w, t)}
        who = list(people)
        dets = Detections.from_arrays(np.stack(list(people.values())) if who else np.zeros((0, 4)),
                                      [conf(w, t) for w in who], np.zeros(len(who)), frame_index=k, timestamp=t)
        out = tracker.update(dets, t)
        for w, tid in zip(who, out.tracker_id, strict=True):
            seen.setdefault(w, []).append(int(tid))
    return seen, tracker


@pytest.mark.parametrize("fps", [5, 30, 60])
def test_ids_are_stable_and_unique_per_object(fps):
    seen, tracker = run(fps, 4.0)
    ids = {w: set(v) for w, v in seen.items()}
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len(set.union(*ids.values())) == 3 and tracker.track_count == 3
    assert all(-1 not in v for v in ids.values())


@pytest.mark.parametrize("fps", [5, 60])
@pytest.mark.parametrize(("gap", "same_id"), [(0.6, True), (1.6, False)])
def test_the_lost_buffer_is_in_seconds_not_frames(fps, gap, same_id):
    """Person 1 is hidden for ``gap`` seconds; with a 1 s buffer it comes back under its id only if gap < 1 s."""
    seen, _ = run(fps, 4.0, hidden=lambda who, t: who == 1 and 1.0 <= t < 1.0 + gap)
    ids = seen[1]
    assert (len(set(ids)) == 1) is same_id, ids
    # The other people are never disturbed by it.
    assert len(set(seen[2])) == 1 and len(set(seen[3])) == 1


def test_low_confidence_boxes_extend_tracks_but_do_not_start_them():
    # Person 2's confidence dips to 0.3 for a second: the second round keeps its id.
    seen, tracker = run(30, 3.0, conf=lambda who, t: 0.3 if who == 2 and 1.0 <= t < 2.0 else 0.9)
    assert len(set(seen[2])) == 1 and -1 not in seen[2]
    # A detection that is weak from its first frame never becomes a track.
    seen, tracker = run(30, 1.0, conf=lambda who, t: 0.3 if who == 3 else 0.9)
    assert set(seen[3]) == {-1} and tracker.track_count == 2


def test_classes_do_not_swap_ids():
    tracker = ByteTracker()
    box = np.array([[0, 0, 50, 100]], np.float32)
    a = tracker.update(Detections.from_arrays(box, [0.9], [0], timestamp=0.0), 0.0)
    b = tracker.update(Detections.from_arrays(box, [0.9], [1], timestamp=0.1), 0.1)
    assert a.tracker_id[0] != b.tracker_id[0]


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    m = iou_matrix(a, a)
    assert np.allclose(np.diag(m), 1) and m[0, 1] == pytest.approx(25 / 175)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)
