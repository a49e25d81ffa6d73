"""HOTA, and CLEAR/identity with TrackEval's semantics, equal TrackEval's own numbers to 1e-6.

TrackEval (the benchmark's scorer, ``trackeval`` on PyPI) is fed the same sequences as
per-timestep id and IoU arrays, with IoU computed by TrackEval itself.
"""
from __future__ import annotations

import numpy as np
import pytest
from test_eval_tracking import _rows_to_boxes as _boxes

from evaluation import Boxes
from evaluation.hota import class_averaged, combine_hota, evaluate_hota
from evaluation.motchallenge import evaluate_clear

trackeval = pytest.importorskip("trackeval")
from trackeval.datasets._base_dataset import _BaseDataset  # noqa: E402
from trackeval.metrics import CLEAR, HOTA, Identity  # noqa: E402

QUIET = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
HOTA_FIELDS = ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")


def trackeval_data(gt_rows, hyp_rows, n_frames: int) -> dict:
    """TrackEval's per-sequence input: contiguous ids per timestep and its own IoU matrices."""
    g_ids = {i: k for k, i in enumerate(sorted({r[1] for r in gt_rows}))}
    h_ids = {i: k for k, i in enumerate(sorted({r[1] for r in hyp_rows}))}
    data: dict = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for t in range(n_frames):
        g = [r for r in gt_rows if r[0] == t]
        h = [r for r in hyp_rows if r[0] == t]
        data["gt_ids"].append(np.array([g_ids[r[1]] for r in g], dtype=int))
        data["tracker_ids"].append(np.array([h_ids[r[1]] for r in h], dtype=int))
        gb = np.array([r[2] for r in g], dtype=float).reshape(-1, 4)
        hb = np.array([r[2] for r in h], dtype=float).reshape(-1, 4)
        data["similarity_scores"].append(_BaseDataset._calculate_box_ious(gb, hb, box_format="xywh"))
    data.update(num_timesteps=n_frames, num_gt_ids=len(g_ids), num_tracker_ids=len(h_ids),
                num_gt_dets=len(gt_rows), num_tracker_dets=len(hyp_rows))
    return data


def trackeval_run(gt_rows, hyp_rows, n_frames: int) -> dict:
    data = trackeval_data(gt_rows, hyp_rows, n_frames)
    return {"HOTA": HOTA().eval_sequence(data), "CLEAR": CLEAR(QUIET).eval_sequence(data),
            "Identity": Identity(QUIET).eval_sequence(data)}


def assert_hota_equal(ours: dict, ref: dict) -> None:
    for f in HOTA_FIELDS:
        assert ours[f] == pytest.approx(float(np.mean(ref[f])), abs=1e-6), f
    assert ours["HOTA(0)"] == pytest.approx(float(ref["HOTA(0)"]), abs=1e-6)
    assert ours["LocA(0)"] == pytest.approx(float(ref["LocA(0)"]), abs=1e-6)
    for f in ("HOTA_TP", "HOTA_FN", "HOTA_FP"):
        assert ours[f] == [int(x) for x in ref[f]], f


def assert_clear_equal(ours: dict, clear: dict, ident: dict) -> None:
    pairs = {"num_switches": "IDSW", "mostly_tracked": "MT", "partially_tracked": "PT", "mostly_lost": "ML",
             "num_fragmentations": "Frag", "num_misses": "CLR_FN", "num_false_positives": "CLR_FP"}
    for mine, theirs in pairs.items():
        assert ours[mine] == int(clear[theirs]), mine
    assert ours["num_matches"] + ours["num_switches"] == int(clear["CLR_TP"])
    assert ours["mota"] == pytest.approx(float(clear["MOTA"]), abs=1e-6)
    assert 1.0 - ours["motp"] == pytest.approx(float(clear["MOTP"]), abs=1e-6)
    for mine, theirs in (("idf1", "IDF1"), ("idp", "IDP"), ("idr", "IDR")):
        assert ours[mine] == pytest.approx(float(ident[theirs]), abs=1e-6), mine
    for mine, theirs in (("idtp", "IDTP"), ("idfp", "IDFP"), ("idfn", "IDFN")):
        assert ours[mine] == int(ident[theirs]), mine


