"""Detections to stored rows and back: what the detection job writes is what evaluation reads."""
from __future__ import annotations

import numpy as np

from vision.detections import Detections


def test_rows_round_trip_with_per_frame_indices_and_exact_values():
    batch = Detections.merge([
        Detections.from_arrays([[1.004, 2, 30.5, 40], [5, 6, 7, 8]], [0.9, 0.123456], [1, 0], frame_index=3,
                               timestamp=0.1, tracker_id=np.array([4, -1])),
        Detections.from_arrays([[9, 9, 19, 29]], [0.5], [1], frame_index=7, timestamp=0.25),
    ])
    rows = batch.to_rows(("car", "pedestrian"), test_session_id="ts")
    assert [(r["frame_number"], r["detection_index"]) for r in rows] == [(3, 0), (3, 1), (7, 0)]
    assert rows[0] == {"test_session_id": "ts", "frame_number": 3, "detection_index": 0, "timestamp": 0.1,
                       "class_label": "pedestrian", "confidence": 0.9, "x1": 1.0, "y1": 2.0, "x2": 30.5,
                       "y2": 40.0, "track_id": 4}
    assert rows[1]["track_id"] is None and rows[1]["confidence"] == 0.12346
    back = Detections.from_rows([tuple(r[c] for c in Detections.ROW_COLUMNS) for r in rows], {"pedestrian": 1})
    assert back.xyxy.dtype == np.float64 and back.confidence.dtype == np.float64
    assert back.class_id.tolist() == [1, -1, 1]  # a label outside the index is -1
    assert back.tracker_id.tolist() == [4, -1, -1] and back.frame_index.tolist() == [3, 3, 7]
    assert back.confidence.tolist() == [0.9, 0.12346, 0.5]
    assert back[back.class_id >= 0].xyxy.dtype == np.float64  # masks keep the precision
    assert len(Detections.from_rows([], {})) == 0 and Detections.empty().to_rows(()) == []
