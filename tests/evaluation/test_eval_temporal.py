"""Detection latency and coverage per ground-truth object, on tracks with known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation import Boxes, evaluate_temporal


def _scene():
    """Pedestrian (class 0, track 1) on frames 10-19, found from frame 13 except frame 15;
    car (class 1, track 2) on frames 0-9, never found; car track 3 found at once.
    Timestamps are irregular on purpose (variable frame rate)."""
    gt_rows, dt_rows = [], []
    for f in range(10, 20):
        gt_rows.append((f, 0, 1, [100.0, 100.0, 140.0, 200.0]))
        if f >= 13 and f != 15:
            dt_rows.append((f, 0, [101.0, 101.0, 141.0, 201.0], 0.9))
        elif f < 13:
            dt_rows.append((f, 0, [101.0, 101.0, 141.0, 201.0], 0.2))  # below the operating threshold
    for f in range(10):
        gt_rows.append((f, 1, 2, [0.0, 0.0, 50.0, 30.0]))
        gt_rows.append((f, 1, 3, [300.0, 0.0, 350.0, 30.0]))
        dt_rows.append((f, 1, [300.0, 0.0, 350.0, 30.0], 0.8))
        dt_rows.append((f, 0, [0.0, 0.0, 50.0, 30.0], 0.9))  # wrong class on the missed car
    gt = Boxes.from_arrays([r[0] for r in gt_rows], [r[1] for r in gt_rows], tracker_id=[r[2] for r in gt_rows],
                           xyxy=[r[3] for r in gt_rows])
    dt = Boxes.from_arrays([r[0] for r in dt_rows], [r[1] for r in dt_rows], xyxy=[r[2] for r in dt_rows],
                           confidence=[r[3] for r in dt_rows])
    timestamps = {f: 0.1 * f + (0.05 if f >= 12 else 0.0) for f in range(20)}
    return gt, dt, timestamps


def test_latency_and_share_per_object() -> None:
    gt, dt, ts = _scene()
    res = evaluate_temporal(gt, dt, ts, score_threshold=0.5, iou_threshold=0.5)
    by_track = {o.track_id: o for o in res.objects}
    ped = by_track[1]
    assert (ped.first_frame, ped.first_detected_frame, ped.latency_frames) == (10, 13, 3)
    assert ped.latency_seconds == pytest.approx(0.35)
    assert (ped.frames_present, ped.frames_detected, ped.detected_share) == (10, 6, 0.6)
    assert by_track[2].first_detected_frame is None and by_track[2].detected_share == 0.0
    assert by_track[3].latency_frames == 0 and by_track[3].detected_share == 1.0
    cars = res.per_class[1]
    assert (cars.objects, cars.missed_objects, cars.median_latency_frames) == (2, 1, 0.0)
    assert res.per_class[0].p90_latency_seconds == pytest.approx(0.35)
    json.dumps(res.to_dict(), allow_nan=False)


def test_lower_threshold_detects_earlier_and_no_timestamps() -> None:
    gt, dt, _ = _scene()
    res = evaluate_temporal(gt, dt, None, score_threshold=0.1)
    ped = next(o for o in res.objects if o.track_id == 1)
    assert ped.latency_frames == 0 and ped.latency_seconds is None


def test_percentiles_over_many_objects() -> None:
    lat = np.arange(10)
    frames, cls, tid, boxes = [], [], [], []
    dframes, dboxes = [], []
    for t, lag in enumerate(lat):
        for f in range(20):
            frames.append(f)
            cls.append(0)
            tid.append(t)
            boxes.append([t * 100.0, 0.0, t * 100.0 + 50, 50.0])
            if f >= lag:
                dframes.append(f)
                dboxes.append([t * 100.0, 0.0, t * 100.0 + 50, 50.0])
    gt = Boxes.from_arrays(frames, cls, tracker_id=tid, xyxy=boxes)
    dt = Boxes.from_arrays(dframes, np.zeros(len(dframes)), xyxy=dboxes, confidence=np.ones(len(dframes)))
    s = evaluate_temporal(gt, dt, {f: f / 10 for f in range(20)}).per_class[0]
    assert s.median_latency_frames == np.median(lat)
    assert s.p90_latency_frames == np.percentile(lat, 90)
    assert s.p90_latency_seconds == pytest.approx(np.percentile(lat, 90) / 10)
    assert s.missed_objects == 0