def world(seed: int, n_obj: int = 7, n_frames: int = 50):
    """Straight-moving objects that appear, leave and come back; the tracker misses frames
    (fragmentations), re-initialises or swaps ids (switches), drifts (loose IoU), leaves whole
    frames empty and adds clutter."""
    rng = np.random.default_rng(seed)
    gt, hyp = [], []
    next_hid = 100
    blank = set(rng.choice(n_frames, size=3, replace=False).tolist())
    for o in range(n_obj):
        start = int(rng.integers(0, n_frames // 2))
        end = int(rng.integers(start + 2, n_frames + 1))
        away = set(range(int(rng.integers(start, end)), int(rng.integers(start, end)))) if rng.random() < 0.3 \
            else set()
        x, y = rng.uniform(0, 400, 2)
        vx, vy = rng.uniform(-5, 5, 2)
        w, h = rng.uniform(20, 70, 2)
        hid = next_hid
        next_hid += 1
        for f in range(start, end):
            if f in away:
                continue
            box = [x + vx * f, y + vy * f, w, h]
            gt.append((f, o, box))
            if f in blank or rng.random() < 0.15:
                continue
            if rng.random() < 0.06:
                hid = next_hid
                next_hid += 1
            noise = rng.normal(0, 0.08 * w, 4)
            hyp.append((f, hid, [box[0] + noise[0], box[1] + noise[1], box[2] + noise[2], box[3] + noise[3]]))
    for f in range(n_frames):
        if f not in blank and rng.random() < 0.3:
            hyp.append((f, int(rng.integers(500, 504)), [*rng.uniform(0, 400, 2), 30.0, 30.0]))
    key = lambda r: (r[0], r[1])  # noqa: E731
    return sorted(gt, key=key), sorted(hyp, key=key), n_frames


@pytest.mark.parametrize("seed", range(10))
def test_random_sequences_match_trackeval(seed: int) -> None:
    gt, hyp, n = world(seed)
    ref = trackeval_run(gt, hyp, n)
    assert_hota_equal(evaluate_hota(_boxes(gt), _boxes(hyp)).to_dict(), ref["HOTA"])
    assert_clear_equal(evaluate_clear(_boxes(gt), _boxes(hyp)).to_dict(), ref["CLEAR"], ref["Identity"])


def test_known_switch_fragmentation_and_an_empty_frame() -> None:
    box = [10.0, 10.0, 40.0, 40.0]
    gt = [(f, 1, box) for f in range(10)] + [(f, 2, [200.0, 10.0, 40.0, 40.0]) for f in range(10)]
    # object 1: hyp 7 on 0-3, lost 4-5, hyp 8 on 6-9 (a switch and a fragmentation);
    # object 2: perfect, but frame 5 has no tracker output at all
    hyp = [(f, 7, box) for f in range(4)] + [(f, 8, box) for f in range(6, 10)] + \
        [(f, 9, [200.0, 10.0, 40.0, 40.0]) for f in range(10) if f != 5]
    ref = trackeval_run(gt, hyp, 10)
    ours = evaluate_clear(_boxes(gt), _boxes(hyp)).to_dict()
    assert_clear_equal(ours, ref["CLEAR"], ref["Identity"])
    assert (ours["num_switches"], ours["num_fragmentations"]) == (1, 1)
    hota = evaluate_hota(_boxes(gt), _boxes(hyp)).to_dict()
    assert_hota_equal(hota, ref["HOTA"])
    # exact boxes: every true positive has IoU 1, so detection is alpha-independent
    assert hota["DetA"] == pytest.approx(17 / 20)
    assert hota["LocA"] == pytest.approx(1.0)


def test_perfect_tracker_scores_one_and_empty_sides() -> None:
    gt, _, n = world(3)
    perfect = evaluate_hota(_boxes(gt), _boxes(gt)).to_dict()
    assert perfect["HOTA"] == pytest.approx(1.0) and perfect["AssA"] == pytest.approx(1.0)
    for g, h in ((gt, []), ([], gt)):
        ref = trackeval_run(g, h, n)
        assert_hota_equal(evaluate_hota(_boxes(g), _boxes(h)).to_dict(), ref["HOTA"])


def test_classes_combined_as_trackeval_does() -> None:
    parts, refs = {}, {}
    for c, seed in enumerate((11, 12, 13)):
        gt, hyp, n = world(seed, n_obj=4 + c)
        parts[str(c)] = evaluate_hota(_boxes(gt), _boxes(hyp))
        refs[str(c)] = trackeval_run(gt, hyp, n)["HOTA"]
    metric = HOTA()
    assert_hota_equal(combine_hota(list(parts.values())).to_dict(), metric.combine_classes_det_averaged(refs))
    cls_av = metric.combine_classes_class_averaged(refs)
    ours = class_averaged(parts)
    for f in HOTA_FIELDS:
        assert ours[f] == pytest.approx(float(np.mean(cls_av[f])), abs=1e-6), f
    assert ours["HOTA(0)"] == pytest.approx(float(cls_av["HOTA(0)"]), abs=1e-6)


def test_session_overall_rows_equal_trackeval_over_classes() -> None:
    """Two classes through ``evaluate_session(protocol="motchallenge")`` (no distractors, so the
    preprocessing keeps everything): the summed rows equal TrackEval's detection-averaged ones."""
    from evaluation.session import evaluate_session

    cases = [world(21), world(22, n_obj=5)]
    gt_rows, hyp_rows, refs = [], [], {"CLEAR": {}, "Identity": {}, "HOTA": {}}
    for c, (gt, hyp, n) in enumerate(cases):
        gt_rows += [(f, 1000 * c + t, b, c) for f, t, b in gt]
        hyp_rows += [(f, 1000 * c + t, b, c) for f, t, b in hyp]
        for name, res in trackeval_run(gt, hyp, n).items():
            refs[name][str(c)] = res

    def boxes(rows):
        return Boxes.from_arrays([r[0] for r in rows], [r[3] for r in rows], tracker_id=[r[1] for r in rows],
                                 xywh=np.array([r[2] for r in rows], dtype=float).reshape(-1, 4))

    n = max(c[2] for c in cases)
    out = evaluate_session(boxes(gt_rows), boxes(hyp_rows), ["a", "b"], np.arange(n), None, 0.0, tracking=True,
                           protocol="motchallenge")
    clear = CLEAR(QUIET).combine_classes_det_averaged(refs["CLEAR"])
    ident = Identity(QUIET).combine_classes_det_averaged(refs["Identity"])
    assert_clear_equal(out["tracking"]["overall"], clear, ident)
    assert_hota_equal(out["hota"]["overall"], HOTA().combine_classes_det_averaged(refs["HOTA"]))
    for c, name in enumerate(("a", "b")):
        assert_clear_equal(out["tracking"]["per_class"][name], refs["CLEAR"][str(c)], refs["Identity"][str(c)])
