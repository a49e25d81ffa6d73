"""Evaluation engine: detection (COCO, PASCAL VOC), operating-point, tracking (CLEAR-MOT,
identity, HOTA), temporal metrics, and the MOTChallenge protocol.

Pure library (numpy, scipy): inputs are ``Boxes`` columns (xyxy), outputs are dataclasses
whose ``to_dict()`` is JSON-safe (no NaN: COCO cells use -1 like COCOeval, other undefined
ratios are None). Validation runs over a test set of videos: ``runs`` (per-video matches,
aggregation, slices, intervals, paired comparison) and ``gates``.
"""
from .boxes import NO_SCORE, Boxes, CocoGroundTruth, at_threshold, box_iou, from_coco, from_coco_results
from .coco import CocoParams, CocoResult, CocoStats, evaluate_coco
from .gates import evaluate_gates, validate_gates
from .ground_truth import ground_truth_boxes
from .hota import HotaResult, evaluate_hota
from .motchallenge import evaluate_clear, preprocess
from .operating import ClassOperatingPoint, OperatingPointResult, evaluate_operating_point
from .runs import RunError, VideoMatches, aggregate, compare_runs, slice_keys, video_matches
from .temporal import ClassTemporalSummary, ObjectTemporal, TemporalResult, evaluate_temporal
from .tracking import TrackingResult, evaluate_tracking, iou_distance
from .voc import VocResult, evaluate_voc

__all__ = [
    "NO_SCORE",
    "Boxes",
    "ClassOperatingPoint",
    "ClassTemporalSummary",
    "CocoGroundTruth",
    "CocoParams",
    "CocoResult",
    "CocoStats",
    "HotaResult",
    "ObjectTemporal",
    "RunError",
    "OperatingPointResult",
    "TemporalResult",
    "TrackingResult",
    "VideoMatches",
    "VocResult",
    "aggregate",
    "at_threshold",
    "box_iou",
    "compare_runs",
    "evaluate_clear",
    "evaluate_coco",
    "evaluate_gates",
    "evaluate_hota",
    "evaluate_operating_point",
    "evaluate_temporal",
    "evaluate_tracking",
    "evaluate_voc",
    "from_coco",
    "from_coco_results",
    "ground_truth_boxes",
    "iou_distance",
    "preprocess",
    "slice_keys",
    "validate_gates",
    "video_matches",
]
