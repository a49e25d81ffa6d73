"""Boxes drawn on a frame, for previews and reports."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: BGR colour per project class, stable across runs.
PALETTE = ((60, 180, 255), (80, 220, 80), (255, 120, 60), (220, 80, 220), (40, 220, 220), (200, 200, 200))


def draw_detections(image: np.ndarray, boxes: Sequence[Sequence[float]], labels: Sequence[str],
                    confidences: Sequence[float], track_ids: Sequence[int | None] | None = None,
                    classes: Sequence[str] = ()) -> np.ndarray:
    """A copy of ``image`` with each box, its class, confidence and track id."""
    out = image.copy()
    track_ids = track_ids if track_ids is not None else [None] * len(boxes)
    for box, label, conf, tid in zip(boxes, labels, confidences, track_ids, strict=True):
        colour = PALETTE[classes.index(label) % len(PALETTE)] if label in classes else PALETTE[-1]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        text = f"{label} {conf:.2f}" + (f" #{tid}" if tid is not None else "")
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(out, (x1, max(0, y1 - th - 6)), (x1 + tw + 4, max(th + 6, y1)), colour, -1)
        cv2.putText(out, text, (x1 + 2, max(th + 2, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out
