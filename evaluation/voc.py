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


def evaluate_voc(gt: Boxes, dt: Boxes, iou_threshold: float = 0.5, method: Method = "all_point",
                 pixel_inclusive: bool = False, category_ids: Any = None) -> VocResult:
    """VOC AP per class (``class_id``), every detection counted (no cap per frame)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    cats = np.union1d(gt.class_id, dt.class_id) if category_ids is None else np.unique(np.asarray(category_ids))
    per_class: dict[int, VocClass] = {}
    for c in cats.tolist():
        g = gt.select(gt.class_id == c)
        d = dt.select(dt.class_id == c)
        order = np.argsort(-d.score, kind="stable")
        npos = int((~g.ignore).sum())
        taken = np.zeros(len(g), dtype=bool)
        tp = np.zeros(len(d), dtype=bool)
        fp = np.zeros(len(d), dtype=bool)
        by_frame = {int(f): np.nonzero(g.frame == f)[0] for f in np.unique(g.frame)}
        for rank, j in enumerate(order.tolist()):
            rows = by_frame.get(int(d.frame[j]))
            if rows is None:
                fp[rank] = True
                continue
            iou = voc_iou(d.xyxy[j:j + 1], g.xyxy[rows], pixel_inclusive)[0]
            best = int(np.argmax(iou))
            if iou[best] < iou_threshold:
                fp[rank] = True
            elif g.ignore[rows[best]]:
                continue
            elif not taken[rows[best]]:
                taken[rows[best]] = True
                tp[rank] = True
            else:
                fp[rank] = True
        counted = tp | fp
        ctp, cfp = np.cumsum(tp[counted]), np.cumsum(fp[counted])
        rec = ctp / npos if npos else np.zeros(ctp.size)
        prec = ctp / np.maximum(ctp + cfp, 1)
        ap = average_precision(rec, prec, method) if npos else None
        per_class[int(c)] = VocClass(ap, npos, len(d), int(tp.sum()), int(fp.sum()), rec, prec)
    return VocResult(method, float(iou_threshold), bool(pixel_inclusive), per_class)
