"""One columnar container for detections, so every stage passes arrays, not per-box objects."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Parallel arrays, one row per box; boxes become database rows only at the edge."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray
    frame_index: np.ndarray
    timestamp: np.ndarray

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
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
        )

    def for_frame(self, frame_index: int) -> Detections:
        return self[self.frame_index == frame_index]
