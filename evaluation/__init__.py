"""Evaluation engine: detection, operating-point, tracking and temporal metrics.

Pure library (numpy, scipy): inputs are ``Boxes`` columns (xyxy), outputs are dataclasses
whose ``to_dict()`` is JSON-safe (no NaN: COCO cells use -1 like COCOeval, other undefined
ratios are None). Validation runs over a test set of videos: ``runs`` (per-video matches,
aggregation, slices, intervals, paired comparison) and ``gates``.
"""
from .boxes import Boxes, CocoGroundTruth, box_iou, from_coco, from_coco_results
from .coco import CocoParams, CocoResult, CocoStats, evaluate_coco
from .gates import evaluate_gates, validate_gates
from .ground_truth import AnnotationTrack, ground_truth_boxes
from .operating import ClassOperatingPoint, OperatingPointResult, evaluate_operating_point
from .runs import RunError, VideoMatches, aggregate, compare_runs, slice_keys, video_matches
from .temporal import ClassTemporalSummary, ObjectTemporal, TemporalResult, evaluate_temporal
from .tracking import TrackingResult, evaluate_tracking, iou_distance

__all__ = [
    "AnnotationTrack",
    "Boxes",
    "ClassOperatingPoint",
    "ClassTemporalSummary",
    "CocoGroundTruth",
    "CocoParams",
    "CocoResult",
    "CocoStats",
    "ObjectTemporal",
    "RunError",
    "OperatingPointResult",
    "TemporalResult",
    "TrackingResult",
    "VideoMatches",
    "aggregate",
    "box_iou",
    "compare_runs",
    "evaluate_coco",
    "evaluate_gates",
    "evaluate_operating_point",
    "evaluate_temporal",
    "evaluate_tracking",
    "from_coco",
    "from_coco_results",
    "ground_truth_boxes",
    "iou_distance",
    "slice_keys",
    "validate_gates",
    "video_matches",
]
