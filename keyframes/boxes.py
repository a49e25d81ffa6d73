"""Box checks shared by the API's validation and the consistency checks."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def box_errors(box: Sequence[float], width: int, height: int) -> list[str]:
    """Why a box is unusable on a ``width`` x ``height`` frame (empty list when it is fine)."""
    if len(box) != 4:
        return ["a box has four coordinates x1, y1, x2, y2"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        return ["coordinates must be finite numbers"]
    x1, y1, x2, y2 = box
    errors = []
    if x2 <= x1 or y2 <= y1:
        errors.append(f"box has no positive size (x2 must exceed x1 and y2 exceed y1, got {list(box)})")
    elif x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        errors.append(f"box {list(box)} does not overlap the {width}x{height} frame")
    return errors


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two ``[N, 4]`` arrays of xyxy boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
