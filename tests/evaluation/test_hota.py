"""HOTA: per-sequence statistics and their combination equal TrackEval's (COMBINED row)."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from run_worlds import CLASSES, video

from evaluation.boxes import box_iou
from evaluation.hota import hota_statistics
from evaluation.runs import aggregate, combine_hota, video_matches

THRESH = 0.4


def _hota_metric():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from trackeval.metrics import HOTA
    return HOTA()


def _trackeval_sequence(gt, hyp) -> dict:
    frames = np.union1d(gt.frame_index, hyp.frame_index)
    _, g_inv = np.unique(gt.tracker_id, return_inverse=True)
    _, h_inv = np.unique(hyp.tracker_id, return_inverse=True)
    data = {"num_timesteps": int(frames.size), "num_gt_ids": int(np.unique(gt.tracker_id).size),
            "num_tracker_ids": int(np.unique(hyp.tracker_id).size), "num_gt_dets": len(gt),
            "num_tracker_dets": len(hyp), "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for f in frames:
        gi, hi = np.nonzero(gt.frame_index == f)[0], np.nonzero(hyp.frame_index == f)[0]
        data["gt_ids"].append(g_inv[gi])
        data["tracker_ids"].append(h_inv[hi])
        data["similarity_scores"].append(box_iou(gt.xyxy[gi][:, None, :], hyp.xyxy[hi][None, :, :]))
    return _hota_metric().eval_sequence(data)


def _sequences(seeds):
    for s in seeds:
        gt, dt, frames, ts = video(s, crowd=False)
        kept = dt.select(dt.confidence >= THRESH)
        for c in range(len(CLASSES)):
            g, h = gt.select(gt.class_id == c), kept.select(kept.class_id == c)
            if len(g) or len(h):
                yield g, h


def test_statistics_of_one_sequence_equal_trackeval() -> None:
    for g, h in _sequences([1, 2]):
        ref = _trackeval_sequence(g, h)
        ours = hota_statistics(g, h)
        np.testing.assert_allclose(ours[0], ref["HOTA_TP"])
        np.testing.assert_allclose(ours[1], ref["HOTA_FN"])
        np.testing.assert_allclose(ours[2], ref["HOTA_FP"])
        combined = combine_hota(ours)
        assert combined["hota"] == pytest.approx(float(np.mean(ref["HOTA"])), abs=1e-12)
        assert combined["assa"] == pytest.approx(float(np.mean(ref["AssA"])), abs=1e-12)


def test_run_hota_equals_trackeval_combined_over_every_video_and_class() -> None:
    seeds = [21, 22, 23]
    refs = {str(i): _trackeval_sequence(g, h) for i, (g, h) in enumerate(_sequences(seeds))}
    comb = _hota_metric().combine_sequences(refs)
    vms = []
    for i, s in enumerate(seeds):
        gt, dt, frames, ts = video(s, crowd=False)
        vms.append(video_matches(gt, dt, CLASSES, frames, ts, THRESH, tracking=True, video_id=f"v{i}"))
    hota = aggregate(vms, resamples=50)["overall"]["hota"]
    assert hota["hota"] == pytest.approx(float(np.mean(comb["HOTA"])), abs=1e-12)
    assert hota["deta"] == pytest.approx(float(np.mean(comb["DetA"])), abs=1e-12)
    assert hota["assa"] == pytest.approx(float(np.mean(comb["AssA"])), abs=1e-12)
    assert hota["loca"] == pytest.approx(float(np.mean(comb["LocA"])), abs=1e-12)
