"""Metrics at one operating point (score threshold, IoU threshold), for people deciding
whether a model is good enough to deploy rather than ranking models.

Matching is COCO's greedy matching per (frame, class) with no detection cap, so the
diagonal of the confusion matrix equals the per-class true positives. Undefined ratios
(for example precision with no detections) are ``None`` in ``to_dict``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .boxes import Boxes, at_threshold, box_iou
from .coco import prepare
from .matching import greedy_match


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


@dataclass(frozen=True)
class ClassOperatingPoint:
    """Counts and ratios for one class; the PR curve lists one point per distinct score."""

    class_id: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    curve_score: np.ndarray
    curve_precision: np.ndarray
    curve_recall: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id, "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
            "pr_curve": {"score": self.curve_score.tolist(), "precision": self.curve_precision.tolist(),
                         "recall": self.curve_recall.tolist()},
        }


@dataclass(frozen=True)
class OperatingPointResult:
    """``confusion[i, j]``: ground truth of ``labels[i]`` predicted as ``labels[j]``; the last
    label, -1, is background (row: false positives; column: missed ground truth)."""

    score_threshold: float
    iou_threshold: float
    per_class: dict[int, ClassOperatingPoint]
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    labels: np.ndarray
    confusion: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
            "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
            "per_class": {str(k): v.to_dict() for k, v in self.per_class.items()},
            "confusion_matrix": {"labels": [int(x) for x in self.labels], "matrix": self.confusion.tolist()},
        }


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None or p + r == 0:
        return None if p is None or r is None else 0.0
    return 2 * p * r / (p + r)


@dataclass
class _Matched:
    prep: Any
    match: np.ndarray  # matched gt row per detection, -1 if none
    dt_ig: np.ndarray  # detection matched an ignored region


def match_at_iou(gt: Boxes, dt: Boxes, iou_threshold: float, image_ids: Any = None,
                 category_ids: Any = None) -> _Matched:
    """Match every detection (no cap per frame) once; operating points are score prefixes."""
    prep = prepare(gt, dt, image_ids, category_ids, max_det=None)
    n_img = prep.image_ids.size
    match = greedy_match(prep.gt_cat * n_img + prep.gt_img, prep.gt.xyxy, prep.gt.iscrowd, prep.gt.ignore[None, :],
                         prep.dt_cat * n_img + prep.dt_img, prep.dt.xyxy, np.array([iou_threshold]))[0, 0]
    ig_pad = np.append(prep.gt.ignore, False)
    return _Matched(prep, match, (match >= 0) & ig_pad[match])


def evaluate_operating_point(
    gt: Boxes,
    dt: Boxes,
    score_threshold: float,
    iou_threshold: float = 0.5,
    image_ids: Any = None,
    category_ids: Any = None,
) -> OperatingPointResult:
    """Counts at ``score >= score_threshold``, PR curves over all scores, and a confusion
    matrix where leftovers of different classes that overlap count as class confusions."""
    m = match_at_iou(gt, dt, iou_threshold, image_ids, category_ids)
    prep, match = m.prep, m.match
    g, d = prep.gt, prep.dt
    cats = prep.category_ids
    n_cat = cats.size
    tp_flag = (match >= 0) & ~m.dt_ig
    fp_flag = (match < 0)
    active = at_threshold(d.confidence, score_threshold)
    npos = np.bincount(prep.gt_cat[~g.ignore], minlength=n_cat)
    order = np.lexsort((np.arange(len(d)), prep.dt_img, -d.confidence, prep.dt_cat))
    bounds = np.searchsorted(prep.dt_cat[order], np.arange(n_cat + 1))
    per_class: dict[int, ClassOperatingPoint] = {}
    for k, c in enumerate(cats):
        rows = order[bounds[k]:bounds[k + 1]]
        rows = rows[~m.dt_ig[rows]]
        sc = d.confidence[rows]
        tp_c = np.cumsum(tp_flag[rows])
        fp_c = np.cumsum(fp_flag[rows])
        last = np.append(sc[1:] != sc[:-1], True) if rows.size else np.zeros(0, dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = tp_c / np.maximum(tp_c + fp_c, 1)
            rec = tp_c / npos[k] if npos[k] else np.full(rows.size, np.nan)
        tp = int(np.sum(tp_flag[rows] & active[rows]))
        fp = int(np.sum(fp_flag[rows] & active[rows]))
        fn = int(npos[k] - tp)
        p, r = _ratio(tp, tp + fp), _ratio(tp, npos[k])
        per_class[int(c)] = ClassOperatingPoint(
            int(c), tp, fp, fn, p, r, _f1(p, r), sc[last],
            prec[last], rec[last] if npos[k] else np.zeros(0))
        if not npos[k]:
            per_class[int(c)] = ClassOperatingPoint(int(c), tp, fp, fn, p, r, _f1(p, r), np.zeros(0),
                                                    np.zeros(0), np.zeros(0))
    tp = sum(v.tp for v in per_class.values())
    fp = sum(v.fp for v in per_class.values())
    fn = sum(v.fn for v in per_class.values())
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    confusion = _confusion(m, active, iou_threshold)
    labels = np.append(cats, -1)
    return OperatingPointResult(float(score_threshold), float(iou_threshold), per_class, tp, fp, fn, p, r, _f1(p, r),
                                labels, confusion)


def _confusion(m: _Matched, active: np.ndarray, iou_threshold: float) -> np.ndarray:
    prep, match = m.prep, m.match
    g, d = prep.gt, prep.dt
    n_cat = prep.category_ids.size
    bg = n_cat
    conf = np.zeros((n_cat + 1, n_cat + 1), dtype=np.int64)
    tp = active & (match >= 0) & ~m.dt_ig
    np.add.at(conf, (prep.dt_cat[tp], prep.dt_cat[tp]), 1)
    gt_hit = np.zeros(len(g), dtype=bool)
    gt_hit[match[active & (match >= 0)]] = True
    left_d = np.nonzero(active & (match < 0))[0]
    left_g = np.nonzero(~gt_hit & ~g.ignore)[0]
    # Leftovers of different classes on the same frame: greedy by score, best IoU first.
    d_used = np.zeros(left_d.size, dtype=bool)
    g_used = np.zeros(left_g.size, dtype=bool)
    if left_d.size and left_g.size:
        for img in np.intersect1d(prep.dt_img[left_d], prep.gt_img[left_g]):
            di = np.nonzero(prep.dt_img[left_d] == img)[0]
            gi = np.nonzero(prep.gt_img[left_g] == img)[0]
            di = di[np.argsort(-d.confidence[left_d[di]], kind="stable")]
            iou = box_iou(d.xyxy[left_d[di]][:, None, :], g.xyxy[left_g[gi]][None, :, :])
            free = np.ones(gi.size, dtype=bool)
            for row, dd in enumerate(di):
                cand = np.where(free & (iou[row] >= iou_threshold), iou[row], -1.0)
                j = int(np.argmax(cand))
                if cand[j] < 0:
                    continue
                free[j] = False
                d_used[dd] = True
                g_used[gi[j]] = True
                conf[prep.gt_cat[left_g[gi[j]]], prep.dt_cat[left_d[dd]]] += 1
    np.add.at(conf, (np.full((~d_used).sum(), bg), prep.dt_cat[left_d[~d_used]]), 1)
    np.add.at(conf, (prep.gt_cat[left_g[~g_used]], np.full((~g_used).sum(), bg)), 1)
    return conf
