"""COCO-style bbox metrics with COCOeval's exact semantics, vectorized.

Absent values follow COCOeval: a precision/recall cell for a class with no (non-ignored)
ground truth is -1, and a summary over only such cells is -1. ``to_dict`` keeps -1, so the
output is JSON-safe and compares directly with COCOeval's ``stats``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .boxes import Boxes
from .matching import greedy_match

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def default_iou_thresholds() -> np.ndarray:
    # Same linspace call as COCOeval so the thresholds are bit-identical floats.
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def default_recall_thresholds() -> np.ndarray:
    return np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


@dataclass(frozen=True)
class CocoParams:
    """Evaluation settings; the defaults are COCOeval's for bbox."""

    iou_thresholds: np.ndarray = field(default_factory=default_iou_thresholds)
    recall_thresholds: np.ndarray = field(default_factory=default_recall_thresholds)
    max_dets: tuple[int, int, int] = (1, 10, 100)
    area_ranges: tuple[tuple[float, float], ...] = (
        (0.0, 1e5**2), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))


@dataclass(frozen=True)
class CocoStats:
    """The twelve COCO summary numbers; -1 means no ground truth to judge by."""

    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    AR1: float
    AR10: float
    AR100: float
    ARs: float
    ARm: float
    ARl: float

    def to_list(self) -> list[float]:
        return [getattr(self, n) for n in STAT_NAMES]

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CocoResult:
    """Overall and per-class statistics plus COCOeval-shaped arrays for plots.

    ``precision`` is (T, R, K, A, M) and ``recall`` (T, K, A, M), with -1 where undefined.
    """

    overall: CocoStats
    per_class: dict[int, CocoStats]
    category_ids: np.ndarray
    image_ids: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "per_class": {str(int(k)): v.to_dict() for k, v in self.per_class.items()},
            "category_ids": [int(c) for c in self.category_ids],
            "num_images": int(self.image_ids.size),
        }


@dataclass
class _Prepared:
    gt: Boxes
    dt: Boxes
    image_ids: np.ndarray
    category_ids: np.ndarray
    gt_img: np.ndarray
    gt_cat: np.ndarray
    dt_img: np.ndarray
    dt_cat: np.ndarray
    dt_rank: np.ndarray


def _take(b: Boxes, idx: np.ndarray) -> Boxes:
    return b.select(idx)


def prepare(
    gt: Boxes,
    dt: Boxes,
    image_ids: Any = None,
    category_ids: Any = None,
    max_det: int | None = None,
) -> _Prepared:
    """Restrict to the evaluated universe and sort rows the way the matcher needs.

    Default universe: every frame and class seen in either input, so frames with detections
    but no ground truth count their detections as false positives.
    """
    if np.any(np.isnan(dt.confidence)):
        raise ValueError("detection scores must not be NaN")
    if image_ids is None:
        image_ids = np.union1d(gt.frame_index, dt.frame_index)
    if category_ids is None:
        category_ids = np.union1d(gt.class_id, dt.class_id)
    image_ids = np.unique(np.asarray(image_ids, dtype=np.int64))
    category_ids = np.unique(np.asarray(category_ids, dtype=np.int64))
    if not np.all(np.isin(dt.frame_index, image_ids)):
        raise ValueError("detections reference frames outside the evaluated image ids")
    gkeep = np.isin(gt.frame_index, image_ids) & np.isin(gt.class_id, category_ids)
    dkeep = np.isin(dt.class_id, category_ids)
    gt, dt = _take(gt, np.nonzero(gkeep)[0]), _take(dt, np.nonzero(dkeep)[0])
    n_img = image_ids.size
    gt_img, gt_cat = np.searchsorted(image_ids, gt.frame_index), np.searchsorted(category_ids, gt.class_id)
    dt_img, dt_cat = np.searchsorted(image_ids, dt.frame_index), np.searchsorted(category_ids, dt.class_id)
    g_order = np.argsort(gt_cat * n_img + gt_img, kind="stable")
    d_group = dt_cat * n_img + dt_img
    d_order = np.lexsort((np.arange(len(dt)), -dt.confidence, d_group))
    gt, gt_img, gt_cat = _take(gt, g_order), gt_img[g_order], gt_cat[g_order]
    dt, dt_img, dt_cat, d_group = _take(dt, d_order), dt_img[d_order], dt_cat[d_order], d_group[d_order]
    _, first, counts = np.unique(d_group, return_index=True, return_counts=True)
    rank = np.arange(len(dt)) - np.repeat(first, counts)
    if max_det is not None:
        keep = np.nonzero(rank < max_det)[0]
        dt, dt_img, dt_cat, rank = _take(dt, keep), dt_img[keep], dt_cat[keep], rank[keep]
    return _Prepared(gt, dt, image_ids, category_ids, gt_img, gt_cat, dt_img, dt_cat, rank)


def _summary(value: np.ndarray) -> float:
    v = value[value > -1]
    return -1.0 if v.size == 0 else float(np.mean(v))


