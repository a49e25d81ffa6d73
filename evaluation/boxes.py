"""Columnar box container shared by every metric in this package.

Boxes are stored as ``xyxy`` (x1, y1, x2, y2 in pixels), the convention of the detection
pipeline; builders accept COCO's ``xywh`` and convert once at the edge.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A detection's score when its source gave none (MOTChallenge writes ``conf`` -1): it ranks below
#: every real score (scores are in [0, 1]) and no score threshold drops it.
NO_SCORE = -1.0


def at_threshold(score: np.ndarray, threshold: float) -> np.ndarray:
    """Which detections an operating point keeps: a score of at least ``threshold``, or no score."""
    return (score >= threshold) | (score == NO_SCORE)


def _col(values: Any, n: int, dtype: Any, default: Any) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=dtype)
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"column length {arr.shape[0]} does not match {n} boxes")
    return arr


@dataclass(frozen=True)
class Boxes:
    """Parallel arrays, one row per box (ground truth or detection).

    Columns are named as in ``vision.Detections``: ``frame_index`` is the image id or frame
    number; ``confidence`` is 1 for ground truth; ``tracker_id`` is -1 when unknown;
    ``iscrowd`` marks COCO crowd regions (a detection inside one is neither a true nor a false
    positive, and IoU is intersection over detection area);
    ``ignore`` marks regular boxes that should neither count as misses nor make false positives;
    ``area`` is what COCO area ranges are judged on for ground truth (defaults to box area).
    """

    frame_index: np.ndarray
    xyxy: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    tracker_id: np.ndarray
    iscrowd: np.ndarray
    ignore: np.ndarray
    area: np.ndarray

    def __len__(self) -> int:
        return int(self.frame_index.shape[0])

    def select(self, index: Any) -> Boxes:
        """Rows by boolean mask or indices, e.g. one class before tracking metrics."""
        return Boxes(self.frame_index[index], self.xyxy[index], self.class_id[index], self.confidence[index],
                     self.tracker_id[index], self.iscrowd[index], self.ignore[index], self.area[index])

    @classmethod
    def from_arrays(
        cls,
        frame_index: Any,
        class_id: Any,
        *,
        xyxy: Any = None,
        xywh: Any = None,
        confidence: Any = None,
        tracker_id: Any = None,
        iscrowd: Any = None,
        ignore: Any = None,
        area: Any = None,
    ) -> Boxes:
        """Validate shapes once so metric code can trust the columns."""
        if (xyxy is None) == (xywh is None):
            raise ValueError("give exactly one of xyxy or xywh")
        frame_a = np.asarray(frame_index, dtype=np.int64).reshape(-1)
        n = frame_a.shape[0]
        raw = np.asarray(xyxy if xyxy is not None else xywh, dtype=np.float64).reshape(n, 4)
        if xywh is not None:
            box = np.empty_like(raw)
            box[:, :2] = raw[:, :2]
            box[:, 2:] = raw[:, :2] + raw[:, 2:]
        else:
            box = raw.copy()
        if np.any(box[:, 2] < box[:, 0]) or np.any(box[:, 3] < box[:, 1]):
            raise ValueError("boxes must have x2 >= x1 and y2 >= y1")
        box_area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
        crowd = _col(iscrowd, n, bool, False)
        return cls(
            frame_index=frame_a,
            xyxy=box,
            class_id=_col(class_id, n, np.int64, 0),
            confidence=_col(confidence, n, np.float64, 1.0),
            tracker_id=_col(tracker_id, n, np.int64, -1),
            iscrowd=crowd,
            ignore=_col(ignore, n, bool, False) | crowd,
            area=box_area if area is None else _col(area, n, np.float64, 0.0),
        )

    @classmethod
    def empty(cls) -> Boxes:
        return cls.from_arrays(np.zeros(0), np.zeros(0), xyxy=np.zeros((0, 4)))

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], box_format: str = "xywh") -> Boxes:
        """Build from dicts such as COCO annotations or result entries.

        Keys: ``image_id`` or ``frame``; ``bbox`` (in ``box_format``: "xywh" or "xyxy");
        ``category_id`` or ``class_id``; optional ``score``, ``track_id``, ``iscrowd``,
        ``ignore``, ``area``.
        """
        recs = list(records)
        if box_format not in ("xywh", "xyxy"):
            raise ValueError("box_format must be 'xywh' or 'xyxy'")
        frame = [r["image_id"] if "image_id" in r else r["frame"] for r in recs]
        cls_id = [r["category_id"] if "category_id" in r else r["class_id"] for r in recs]
        boxes = np.asarray([r["bbox"] for r in recs], dtype=np.float64).reshape(len(recs), 4)

        def opt(key: str, default: Any) -> list[Any] | None:
            if not any(key in r for r in recs):
                return None
            return [r.get(key, default) for r in recs]

        kwargs = {box_format: boxes}
        return cls.from_arrays(
            frame,
            cls_id,
            confidence=opt("score", 1.0),
            tracker_id=opt("track_id", -1),
            iscrowd=opt("iscrowd", 0),
            ignore=opt("ignore", 0),
            area=opt("area", None) if all("area" in r for r in recs) else None,
            **kwargs,
        )


@dataclass(frozen=True)
class CocoGroundTruth:
    """Ground truth plus the image and category universe it defines (COCO semantics)."""

    boxes: Boxes
    image_ids: np.ndarray
    category_ids: np.ndarray


def from_coco(dataset: Mapping[str, Any]) -> CocoGroundTruth:
    """Read a COCO instances dict: every listed image and category takes part in evaluation.

    Note COCO's own evaluator treats ``ignore`` as equal to ``iscrowd``; so do we here, which
    keeps results identical to it.
    """
    anns = [dict(a) for a in dataset.get("annotations", [])]
    for a in anns:
        a.pop("ignore", None)
    boxes = Boxes.from_records(anns, "xywh") if anns else Boxes.empty()
    image_ids = np.unique(np.asarray([im["id"] for im in dataset.get("images", [])], dtype=np.int64))
    category_ids = np.unique(np.asarray([c["id"] for c in dataset.get("categories", [])], dtype=np.int64))
    return CocoGroundTruth(boxes, image_ids, category_ids)


def from_coco_results(results: Sequence[Mapping[str, Any]]) -> Boxes:
    """Read COCO detection results (``bbox`` in xywh); area comes from the box like COCO does."""
    if not results:
        return Boxes.empty()
    return Boxes.from_records([{k: v for k, v in r.items() if k != "area"} for r in results], "xywh")


def box_iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU between xyxy boxes ``a`` (detections) and ``b`` (ground truth), broadcasting.

    Against a crowd box the union is the detection's own area, so that a detection covering
    part of a crowd is not penalised for the rest of it.
    """
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    da = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    ga = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = da + ga - inter
    if crowd is not None:
        union = np.where(crowd, da + 0.0 * ga, union)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out
