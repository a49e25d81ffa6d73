"""One columnar container for detections, so every stage passes arrays, not per-box objects."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class Detections:
    """Parallel arrays, one row per box; boxes become database rows only at the edge."""

    #: The columns of a stored detection row that :meth:`from_rows` reads, in this order.
    ROW_COLUMNS: ClassVar[tuple[str, ...]] = ("frame_number", "timestamp", "class_label", "confidence",
                                              "x1", "y1", "x2", "y2", "track_id")

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray
    frame_index: np.ndarray
    timestamp: np.ndarray
    #: Boxes and scores are float32 as models give them; float64 when read back from stored rows,
    #: which hold them exactly (imported results keep their full precision).
    float_dtype: type = field(default=np.float32, repr=False)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=self.float_dtype).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=self.float_dtype).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
        self.frame_index = np.asarray(self.frame_index, dtype=np.int64).reshape(-1)
        self.timestamp = np.asarray(self.timestamp, dtype=np.float64).reshape(-1)
        for name in ("confidence", "class_id", "tracker_id", "frame_index", "timestamp"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, xyxy has {n}")

    @classmethod
    def empty(cls) -> Detections:
        return cls.from_arrays(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0))

    @classmethod
    def from_arrays(
        cls,
        xyxy: np.ndarray,
        confidence: np.ndarray,
        class_id: np.ndarray,
        frame_index: int = -1,
        timestamp: float = float("nan"),
        tracker_id: np.ndarray | None = None,
    ) -> Detections:
        """Build one frame's detections; the frame columns are broadcast from scalars."""
        xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(xyxy)
        return cls(
            xyxy=xyxy,
            confidence=confidence,
            class_id=class_id,
            tracker_id=np.full(n, -1) if tracker_id is None else tracker_id,
            frame_index=np.full(n, frame_index),
            timestamp=np.full(n, timestamp, dtype=np.float64),
        )

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]], class_index: Mapping[str, int]) -> Detections:
        """Stored rows (tuples in :attr:`ROW_COLUMNS` order) as a batch, boxes and scores in float64;
        a label outside ``class_index`` gets class id -1, a missing track id -1."""
        if not rows:
            return cls.empty()
        frame, timestamp, label, confidence, x1, y1, x2, y2, track = zip(*rows, strict=True)
        return cls(
            xyxy=np.stack([np.asarray(c, dtype=np.float64) for c in (x1, y1, x2, y2)], axis=1),
            confidence=np.asarray(confidence, dtype=np.float64),
            class_id=np.fromiter((class_index.get(lbl, -1) for lbl in label), dtype=np.int64, count=len(label)),
            tracker_id=np.asarray([-1 if t is None else t for t in track], dtype=np.int64),
            frame_index=np.asarray(frame, dtype=np.int64),
            timestamp=np.asarray(timestamp, dtype=np.float64),
            float_dtype=np.float64,
        )

    def to_rows(self, names: Sequence[str], **fixed: Any) -> list[dict[str, Any]]:
        """One row per box, as stored: ``class_label`` from ``names``, boxes to 0.01 px, scores to
        five places, no track id as None, ``detection_index`` counting within each frame;
        ``fixed`` columns (the test session) go on every row."""
        boxes = self.xyxy.astype(float).round(2).tolist()
        index = np.zeros(len(self), dtype=np.int64)
        if len(self):
            order = np.argsort(self.frame_index, kind="stable")
            frames = self.frame_index[order]
            starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
            index[order] = np.arange(len(self)) - np.repeat(starts, np.diff(np.r_[starts, len(self)]))
        return [
            {**fixed, "frame_number": int(f), "detection_index": int(i), "timestamp": float(ts),
             "class_label": names[int(c)], "confidence": round(float(s), 5),
             "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "track_id": int(t) if t >= 0 else None}
            for f, i, ts, b, s, c, t in zip(self.frame_index, index, self.timestamp, boxes, self.confidence,
                                            self.class_id, self.tracker_id, strict=True)
        ]

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=np.concatenate([p.tracker_id for p in parts]),
            frame_index=np.concatenate([p.frame_index for p in parts]),
            timestamp=np.concatenate([p.timestamp for p in parts]),
            float_dtype=np.result_type(*(p.float_dtype for p in parts)).type,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | np.ndarray | list) -> Detections:
        """Mask, slice or index rows; an int keeps the 2-D shape so the result is still a batch."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=self.tracker_id[index],
            frame_index=self.frame_index[index],
            timestamp=self.timestamp[index],
            float_dtype=self.float_dtype,
        )

    def for_frame(self, frame_index: int) -> Detections:
        return self[self.frame_index == frame_index]
