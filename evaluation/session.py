"""Every metric of one test session at once, keyed by class name, and side-by-side comparison.

The numbers come from the metric modules of this package; this module only chooses the
universe (evaluated frames, classes), runs them with one set of parameters and shapes the
output as JSON-safe dicts keyed by class *name*, which is what is stored and served.
COCO cells keep COCOeval's -1 for "no ground truth to judge by"; other undefined values are
None.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .boxes import NO_SCORE, Boxes, at_threshold
from .coco import evaluate_coco
from .hota import HotaResult, class_averaged, combine_hota, evaluate_hota
from .motchallenge import PROTOCOLS, evaluate_clear, preprocess
from .operating import evaluate_operating_point
from .temporal import evaluate_temporal
from .tracking import TrackingResult, evaluate_tracking
from .voc import METHODS, evaluate_voc

BACKGROUND = "background"


def _named(per_class: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {names[int(k)]: v for k, v in per_class.items()}


def _tracking_sum(parts: Sequence[TrackingResult]) -> dict[str, Any]:
    """Totals over classes the way motmetrics' OVERALL row is formed: sum the counts, then divide."""
    keys = ("idtp", "idfp", "idfn", "num_switches", "num_fragmentations", "num_matches", "num_misses",
            "num_false_positives", "num_objects", "num_predictions", "num_unique_objects", "mostly_tracked",
            "partially_tracked", "mostly_lost")
    tot = {k: int(sum(getattr(p, k) for p in parts)) for k in keys}
    # motp is averaged over every matched pair, switches included (motmetrics' num_detections).
    detections = sum(p.num_matches + p.num_switches for p in parts)
    dist = sum((p.motp or 0.0) * (p.num_matches + p.num_switches) for p in parts)

    def div(a: float, b: float) -> float | None:
        return None if b == 0 else float(a) / float(b)

    idtp, idfp, idfn = tot["idtp"], tot["idfp"], tot["idfn"]
    return {
        "mota": None if tot["num_objects"] == 0 else
        1.0 - (tot["num_misses"] + tot["num_false_positives"] + tot["num_switches"]) / tot["num_objects"],
        "motp": div(dist, detections),
        "idf1": div(2 * idtp, 2 * idtp + idfp + idfn), "idp": div(idtp, idtp + idfp), "idr": div(idtp, idtp + idfn),
        **tot,
    }


def unique_track_ids_per_frame(boxes: Boxes) -> bool:
    """Tracking metrics need every track id at most once per frame (per class)."""
    tracked = boxes.tracker_id >= 0
    if not tracked.any():
        return True
    key = np.stack([boxes.frame_index[tracked], boxes.class_id[tracked], boxes.tracker_id[tracked]], axis=1)
    return np.unique(key, axis=0).shape[0] == key.shape[0]