def summarize(precision: np.ndarray, recall: np.ndarray, params: CocoParams) -> CocoStats:
    """COCOeval.summarize for bbox: same cells, same -1 rule."""
    thr = params.iou_thresholds
    m_last = len(params.max_dets) - 1

    def ap(t: float | None = None, a: int = 0) -> float:
        s = precision if t is None else precision[np.where(t == thr)[0]]
        return _summary(s[:, :, :, a, m_last])

    def ar(m: int, a: int = 0) -> float:
        return _summary(recall[:, :, a, m])

    return CocoStats(ap(), ap(0.5), ap(0.75), ap(None, 1), ap(None, 2), ap(None, 3),
                     ar(0), ar(1), ar(m_last), ar(m_last, 1), ar(m_last, 2), ar(m_last, 3))


def evaluate_coco(
    gt: Boxes,
    dt: Boxes,
    image_ids: Any = None,
    category_ids: Any = None,
    params: CocoParams | None = None,
) -> CocoResult:
    """COCOeval(iouType='bbox') evaluate + accumulate + summarize, with per-class stats.

    Ground-truth ``area`` decides area ranges; a detection's area is its box area, as COCO's
    loadRes sets it. Pass COCO json through ``from_coco`` to reproduce COCOeval's universe.
    """
    p = params or CocoParams()
    prep = prepare(gt, dt, image_ids, category_ids, max_det=max(p.max_dets))
    gt, dt = prep.gt, prep.dt
    n_img, n_cat = prep.image_ids.size, prep.category_ids.size
    areas = np.asarray(p.area_ranges, dtype=np.float64)
    gt_ig = gt.ignore[None, :] | (gt.area[None, :] < areas[:, :1]) | (gt.area[None, :] > areas[:, 1:])
    dt_area = (dt.xyxy[:, 2] - dt.xyxy[:, 0]) * (dt.xyxy[:, 3] - dt.xyxy[:, 1])
    dt_out = (dt_area[None, :] < areas[:, :1]) | (dt_area[None, :] > areas[:, 1:])
    match = greedy_match(prep.gt_cat * n_img + prep.gt_img, gt.xyxy, gt.iscrowd, gt_ig,
                         prep.dt_cat * n_img + prep.dt_img, dt.xyxy, p.iou_thresholds)
    matched = match >= 0  # (A, T, D)
    a_idx = np.arange(areas.shape[0])[:, None, None]
    gt_ig_pad = np.concatenate([gt_ig, np.zeros((gt_ig.shape[0], 1), dtype=bool)], axis=1)
    dt_ig = np.where(matched, gt_ig_pad[a_idx, match], dt_out[:, None, :])
    tps_all = matched & ~dt_ig
    fps_all = ~matched & ~dt_ig

    n_t, n_r, n_a, n_m = p.iou_thresholds.size, p.recall_thresholds.size, areas.shape[0], len(p.max_dets)
    precision = -np.ones((n_t, n_r, n_cat, n_a, n_m))
    recall = -np.ones((n_t, n_cat, n_a, n_m))
    scores = -np.ones((n_t, n_r, n_cat, n_a, n_m))
    npig = np.zeros((n_cat, n_a), dtype=np.int64)
    for a in range(n_a):
        npig[:, a] = np.bincount(prep.gt_cat[~gt_ig[a]], minlength=n_cat)
    order = np.lexsort((prep.dt_rank, prep.dt_img, -dt.confidence, prep.dt_cat))
    cat_sorted = prep.dt_cat[order]
    bounds = np.searchsorted(cat_sorted, np.arange(n_cat + 1))
    eps = np.spacing(1)
    for k in range(n_cat):
        rows = order[bounds[k]:bounds[k + 1]]
        for mi, max_det in enumerate(p.max_dets):
            sub = rows[prep.dt_rank[rows] < max_det]
            sc = dt.confidence[sub]
            nd = sub.size
            for a in range(n_a):
                if npig[k, a] == 0:
                    continue
                tp = np.cumsum(tps_all[a][:, sub], axis=1).astype(float)
                fp = np.cumsum(fps_all[a][:, sub], axis=1).astype(float)
                rc = tp / npig[k, a]
                pr = tp / (fp + tp + eps)
                recall[:, k, a, mi] = rc[:, -1] if nd else 0
                if nd == 0:
                    precision[:, :, k, a, mi] = 0
                    scores[:, :, k, a, mi] = 0
                    continue
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(n_t):
                    inds = np.searchsorted(rc[t], p.recall_thresholds, side="left")
                    ok = inds < nd
                    safe = np.where(ok, inds, 0)
                    precision[t, :, k, a, mi] = np.where(ok, pr[t, safe], 0.0)
                    scores[t, :, k, a, mi] = np.where(ok, sc[safe], 0.0)
    overall = summarize(precision, recall, p)
    per_class = {
        int(c): summarize(precision[:, :, k:k + 1], recall[:, k:k + 1], p)
        for k, c in enumerate(prep.category_ids)
    }
    return CocoResult(overall, per_class, prep.category_ids, prep.image_ids, precision, recall, scores)
