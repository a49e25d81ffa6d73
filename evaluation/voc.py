"""PASCAL VOC average precision: 11-point (VOC2007) and all-point (VOC2010 onwards).

Per class, detections are taken in descending score order (ties keep input order). Each one
looks at the ground truth of its frame and class and takes the box of highest IoU (the first
of equal ones); with IoU >= the threshold it is a true positive if that box is still free,
else a false positive (a duplicate); below the threshold it is a false positive. Ground truth
flagged ``ignore`` (VOC's "difficult") is not counted, and a detection whose best box is one
is neither true nor false.

* all-point: precision is made monotone from the right and integrated over every recall step;
* 11-point: the mean over recall 0, 0.1 ... 1 of the highest precision at that recall or above.

``pixel_inclusive=True`` uses the VOC devkit's integer-pixel convention, in which a box covers
``x2 - x1 + 1`` by ``y2 - y1 + 1`` pixels and boxes that touch overlap by one pixel; the default
is continuous coordinates (width ``x2 - x1``), as everywhere else on the platform. mAP is the
mean AP over classes that have ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .boxes import Boxes

Method = Literal["all_point", "11_point"]
METHODS: tuple[Method, ...] = ("all_point", "11_point")


def voc_iou(a: np.ndarray, b: np.ndarray, pixel_inclusive: bool = False) -> np.ndarray:
    """IoU of xyxy boxes ``a`` (rows) with ``b`` (columns)."""
    one = 1.0 if pixel_inclusive else 0.0
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    if pixel_inclusive:
        meets = np.all(lo <= hi, axis=-1)
    else:
        meets = np.all(lo < hi, axis=-1)
    inter = np.where(meets, (hi[..., 0] - lo[..., 0] + one) * (hi[..., 1] - lo[..., 1] + one), 0.0)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def average_precision(recall: np.ndarray, precision: np.ndarray, method: Method = "all_point") -> float:
    """AP of one class from its cumulative recall and precision (one value per detection)."""
    if method == "11_point":
        total = 0.0
        for r in np.linspace(0, 1, 11):
            reached = precision[recall >= r]
            total += float(reached.max()) if reached.size else 0.0
        return total / 11
    if method != "all_point":
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


@dataclass(frozen=True)
class VocClass:
    ap: float | None
    num_ground_truth: int
    num_detections: int
    tp: int
    fp: int
    recall: np.ndarray
    precision: np.ndarray


@dataclass(frozen=True)
class VocResult:
    method: Method
    iou_threshold: float
    pixel_inclusive: bool
    per_class: dict[int, VocClass]

    @property
    def mean_ap(self) -> float | None:
        aps = [c.ap for c in self.per_class.values() if c.ap is not None]
        return float(np.mean(aps)) if aps else None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "iou_threshold": self.iou_threshold, "pixel_inclusive": self.pixel_inclusive,
                "mAP": self.mean_ap,
                "per_class": {str(k): {"AP": v.ap, "num_ground_truth": v.num_ground_truth,
                                       "num_detections": v.num_detections, "tp": v.tp, "fp": v.fp}
                              for k, v in self.per_class.items()}}


def _best_boxes(gt: Boxes, dt: Boxes, pixel_inclusive: bool) -> tuple[np.ndarray, np.ndarray]:
    """For every detection the ground-truth row of its frame and class with the highest IoU (the
    first of equal ones) and that IoU; -1 and 0 where there is none. A detection's best box does
    not depend on the others, which is what lets the greedy pass below run without a loop."""
    best = np.full(len(dt), -1, dtype=np.int64)
    best_iou = np.zeros(len(dt))
    if not len(gt) or not len(dt):
        return best, best_iou
    keys = np.concatenate([np.stack([gt.frame_index, gt.class_id], axis=1),
                           np.stack([dt.frame_index, dt.class_id], axis=1)])
    group = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
    g_grp, d_grp = group[:len(gt)], group[len(gt):]
    g_order, d_order = np.argsort(g_grp, kind="stable"), np.argsort(d_grp, kind="stable")
    edges = np.arange(int(group.max()) + 2)
    g_bounds = np.searchsorted(g_grp[g_order], edges)
    d_bounds = np.searchsorted(d_grp[d_order], edges)
    for k in np.intersect1d(g_grp, d_grp).tolist():
        rows = g_order[g_bounds[k]:g_bounds[k + 1]]
        dets = d_order[d_bounds[k]:d_bounds[k + 1]]
        iou = voc_iou(dt.xyxy[dets], gt.xyxy[rows], pixel_inclusive)
        j = np.argmax(iou, axis=1)
        best[dets] = rows[j]
        best_iou[dets] = iou[np.arange(dets.size), j]
    return best, best_iou


def evaluate_voc(gt: Boxes, dt: Boxes, iou_threshold: float = 0.5, method: Method = "all_point",
                 pixel_inclusive: bool = False, category_ids: Any = None) -> VocResult:
    """VOC AP per class (``class_id``), every detection counted (no cap per frame)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    cats = np.union1d(gt.class_id, dt.class_id) if category_ids is None else np.unique(np.asarray(category_ids))
    best, best_iou = _best_boxes(gt, dt, pixel_inclusive)
    per_class: dict[int, VocClass] = {}
    for c in cats.tolist():
        rows = np.nonzero(dt.class_id == c)[0]
        rows = rows[np.argsort(-dt.confidence[rows], kind="stable")]
        npos = int((~gt.ignore[gt.class_id == c]).sum())
        b = best[rows]
        close = best_iou[rows] >= iou_threshold
        # no ground truth at all: nothing to match, nothing to ignore (and nothing to index)
        ignored = close & gt.ignore[np.maximum(b, 0)] & (b >= 0) if len(gt.ignore) else np.zeros(rows.size, bool)
        claims = close & ~ignored
        tp = np.zeros(rows.size, dtype=bool)
        claim_at = np.nonzero(claims)[0]
        _, first = np.unique(b[claim_at], return_index=True)  # the best-ranked claim of each box wins
        tp[claim_at[first]] = True
        counted = ~ignored
        ctp, cfp = np.cumsum(tp[counted]), np.cumsum(~tp[counted])
        rec = ctp / npos if npos else np.zeros(ctp.size)
        prec = ctp / np.maximum(ctp + cfp, 1)
        ap = average_precision(rec, prec, method) if npos else None
        per_class[int(c)] = VocClass(ap, npos, int(rows.size), int(tp.sum()), int(counted.sum() - tp.sum()), rec,
                                     prec)
    return VocResult(method, float(iou_threshold), bool(pixel_inclusive), per_class)