def evaluate_session(
    gt: Boxes,
    dt: Boxes,
    class_names: Sequence[str],
    frames: np.ndarray,
    timestamps: Mapping[int, float] | np.ndarray | None,
    score_threshold: float,
    iou_threshold: float = 0.5,
    tracking: bool = False,
    protocol: str = "default",
    gt_distractor: np.ndarray | None = None,
    gt_zero_marked: np.ndarray | None = None,
    voc_pixel_inclusive: bool = False,
) -> dict[str, Any]:
    """COCO (all scores), VOC AP, operating point, temporal and (optionally) tracking metrics.

    ``class_id`` in both inputs indexes ``class_names``; ground-truth rows with class -1 are of
    classes not evaluated (the MOTChallenge protocol still matches detections against them).
    ``frames`` are the frames the model ran on (a frame without ground truth still counts its
    detections as false positives). Tracking compares per class and sums the counts for the
    overall row; it uses detections at the operating threshold and ``iou_threshold``; HOTA
    comes with it.

    ``protocol="motchallenge"`` first applies the benchmark's preprocessing
    (:func:`evaluation.motchallenge.preprocess`, flags ``gt_distractor`` / ``gt_zero_marked``)
    to all detections for the detection metrics and to the detections at the threshold for the
    tracking ones, and computes CLEAR-MOT with TrackEval's semantics; ``default`` counts every
    row and computes CLEAR-MOT with py-motmetrics' semantics.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
    names = list(class_names)
    cats = np.arange(len(names))
    n = len(gt)
    distractor = np.zeros(n, bool) if gt_distractor is None else np.asarray(gt_distractor, dtype=bool)
    zero = np.zeros(n, bool) if gt_zero_marked is None else np.asarray(gt_zero_marked, dtype=bool)
    gt_all, dt_all = gt, dt
    proto: dict[str, Any] = {"name": protocol}
    if protocol == "motchallenge":
        pre = preprocess(gt_all, distractor, zero, dt)
        gt, dt = gt_all.select(pre.gt_keep & (gt_all.class_id >= 0)), dt.select(pre.dt_keep)
        proto.update(ground_truth_zero_marked=int((zero & ~distractor).sum()),
                     ground_truth_distractors=int(distractor.sum()), detections_removed=pre.removed_detections)
    else:
        gt = gt_all.select(gt_all.class_id >= 0)
    notes = []
    no_score = int((dt.confidence == NO_SCORE).sum())
    if no_score:
        notes.append(f"{no_score} detection(s) have no score (-1): ranked below every scored detection in AP, "
                     "kept at every score threshold")
    image_ids = np.union1d(np.asarray(frames, dtype=np.int64), dt.frame_index)
    coco = evaluate_coco(gt, dt, image_ids, cats).to_dict()
    op = evaluate_operating_point(gt, dt, score_threshold, iou_threshold, image_ids, cats).to_dict()
    temporal = evaluate_temporal(gt, dt, timestamps, score_threshold, iou_threshold).to_dict()
    labels = [names[i] if i >= 0 else BACKGROUND for i in op["confusion_matrix"]["labels"]]
    voc = {}
    for method in METHODS:
        v = evaluate_voc(gt, dt, iou_threshold, method, voc_pixel_inclusive, cats).to_dict()
        voc[method] = {**v, "per_class": _named(v["per_class"], names)}
    out: dict[str, Any] = {
        "protocol": proto,
        "notes": notes,
        "coco": {"overall": coco["overall"], "per_class": _named(coco["per_class"], names),
                 "num_frames": coco["num_images"]},
        "voc": voc,
        "operating_point": {**{k: v for k, v in op.items() if k not in ("per_class", "confusion_matrix")},
                            "per_class": {names[int(k)]: {kk: vv for kk, vv in v.items() if kk != "class_id"}
                                          for k, v in op["per_class"].items()},
                            "confusion_matrix": {"labels": labels, "matrix": op["confusion_matrix"]["matrix"]}},
        "temporal": _temporal(temporal, names),
        "tracking": None,
        "hota": None,
    }
    if tracking:
        kept = dt_all.select(at_threshold(dt_all.confidence, score_threshold))
        if protocol == "motchallenge":
            # The tracker's output is what the benchmark preprocesses: the detections at the threshold.
            pre = preprocess(gt_all, distractor, zero, kept)
            kept = kept.select(pre.dt_keep)
            proto["tracking_detections_removed"] = pre.removed_detections
        parts: dict[str, TrackingResult] = {}
        hota: dict[str, HotaResult] = {}
        for c, name in enumerate(names):
            g, h = gt.select(gt.class_id == c), kept.select(kept.class_id == c)
            if len(g) or len(h):
                if protocol == "motchallenge":
                    parts[name] = evaluate_clear(g, h, threshold=iou_threshold)
                else:
                    parts[name] = evaluate_tracking(g, h, max_distance=1.0 - iou_threshold)
                hota[name] = evaluate_hota(g, h)
        out["tracking"] = {"semantics": "TrackEval" if protocol == "motchallenge" else "py-motmetrics",
                           "overall": _tracking_sum(list(parts.values())),
                           "per_class": {k: v.to_dict() for k, v in parts.items()}}
        out["hota"] = {"alphas": "0.05:0.05:0.95", "overall": combine_hota(list(hota.values())).to_dict(),
                       "class_averaged": class_averaged(hota),
                       "per_class": {k: v.to_dict(per_alpha=False) for k, v in hota.items()}}
    return out


def _temporal(temporal: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    objects = []
    for o in temporal["objects"]:
        o = dict(o)
        o["class_label"] = names[o.pop("class_id")]
        objects.append(o)
    per_class = {}
    for k, v in temporal["per_class"].items():
        v = dict(v)
        v.pop("class_id")
        per_class[names[int(k)]] = v
    lat = [o["latency_seconds"] for o in objects if o["latency_seconds"] is not None]
    overall = {
        "objects": len(objects),
        "missed_objects": sum(o["first_detected_frame"] is None for o in objects),
        "median_latency_seconds": float(np.percentile(lat, 50)) if lat else None,
        "p90_latency_seconds": float(np.percentile(lat, 90)) if lat else None,
        "mean_detected_share": float(np.mean([o["detected_share"] for o in objects])) if objects else None,
    }
    return {"overall": overall, "per_class": per_class, "objects": objects}


# ------------------------------------------------------------------------------ comparison

#: (metric path, higher is better) for the side-by-side table; per-class rows are added per class.
SUMMARY_METRICS: tuple[tuple[str, bool], ...] = (
    *((f"coco.overall.{k}", True) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100",
                                            "ARs", "ARm", "ARl")),
    ("operating_point.precision", True), ("operating_point.recall", True), ("operating_point.f1", True),
    ("operating_point.tp", True), ("operating_point.fp", False), ("operating_point.fn", False),
    ("temporal.overall.missed_objects", False), ("temporal.overall.median_latency_seconds", False),
    ("temporal.overall.p90_latency_seconds", False), ("temporal.overall.mean_detected_share", True),
    ("tracking.overall.mota", True), ("tracking.overall.motp", False), ("tracking.overall.idf1", True),
    ("tracking.overall.num_switches", False), ("tracking.overall.num_fragmentations", False),
    ("tracking.overall.mostly_tracked", True), ("tracking.overall.mostly_lost", False),
    *((f"hota.overall.{k}", True) for k in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")),
    ("voc.all_point.mAP", True), ("voc.11_point.mAP", True),
)
PER_CLASS_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("coco.per_class", "AP", True), ("coco.per_class", "AP50", True), ("operating_point.per_class", "precision", True),
    ("operating_point.per_class", "recall", True), ("operating_point.per_class", "f1", True),
    ("temporal.per_class", "median_latency_seconds", False), ("temporal.per_class", "missed_objects", False),
    ("hota.per_class", "HOTA", True), ("voc.all_point.per_class", "AP", True),
)


def _get(metrics: Mapping[str, Any], path: Sequence[str]) -> Any:
    cur: Any = metrics
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _value(metrics: Mapping[str, Any], path: Sequence[str]) -> float | None:
    v = _get(metrics, path)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    # COCO's -1 means "nothing to judge by": not a number to compare.
    if path[0] == "coco" and v == -1:
        return None
    return float(v)


#: Names a person reads in a comparison or a report, by the last parts of a metric's path.
METRIC_LABELS: dict[str, str] = {
    "coco.overall.AP": "AP (IoU 0.50:0.95)", "coco.overall.AP50": "AP at IoU 0.50",
    "coco.overall.AP75": "AP at IoU 0.75", "coco.overall.APs": "AP, small objects",
    "coco.overall.APm": "AP, medium objects", "coco.overall.APl": "AP, large objects",
    "coco.overall.AR1": "recall, 1 detection per frame", "coco.overall.AR10": "recall, 10 detections per frame",
    "coco.overall.AR100": "recall, 100 detections per frame", "coco.overall.ARs": "recall, small objects",
    "coco.overall.ARm": "recall, medium objects", "coco.overall.ARl": "recall, large objects",
    "operating_point.precision": "precision", "operating_point.recall": "recall", "operating_point.f1": "F1",
    "operating_point.tp": "true positives", "operating_point.fp": "false positives",
    "operating_point.fn": "false negatives (missed boxes)",
    "temporal.overall.missed_objects": "objects never detected",
    "temporal.overall.median_latency_seconds": "median detection latency (s)",
    "temporal.overall.p90_latency_seconds": "90th percentile detection latency (s)",
    "temporal.overall.mean_detected_share": "share of each object's frames detected",
    "tracking.overall.mota": "MOTA", "tracking.overall.motp": "MOTP (mean 1 - IoU of matches)",
    "tracking.overall.idf1": "IDF1", "tracking.overall.num_switches": "identity switches",
    "tracking.overall.num_fragmentations": "track fragmentations",
    "tracking.overall.mostly_tracked": "objects mostly tracked", "tracking.overall.mostly_lost": "objects mostly lost",
    "hota.overall.HOTA": "HOTA", "hota.overall.DetA": "HOTA detection accuracy (DetA)",
    "hota.overall.AssA": "HOTA association accuracy (AssA)", "hota.overall.LocA": "HOTA localisation accuracy (LocA)",
    "hota.overall.DetRe": "HOTA detection recall", "hota.overall.DetPr": "HOTA detection precision",
    "hota.overall.AssRe": "HOTA association recall", "hota.overall.AssPr": "HOTA association precision",
    "voc.all_point.mAP": "VOC mAP (all points)", "voc.11_point.mAP": "VOC mAP (11 points)",
}
PER_CLASS_LABELS: dict[tuple[str, str], str] = {
    ("coco.per_class", "AP"): "AP (IoU 0.50:0.95)", ("coco.per_class", "AP50"): "AP at IoU 0.50",
    ("operating_point.per_class", "precision"): "precision", ("operating_point.per_class", "recall"): "recall",
    ("operating_point.per_class", "f1"): "F1",
    ("temporal.per_class", "median_latency_seconds"): "median detection latency (s)",
    ("temporal.per_class", "missed_objects"): "objects never detected", ("hota.per_class", "HOTA"): "HOTA",
    ("voc.all_point.per_class", "AP"): "VOC AP (all points)",
}


def compare_metrics(results: Sequence[Mapping[str, Any]], reference: int = 0) -> list[dict[str, Any]]:
    """One row per metric: the value of every result, its difference to the reference, the best.

    ``differences[i]`` is ``values[i] - values[reference]`` (None when either is undefined);
    ``best`` is the index of the single best defined value, None when no value is defined or
    when several share the best value (``tied`` then lists them: a tie is nobody's win).
    ``label`` is the metric's name for people.
    """
    if not 0 <= reference < max(1, len(results)):
        raise ValueError("reference must index one of the results")
    classes: list[str] = []
    for r in results:
        for name in (_get(r, ("coco", "per_class")) or {}):
            if name not in classes:
                classes.append(name)
    rows: list[tuple[tuple[str, ...], bool, str]] = [
        (tuple(p.split(".")), hib, METRIC_LABELS.get(p, p)) for p, hib in SUMMARY_METRICS]
    for name in classes:
        rows += [((*base.split("."), name, key), hib, f"{name}: {PER_CLASS_LABELS.get((base, key), key)}")
                 for base, key, hib in PER_CLASS_METRICS]
    out = []
    for path, higher, label in rows:
        values = [_value(r, path) for r in results]
        if all(v is None for v in values):
            continue
        base = values[reference]
        diffs = [None if v is None or base is None else v - base for v in values]
        defined = [v for v in values if v is not None]
        top = max(defined) if higher else min(defined)
        leaders = [i for i, v in enumerate(values) if v is not None and abs(v - top) <= 1e-12]
        best = leaders[0] if len(leaders) == 1 else None
        out.append({"metric": ".".join(path), "label": label, "higher_is_better": higher, "values": values,
                    "differences": diffs, "best": best, "tied": leaders if len(leaders) > 1 else []})
    return out
