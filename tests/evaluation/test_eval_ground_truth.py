"""Ground truth built from keyframed annotations, then evaluated against a detector with known output."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import Boxes, evaluate_coco, evaluate_tracking, ground_truth_boxes
from keyframes import Keyframe, Timeline, Track


def _tracks():
    return [
        Track(1, "", 0.0, 1.9, None, (Keyframe(0, (0, 0, 20, 40)), Keyframe(19, (95, 0, 115, 40))), class_id=0),
        Track(2, "", 1.0, 1.4, (50, 50, 80, 90), class_id=1),
        Track(3, "", 0.0, 1.0, (5, 5, 9, 9), class_id=0, validation_status="rejected"),
        Track(4, "", 0.5, 0.7, (200, 10, 230, 60), class_id=0, validation_status="pending"),
    ]


def test_boxes_follow_keyframes_on_the_real_timeline_and_statuses_are_respected():
    timeline = Timeline.constant(20, 10.0)
    gt = ground_truth_boxes(_tracks(), timeline)
    assert sorted(set(gt.tracker_id.tolist())) == [1, 2]  # rejected and pending left out
    one = gt.select(gt.tracker_id == 1)
    assert one.frame_index.tolist() == list(range(20))
    assert one.xyxy[10].tolist() == pytest.approx([50, 0, 70, 40])
    assert gt.select(gt.tracker_id == 2).frame_index.tolist() == [10, 11, 12, 13, 14]
    with_pending = ground_truth_boxes(_tracks(), timeline, include_pending=True)
    assert 4 in set(with_pending.tracker_id.tolist())
    only = ground_truth_boxes(_tracks(), timeline, frames=[0, 10])
    assert sorted(only.frame_index.tolist()) == [0, 10, 10]
    empty = ground_truth_boxes([], timeline)
    assert len(empty) == 0


def test_a_detector_that_reproduces_the_ground_truth_scores_perfectly():
    timeline = Timeline.constant(20, 10.0)
    gt = ground_truth_boxes(_tracks(), timeline)
    dt = Boxes.from_arrays(gt.frame_index, gt.class_id, xyxy=gt.xyxy.copy(), confidence=np.full(len(gt), 0.9),
                           tracker_id=gt.tracker_id + 100)
    coco = evaluate_coco(gt, dt)
    assert coco.overall.AP50 == pytest.approx(1.0) and coco.overall.AP == pytest.approx(1.0)
    tracking = evaluate_tracking(gt, dt)
    assert tracking.mota == pytest.approx(1.0) and tracking.num_switches == 0
