"""Tracking metrics must equal py-motmetrics' to 1e-6 on generated tracks."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from evaluation_refs import run_motmetrics

from evaluation import Boxes, evaluate_tracking


def _rows_to_boxes(rows: list[tuple[int, int, list[float]]]) -> Boxes:
    return Boxes.from_arrays([r[0] for r in rows], np.zeros(len(rows)), tracker_id=[r[1] for r in rows],
                             xywh=np.array([r[2] for r in rows], dtype=float).reshape(-1, 4))


def _compare(gt_rows, hyp_rows) -> dict:
    ref = run_motmetrics(gt_rows, hyp_rows)
    ours = evaluate_tracking(_rows_to_boxes(gt_rows), _rows_to_boxes(hyp_rows)).to_dict()
    for name, value in ref.items():
        mine = ours[name]
        if mine is None:
            assert math.isnan(value) or math.isinf(value), name
        else:
            assert mine == pytest.approx(value, abs=1e-6), name
    json.dumps(ours, allow_nan=False)
    return ours


def _world(seed: int, n_obj: int = 6, n_frames: int = 40):
    """Objects moving in straight lines; the tracker drops frames, swaps ids, adds clutter."""
    rng = np.random.default_rng(seed)
    gt, hyp = [], []
    next_hid = 100
    for o in range(n_obj):
        start = int(rng.integers(0, n_frames // 2))
        end = int(rng.integers(start + 1, n_frames))
        x, y = rng.uniform(0, 300, 2)
        vx, vy = rng.uniform(-4, 4, 2)
        w, h = rng.uniform(20, 60, 2)
        hid = next_hid
        next_hid += 1
        for f in range(start, end):
            box = [x + vx * f, y + vy * f, w, h]
            gt.append((f, o, box))
            if rng.random() < 0.15:
                continue  # missed: makes fragmentations
            if rng.random() < 0.05:
                hid = next_hid  # tracker re-initialises: an id switch
                next_hid += 1
            noise = rng.normal(0, 3, 4)
            hyp.append((f, hid, [box[0] + noise[0], box[1] + noise[1], box[2] + noise[2], box[3] + noise[3]]))
    for f in range(n_frames):
        if rng.random() < 0.3:
            hyp.append((f, int(rng.integers(500, 505)), list(rng.uniform(0, 300, 2)) + [30.0, 30.0]))
    gt.sort(key=lambda r: r[0])
    hyp.sort(key=lambda r: r[0])
    return gt, hyp


@pytest.mark.parametrize("seed", range(12))
def test_random_tracks_match_motmetrics(seed: int) -> None:
    _compare(*_world(seed))


def test_known_switch_and_fragmentation() -> None:
    box = [10.0, 10.0, 40.0, 40.0]
    gt = [(f, 1, box) for f in range(10)]
    # frames 0-3 hyp 7, miss 4-5, frames 6-9 hyp 8: one switch and one fragmentation
    hyp = [(f, 7, box) for f in range(4)] + [(f, 8, box) for f in range(6, 10)]
    ours = _compare(gt, hyp)
    assert ours["num_switches"] == 1
    assert ours["num_fragmentations"] == 1
    assert ours["num_misses"] == 2
    assert ours["mostly_tracked"] == 1  # tracked on 8 of 10 frames


def test_crossing_objects_swap_ids() -> None:
    gt, hyp = [], []
    for f in range(20):
        a = [float(f * 10), 50.0, 30.0, 30.0]
        b = [float(190 - f * 10), 52.0, 30.0, 30.0]
        gt += [(f, 1, a), (f, 2, b)]
        hyp += [(f, 11, a), (f, 12, b)] if f < 10 else [(f, 12, a), (f, 11, b)]
    ours = _compare(gt, hyp)
    assert ours["num_switches"] == 2


def test_empty_inputs() -> None:
    gt = [(0, 1, [0.0, 0.0, 10.0, 10.0])]
    _compare(gt, [])
    _compare([], [(0, 1, [0.0, 0.0, 10.0, 10.0])])
