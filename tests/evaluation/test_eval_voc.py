"""PASCAL VOC AP: hand-computed cases, and a plain reference written here from the VOC devkit's
definition (VOCevaldet / VOCap: greedy by score, the best-overlap box, duplicates are false
positives; all-point and 11-point interpolation) on generated cases."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import Boxes
from evaluation.voc import evaluate_voc, voc_iou


def _gt(rows):
    return Boxes.from_arrays([r[0] for r in rows], [r[1] for r in rows], xyxy=[r[2] for r in rows],
                             ignore=[r[3] if len(r) > 3 else False for r in rows])


def _dt(rows):
    return Boxes.from_arrays([r[0] for r in rows], [r[1] for r in rows], xyxy=[r[2] for r in rows],
                             confidence=[r[3] for r in rows])


A, B, C = (0.0, 0.0, 10.0, 10.0), (20.0, 0.0, 30.0, 10.0), (0.0, 0.0, 10.0, 10.0)
GT = [(0, 0, A), (0, 0, B), (1, 0, C)]
# by score: hit A, A again (duplicate), hit C, clutter, hit B -> TP FP TP FP TP
DT = [(0, 0, A, 0.9), (0, 0, A, 0.8), (1, 0, C, 0.7), (0, 0, (50.0, 50.0, 60.0, 60.0), 0.6), (0, 0, B, 0.5)]


def test_hand_computed_all_point_and_eleven_point() -> None:
    # recall 1/3 1/3 2/3 2/3 1, precision 1 1/2 2/3 1/2 3/5
    allp = evaluate_voc(_gt(GT), _dt(DT), 0.5, "all_point")
    assert allp.per_class[0].ap == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)          # 34/45
    assert (allp.per_class[0].tp, allp.per_class[0].fp) == (3, 2)
    eleven = evaluate_voc(_gt(GT), _dt(DT), 0.5, "11_point")
    assert eleven.per_class[0].ap == pytest.approx((4 * 1 + 3 * 2 / 3 + 4 * 3 / 5) / 11)  # 8.4/11
    assert eleven.to_dict()["mAP"] == eleven.per_class[0].ap


def test_pixel_inclusive_areas() -> None:
    a, narrow, touching = np.array([A]), np.array([(0.0, 0.0, 7.0, 10.0)]), np.array([(10.0, 0.0, 20.0, 10.0)])
    assert voc_iou(narrow, a)[0, 0] == pytest.approx(0.7)
    assert voc_iou(narrow, a, pixel_inclusive=True)[0, 0] == pytest.approx(88 / 121)
    assert voc_iou(touching, a)[0, 0] == 0.0
    assert voc_iou(touching, a, pixel_inclusive=True)[0, 0] == pytest.approx(11 / 231)
    g, d = _gt([(0, 0, A)]), _dt([(0, 0, (0.0, 0.0, 7.0, 10.0), 0.9)])
    assert evaluate_voc(g, d, 0.72).per_class[0].ap == 0.0
    assert evaluate_voc(g, d, 0.72, pixel_inclusive=True).per_class[0].ap == 1.0


def test_difficult_boxes_neither_count_nor_punish() -> None:
    g = _gt([(0, 0, A), (0, 0, B, True)])
    d = _dt([(0, 0, B, 0.9), (0, 0, A, 0.8)])
    r = evaluate_voc(g, d).per_class[0]
    assert (r.num_ground_truth, r.tp, r.fp, r.ap) == (1, 1, 0, 1.0)


def test_class_without_ground_truth_is_left_out_of_the_mean() -> None:
    g = _gt([(0, 0, A)])
    d = _dt([(0, 0, A, 0.9), (0, 1, B, 0.8)])
    res = evaluate_voc(g, d, category_ids=[0, 1])
    assert res.per_class[1].ap is None and res.mean_ap == 1.0


# ---------------------------------------------------------------- reference from the devkit's definition


def _ref_iou(a, b, plus):
    ix1, iy1, ix2, iy2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    iw, ih = ix2 - ix1 + plus, iy2 - iy1 + plus
    if plus and (ix1 > ix2 or iy1 > iy2) or not plus and (iw <= 0 or ih <= 0):
        return 0.0
    inter = iw * ih
    ua = (a[2] - a[0] + plus) * (a[3] - a[1] + plus) + (b[2] - b[0] + plus) * (b[3] - b[1] + plus) - inter
    return inter / ua


def _ref_ap(gt_rows, dt_rows, cls, thr, method, plus):
    gts = [r for r in gt_rows if r[1] == cls]
    npos = sum(1 for r in gts if not (len(r) > 3 and r[3]))
    used = [False] * len(gts)
    dets = sorted([r for r in dt_rows if r[1] == cls], key=lambda r: -r[3])
    tp, fp = [], []
    for d in dets:
        best, jbest = -np.inf, -1
        for j, g in enumerate(gts):
            if g[0] != d[0]:
                continue
            o = _ref_iou(d[2], g[2], plus)
            if o > best:
                best, jbest = o, j
        if best >= thr:
            if len(gts[jbest]) > 3 and gts[jbest][3]:
                continue
            if not used[jbest]:
                used[jbest] = True
                tp.append(1)
                fp.append(0)
            else:
                tp.append(0)
                fp.append(1)
        else:
            tp.append(0)
            fp.append(1)
    if npos == 0:
        return None
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec = [t / npos for t in ctp]
    prec = [t / max(t + f, 1) for t, f in zip(ctp, cfp, strict=True)]
    if method == "11_point":
        ap = 0.0
        for i in range(11):
            t = i * 0.1
            ps = [p for p, r in zip(prec, rec, strict=True) if r >= t]
            ap += (max(ps) if ps else 0.0) / 11
        return ap
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def _case(seed: int):
    rng = np.random.default_rng(seed)
    gt, dt = [], []
    for f in range(8):
        for _ in range(int(rng.integers(0, 6))):
            x, y = (float(v) for v in rng.integers(0, 200, 2))
            w, h = (float(v) for v in rng.integers(4, 40, 2))
            c = int(rng.integers(0, 3))
            gt.append((f, c, (x, y, x + w, y + h), bool(rng.random() < 0.1)))
            for _ in range(int(rng.integers(0, 3))):  # hits, near misses and duplicates (integer pixels)
                jx, jy, jw, jh = (float(v) for v in rng.integers(-4, 5, 4))
                dt.append((f, c, (x + jx, y + jy, x + w + jx + jw, y + h + jy + jh),
                           round(float(rng.random()), 1)))  # ties in score
        for _ in range(int(rng.integers(0, 3))):
            x, y = (float(v) for v in rng.integers(0, 200, 2))
            dt.append((f, int(rng.integers(0, 3)), (x, y, x + 20, y + 20), round(float(rng.random()), 1)))
    return gt, dt


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("method", ["all_point", "11_point"])
@pytest.mark.parametrize("plus", [0, 1])
def test_generated_cases_match_the_devkit_definition(seed: int, method: str, plus: int) -> None:
    gt, dt = _case(seed)
    thr = 0.5
    res = evaluate_voc(_gt(gt), _dt(dt), thr, method, pixel_inclusive=bool(plus), category_ids=[0, 1, 2])
    for c in (0, 1, 2):
        ref = _ref_ap(gt, dt, c, thr, method, plus)
        ours = res.per_class[c].ap
        assert (ours is None) == (ref is None)
        if ref is not None:
            assert ours == pytest.approx(ref, abs=1e-12)


def test_detections_without_any_ground_truth_are_all_false_positives():
    from evaluation.boxes import Boxes
    from evaluation.voc import evaluate_voc

    dt = Boxes.from_records([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}], "xywh")
    result = evaluate_voc(Boxes.empty(), dt).per_class[1]
    assert (result.ap, result.num_ground_truth, result.tp, result.fp) == (None, 0, 0, 1)
