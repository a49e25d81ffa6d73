"""Evaluation jobs: a test session's detections against its ground-truth annotation session.

The job loads the detections in bulk as columns, interpolates the ground truth to every
evaluated frame, runs every metric (``evaluation.session``), draws the report plots and stores
both. ``test_sessions.metrics`` holds::

    {"evaluation": {"job_id", "parameters", "updated_at"},   # the latest request
     "results": {...} | None}                              # the latest completed one

so a new evaluation (another IoU threshold or class subset) never hides the previous numbers
while it runs. The request's status and error are its job's (the jobs row, written by the
lifecycle alone). Only the job named in ``evaluation.job_id`` may store numbers: an older job
that finishes after a newer request leaves its numbers in its own job result only.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from celery import Task
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import bindings
from evaluation import Boxes, ground_truth_boxes
from evaluation.boxes import NO_SCORE, at_threshold
from evaluation.motchallenge import BENCHMARKS, PROTOCOLS, distractor_classes, ground_truth_flags
from evaluation.session import evaluate_session, unique_track_ids_per_frame
from formats.mot import CLASS_ATTRIBUTE, IGNORE_ATTRIBUTE
from keyframes import Timeline, Track
from models import (
    AnnotationSession,
    DetectionEvent,
    Job,
    Project,
    TestSession,
    Video,
    VideoAnnotation,
    utcnow,
)
from storage import Store, store

from . import runtime
from .app import app
from .dispatch import create_job
from .lifecycle import JobCancelled, JobContext, JobLost, run_job

DEFAULT_IOU = 0.5
REPORT_DIR = "reports"


class EvaluationError(ValueError):
    """The test session cannot be evaluated as asked (no ground truth, wrong video...)."""


# ------------------------------------------------------------------------------ submitting


def evaluation_params(test_session: TestSession, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job's parameters: what was asked, else the test session's own settings, else defaults.

    ``score_threshold`` (the operating point) defaults to the session's
    ``config.confidence_threshold``, then ``model.confidence_threshold``, then 0: every stored
    detection counts (the detection job stores only those above the model's threshold).
    """
    params = dict(params or {})
    iou = float(params.get("iou_threshold", DEFAULT_IOU))
    if not 0.0 < iou <= 1.0:
        raise EvaluationError("iou_threshold must be in (0, 1]")
    config, model = test_session.config or {}, test_session.model or {}
    if params.get("score_threshold") is not None:
        score, source = float(params["score_threshold"]), "request"
    elif isinstance(config.get("confidence_threshold"), int | float):
        score, source = float(config["confidence_threshold"]), "config"
    elif isinstance(model, dict) and isinstance(model.get("confidence_threshold"), int | float):
        score, source = float(model["confidence_threshold"]), "model"
    else:
        score, source = 0.0, "default"
    if not 0.0 <= score <= 1.0:
        raise EvaluationError("score_threshold must be in [0, 1]")
    classes = params.get("classes")
    if classes is not None:
        classes = list(dict.fromkeys(str(c) for c in classes))
        if not classes:
            raise EvaluationError("classes must name at least one class")
    include_pending = params.get("include_pending")
    if include_pending is None:
        include_pending = bool(config.get("include_pending", False))
    protocol = str(params.get("protocol") or "default")
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol must be one of {', '.join(PROTOCOLS)}")
    benchmark = str(params.get("benchmark") or "MOT17")
    if benchmark not in BENCHMARKS:
        raise EvaluationError(f"benchmark must be one of {', '.join(BENCHMARKS)}")
    min_visibility = float(params.get("min_visibility") or 0.0)
    if not 0.0 <= min_visibility <= 1.0:
        raise EvaluationError("min_visibility must be in [0, 1]")
    out = {"test_session_id": str(test_session.id), "iou_threshold": iou, "score_threshold": score,
           "score_threshold_source": source, "classes": classes, "include_pending": bool(include_pending),
           "protocol": protocol, "benchmark": benchmark, "min_visibility": min_visibility,
           "voc_pixel_inclusive": bool(params.get("voc_pixel_inclusive", False))}
    if params.get("validation_run_id"):  # one video of a validation run: its end is counted there
        out["validation_run_id"] = str(params["validation_run_id"])
    return out


def queue_evaluation(db_session: Session, test_session: TestSession, params: dict[str, Any] | None = None,
                     created_by: uuid.UUID | None = None) -> Job:
    """Add an evaluation job for ``test_session`` to the caller's transaction (the caller commits).

    After the commit, ``tasks.dispatch.dispatch(db, job)`` sends it at once; otherwise the
    outbox sweep sends it within seconds. ``params`` may hold ``iou_threshold``, ``classes``,
    ``include_pending`` and ``score_threshold``. Raises :class:`EvaluationError` when the
    session has no ground truth or a parameter is out of range.
    """
    if test_session.ground_truth_session_id is None:
        raise EvaluationError("the test session has no ground_truth_session_id")
    job_params = evaluation_params(test_session, params)
    job = create_job(db_session, "evaluation", job_params, project_id=test_session.project_id,
                     created_by=created_by if created_by is not None else test_session.created_by)
    previous = test_session.metrics or {}
    test_session.metrics = {
        "evaluation": {"job_id": str(job.id), "parameters": job_params, "updated_at": utcnow().isoformat()},
        "results": previous.get("results"),
    }
    return job


def results_ready(test_session_id: uuid.UUID, job_id: uuid.UUID | None = None) -> str | None:
    """A test session's detections are complete (detected by its job ``job_id``, or imported):
    queue its evaluation when it has ground truth. Returns the evaluation job's id, if one was
    queued. A session's own detection job completes it through the lifecycle; an import marks
    the session it filled completed here."""
    from .dispatch import dispatch

    with runtime.database().Session() as db:
        session = db.get(TestSession, test_session_id)
        if session is None:
            return None
        if job_id is None or session.job_id != job_id:
            session.status = "completed"
        session.completed_at = utcnow()
        # A validation run's session carries the run's evaluation parameters in its config.
        job = queue_evaluation(db, session, (session.config or {}).get("evaluation")) \
            if session.ground_truth_session_id is not None else None
        db.commit()
        if job is None:
            return None
        dispatch(runtime.database(), job)  # the outbox sweep sends it if the broker is away now
        return str(job.id)


# ------------------------------------------------------------------------------ loading


def load_detections(db: Session, test_session_id: uuid.UUID, class_index: dict[str, int]) -> tuple[Boxes, int]:
    """Detections as columns; classes outside ``class_index`` are dropped.

    Returns the boxes and how many stored detections were left out by the class filter.
    """
    stored = bindings.load_detections(db, test_session_id, class_index)
    keep = stored.class_id >= 0
    kept = stored[keep]
    # A box with x2 < x1 cannot match anything; normalise the order instead of failing the job.
    xyxy = np.concatenate([np.minimum(kept.xyxy[:, :2], kept.xyxy[:, 2:]),
                           np.maximum(kept.xyxy[:, :2], kept.xyxy[:, 2:])], axis=1)
    return Boxes.from_arrays(kept.frame_index, kept.class_id, xyxy=xyxy, confidence=kept.confidence,
                             tracker_id=kept.tracker_id), int((~keep).sum())


@dataclass
class GroundTruthMarks:
    """What MOT ground truth says per keyframe beyond the box: the ``conf`` 0 mark, the MOT class
    name (when it differs from the label) and the visibility; a frame takes its latest keyframe's."""

    frames: list[int] = field(default_factory=list)
    ignored: list[bool] = field(default_factory=list)
    mot_class: list[str | None] = field(default_factory=list)
    visibility: list[float | None] = field(default_factory=list)


def load_ground_truth(db: Session, annotation_session_id: uuid.UUID, class_index: dict[str, int],
                      include_pending: bool, marks: dict[int, GroundTruthMarks] | None = None
                      ) -> tuple[list[Track], list[str]]:
    """The session's usable annotations as tracks; track ids index the returned annotation ids.

    ``marks``, when given, is filled per track index with its keyframes' MOT marks."""
    statuses = ["validated", "pending"] if include_pending else ["validated"]
    tracks = bindings.load_tracks(db, VideoAnnotation.annotation_session_id == annotation_session_id,
                                  VideoAnnotation.validation_status.in_(statuses),
                                  VideoAnnotation.class_label.in_(list(class_index)), class_index=class_index)
    if marks is not None:
        for track in tracks:
            marks[track.track_id] = m = GroundTruthMarks()
            for key in track.keyframes:
                attrs = key.extras.get("attributes") if isinstance(key.extras.get("attributes"), dict) else {}
                vis = key.extras.get("visibility")
                m.frames.append(key.frame_number)
                m.ignored.append(bool(attrs.get(IGNORE_ATTRIBUTE)))
                m.mot_class.append(attrs.get(CLASS_ATTRIBUTE) if isinstance(attrs.get(CLASS_ATTRIBUTE), str)
                                   else None)
                m.visibility.append(float(vis) if isinstance(vis, int | float) else None)
    return tracks, [str(t.annotation_id) for t in tracks]


def ground_truth_marks(gt: Boxes, marks: dict[int, GroundTruthMarks], labels: Sequence[str], benchmark: str,
                       min_visibility: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(distractor, zero_marked, annotated)`` per row of ``gt`` (track ids index ``marks`` and
    ``labels``): each frame takes the marks of the track's latest keyframe at or before it;
    ``annotated`` is false on frames a track with keyframes only has by interpolation (in a MOT
    file, a gap: no row, no object)."""
    n = len(gt)
    annotated = np.ones(n, dtype=bool)
    mot_class: list[str] = [""] * n
    ignored = np.zeros(n, dtype=bool)
    visibility: list[float | None] = [None] * n
    order = np.argsort(gt.tracker_id, kind="stable")
    tids, starts = np.unique(gt.tracker_id[order], return_index=True)
    ends = np.append(starts[1:], order.size)
    for tid, a, b in zip(tids.tolist(), starts.tolist(), ends.tolist(), strict=True):
        rows = order[a:b]
        m = marks.get(tid) or GroundTruthMarks()
        if not m.frames:
            for r in rows.tolist():
                mot_class[r] = labels[tid]
            continue
        keyed = np.asarray(m.frames)
        k = np.maximum(np.searchsorted(keyed, gt.frame_index[rows], side="right") - 1, 0)
        annotated[rows] = keyed[k] == gt.frame_index[rows]
        for r, ki in zip(rows.tolist(), k.tolist(), strict=True):
            mot_class[r] = m.mot_class[ki] or labels[tid]
            ignored[r] = m.ignored[ki]
            visibility[r] = m.visibility[ki]
    return (*ground_truth_flags(mot_class, ignored, visibility, benchmark, min_visibility), annotated)


def evaluated_frames(test_session: TestSession, video: Video) -> np.ndarray:
    """The frames the model ran on: every ``frame_stride``-th frame from ``frame_from`` to
    ``frame_to`` (inclusive), as the detection job reads them."""
    config = test_session.config or {}
    stride = max(1, int(config.get("frame_stride") or 1))
    start = max(0, int(config.get("frame_from") or 0))
    end = video.frame_count if config.get("frame_to") is None else int(config["frame_to"]) + 1
    return np.arange(start, min(end, video.frame_count), stride, dtype=np.int64)


def _ranges(frames: np.ndarray) -> list[list[int]]:
    """Consecutive runs of ``frames`` (sorted) as ``[first, last]`` pairs."""
    if frames.size == 0:
        return []
    cuts = np.nonzero(np.diff(frames) != 1)[0]
    starts = np.concatenate([[0], cuts + 1])
    ends = np.concatenate([cuts, [frames.size - 1]])
    return [[int(frames[a]), int(frames[b])] for a, b in zip(starts, ends, strict=True)]


def ground_truth_basis(db: Session, test_session: TestSession, video: Video, timeline: Timeline,
                       include_pending: bool, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """What an evaluation of the session rests on, said before any number: the ground truth's
    annotations by review status, the objects, boxes and frames that count, the frames the model
    ran on and those it skipped (with the ground-truth boxes they hold, which no metric sees).

    ``empty`` is true when no ground-truth box falls on a frame the model ran on: precision and
    recall would then describe nothing, and ``remedies`` say how to get ground truth that counts.
    """
    frames = evaluated_frames(test_session, video)
    config = test_session.config or {}
    base = {"video_frames": int(video.frame_count), "evaluated": int(frames.size),
            "frame_stride": max(1, int(config.get("frame_stride") or 1)),
            "frame_from": int(config.get("frame_from") or 0),
            "frame_to": int(config["frame_to"]) if config.get("frame_to") is not None else int(video.frame_count) - 1}
    skipped = np.setdiff1d(np.arange(video.frame_count, dtype=np.int64), frames)
    base["skipped"] = int(skipped.size)
    base["skipped_ranges"] = _ranges(skipped)[:50]
    out: dict[str, Any] = {"ground_truth_session_id": None, "include_pending": bool(include_pending),
                           "classes": list(classes) if classes is not None else None,
                           "annotations": {"validated": 0, "pending": 0, "rejected": 0, "total": 0},
                           "counted_annotations": 0, "ground_truth_objects": 0, "ground_truth_boxes": 0,
                           "ground_truth_frames": 0, "boxes_on_skipped_frames": 0, "pending_boxes": 0,
                           "frames": base}
    gt_id = test_session.ground_truth_session_id
    if gt_id is not None:
        out["ground_truth_session_id"] = str(gt_id)
        stmt = (select(VideoAnnotation.validation_status, func.count())
                .where(VideoAnnotation.annotation_session_id == gt_id).group_by(VideoAnnotation.validation_status))
        if classes is not None:
            stmt = stmt.where(VideoAnnotation.class_label.in_(list(classes)))
        for status, n in db.execute(stmt):
            out["annotations"][status] = out["annotations"].get(status, 0) + int(n)
        out["annotations"]["total"] = sum(v for k, v in out["annotations"].items() if k != "total")
        labels = list(classes) if classes is not None else list(db.scalars(
            select(VideoAnnotation.class_label).distinct().where(VideoAnnotation.annotation_session_id == gt_id)))
        index = {n: i for i, n in enumerate(labels)}
        tracks, _ = load_ground_truth(db, gt_id, index, True)
        counted = [t for t in tracks if t.validation_status == "validated" or include_pending]
        out["counted_annotations"] = len(counted)
        everywhere = ground_truth_boxes(counted, timeline, None, include_pending=include_pending)
        seen = np.isin(everywhere.frame_index, frames)
        out["ground_truth_boxes"] = int(seen.sum())
        out["ground_truth_objects"] = int(np.unique(everywhere.tracker_id[seen]).size)
        out["ground_truth_frames"] = int(np.unique(everywhere.frame_index[seen]).size)
        out["boxes_on_skipped_frames"] = int((~seen).sum())
        if not include_pending:
            pending = [t for t in tracks if t.validation_status == "pending"]
            extra = ground_truth_boxes(pending, timeline, frames, include_pending=True)
            out["pending_boxes"] = len(extra)
    out["empty"] = out["ground_truth_boxes"] == 0
    out["remedies"] = _remedies(out) if out["empty"] else []
    return out


def _remedies(basis: dict[str, Any]) -> list[dict[str, str]]:
    """The ways out of an empty ground truth, most useful first."""
    counts, out = basis["annotations"], []
    if basis["ground_truth_session_id"] is None:
        return [{"action": "choose_ground_truth",
                 "message": "The test session has no ground-truth annotation session: annotate the video and "
                            "give the session as ground_truth_session_id."}]
    if counts["pending"]:
        out.append({"action": "validate", "message": f"{counts['pending']} annotation(s) are pending review: "
                                                      "validate them (evaluation counts only validated ones)."})
        if not basis["include_pending"] and basis["pending_boxes"]:
            out.append({"action": "include_pending",
                        "message": f"Or evaluate with include_pending to count them as they are "
                                   f"({basis['pending_boxes']} box(es) on the frames the model ran on)."})
    if basis["boxes_on_skipped_frames"]:
        out.append({"action": "frames", "message": f"{basis['boxes_on_skipped_frames']} ground-truth box(es) lie on "
                                                   "frames the model skipped: run detection over those frames."})
    if not out:
        out.append({"action": "annotate", "message": "The ground-truth session has no usable box"
                                                     f"{' of these classes' if basis['classes'] else ''}: "
                                                     "annotate the video first."})
    return out


def class_names(project: Project, requested: Sequence[str] | None, present: Sequence[str]) -> list[str]:
    """The evaluated classes in the project's label order: the requested ones, else every label
    seen in the ground truth or the detections."""
    order = [str(x) for x in (project.labels or [])]
    wanted = list(requested) if requested is not None else list(dict.fromkeys(present))
    known = [c for c in order if c in wanted]
    return known + sorted(c for c in wanted if c not in order)


# ------------------------------------------------------------------------------ storing


def _store_results(test_session_id: uuid.UUID, job_id: uuid.UUID, results: dict[str, Any] | None = None) -> bool:
    """Store the numbers on the test session if this job is still the one asked for (without
    ``results``: only tell whether it is). The evaluation's status is its job's."""
    with runtime.database().Session() as db:
        ts = db.scalar(select(TestSession).where(TestSession.id == test_session_id).with_for_update())
        if ts is None:
            return False
        current = ts.metrics or {}
        state = dict(current.get("evaluation") or {})
        if state.get("job_id") not in (None, str(job_id)):
            db.rollback()
            return False
        if results is not None:
            state.update(job_id=str(job_id), updated_at=utcnow().isoformat())
            ts.metrics = {"evaluation": state, "results": results}
        db.commit()
        return True


def plot_key(test_session_id: uuid.UUID, job_id: uuid.UUID, name: str) -> str:
    """Where evaluation job ``job_id`` of a test session writes plot ``name``: built from the ids."""
    return f"{REPORT_DIR}/{test_session_id}/{job_id}/{name}.png"


def write_plots(stored: Store, test_session_id: uuid.UUID, job_id: uuid.UUID,
                plots: dict[str, bytes]) -> dict[str, str]:
    """PNG files under ``reports/<test session>/<job>/``, each published whole."""
    out = {}
    for name, data in plots.items():
        out[name] = key = plot_key(test_session_id, job_id, name)
        stored.put_bytes(key, data)
    return out


def prune_plots(stored: Store, test_session_id: uuid.UUID, keep_job: str) -> None:
    """Plots of superseded evaluations of this session are no longer served."""
    base = f"{REPORT_DIR}/{test_session_id}/"
    for job in {key[len(base):].split("/", 1)[0] for key in stored.keys(base)} - {keep_job}:
        stored.delete_prefix(f"{base}{job}/")


# ------------------------------------------------------------------------------ the job


def evaluate_body(ctx: JobContext) -> dict[str, Any]:
    from . import validation

    ts_id = uuid.UUID(ctx.params["test_session_id"])
    run_id = ctx.params.get("validation_run_id")
    if validation.run_cancelled(ctx.params):  # queued by a detection that ended just as the run was cancelled
        raise JobCancelled(str(ctx.job_id))
    if not _store_results(ts_id, ctx.job_id):
        return {"test_session_id": str(ts_id), "outcome": "superseded or test session gone"}
    try:
        return _evaluate(ctx, ts_id)
    except JobLost:
        raise
    except JobCancelled:  # the job's state is the lifecycle's to write; the run counts the video
        validation.video_ended(run_id, ts_id, "cancelled", error="evaluation cancelled")
        raise
    except Exception as exc:
        validation.video_ended(run_id, ts_id, "failed", error=f"evaluation failed: {type(exc).__name__}: {exc}")
        raise


def _evaluate(ctx: JobContext, ts_id: uuid.UUID) -> dict[str, Any]:
    params = ctx.params
    stored = store()
    ctx.progress(2, "loading ground truth")
    with runtime.database().Session() as db:
        ts = db.get(TestSession, ts_id)
        if ts is None:
            raise EvaluationError(f"test session {ts_id} no longer exists")
        gt_session = db.get(AnnotationSession, ts.ground_truth_session_id) if ts.ground_truth_session_id else None
        if gt_session is None:
            raise EvaluationError("the test session's ground-truth annotation session no longer exists")
        if gt_session.video_id != ts.video_id:
            raise EvaluationError("the ground-truth annotation session is of another video")
        video, project = db.get(Video, ts.video_id), db.get(Project, ts.project_id)
        timeline = bindings.video_timeline(video, runtime.settings().storage_dir)
        frames = evaluated_frames(ts, video)
        present = [*db.scalars(select(VideoAnnotation.class_label).distinct()
                               .where(VideoAnnotation.annotation_session_id == gt_session.id)),
                   *db.scalars(select(DetectionEvent.class_label).distinct()
                               .where(DetectionEvent.test_session_id == ts.id))]
        names = class_names(project, params.get("classes"), sorted(set(present)))
        protocol = params.get("protocol", "default")
        marks: dict[int, GroundTruthMarks] | None = None
        loaded = names
        if protocol == "motchallenge":
            # Distractors are no class to find; every ground-truth class takes part in the matching.
            if params.get("classes") is None:
                names = [n for n in names if n not in distractor_classes(params["benchmark"])]
            loaded = names + [n for n in sorted(set(present)) if n not in names]
            marks = {}
        index = {n: i for i, n in enumerate(loaded)}
        tracks, annotation_ids = load_ground_truth(db, gt_session.id, index, params["include_pending"], marks)
        gt = ground_truth_boxes(tracks, timeline, frames, include_pending=params["include_pending"])
        flags: dict[str, np.ndarray] = {}
        interpolated = 0
        if marks is not None:
            labels = [loaded[t.class_id] for t in tracks]
            distractor, zero, annotated = ground_truth_marks(gt, marks, labels, params["benchmark"],
                                                             params["min_visibility"])
            # The benchmark's ground truth is its rows: no box where a track has none.
            gt = gt.select(annotated)
            interpolated = int((~annotated).sum())
            flags["gt_distractor"], flags["gt_zero_marked"] = distractor[annotated], zero[annotated]
            gt = replace(gt, class_id=np.where(gt.class_id < len(names), gt.class_id, -1))
        index = {n: i for i, n in enumerate(names)}
        ctx.check_cancel()
        ctx.progress(20, "loading detections")
        dt, dropped = load_detections(db, ts.id, index)
        model_name = (ts.model or {}).get("name") if isinstance(ts.model, dict) else None
        basis = ground_truth_basis(db, ts, video, timeline, params["include_pending"], params.get("classes"))
    dt = dt.select((dt.frame_index >= 0) & (dt.frame_index < timeline.frame_count))
    ctx.check_cancel()
    with_tracking = bool(np.any(dt.tracker_id >= 0))
    tracking_note = None
    if with_tracking and not unique_track_ids_per_frame(dt):
        with_tracking, tracking_note = False, "a track id appears twice on one frame: tracking metrics skipped"
    ctx.progress(40, "computing metrics")
    metrics = evaluate_session(gt, dt, names, frames, timeline.timestamps, params["score_threshold"],
                               params["iou_threshold"], tracking=with_tracking,
                               protocol=params.get("protocol", "default"),
                               voc_pixel_inclusive=params.get("voc_pixel_inclusive", False), **flags)
    if params.get("protocol") == "motchallenge":
        metrics["protocol"].update(benchmark=params["benchmark"], min_visibility=params["min_visibility"],
                                   distractor_classes=list(distractor_classes(params["benchmark"])),
                                   ground_truth_interpolated_left_out=interpolated)
    for obj in metrics["temporal"]["objects"]:
        obj["annotation_id"] = annotation_ids[obj.pop("track_id")]
        obj["first_timestamp"] = float(timeline.timestamps[obj["first_frame"]])
    objects, boxes = len(tracks), len(gt)
    if flags:  # what the protocol leaves to find
        scored = (gt.class_id >= 0) & ~flags["gt_distractor"] & ~flags["gt_zero_marked"]
        objects, boxes = int(np.unique(gt.tracker_id[scored]).size), int(scored.sum())
    ctx.check_cancel()
    ctx.progress(80, "drawing the report")
    from evaluation.report import render_report  # matplotlib only where plots are drawn

    results = {
        "job_id": str(ctx.job_id),
        "evaluated_at": utcnow().isoformat(),
        "parameters": {**{k: params[k] for k in ("iou_threshold", "score_threshold", "score_threshold_source",
                                                 "include_pending")},
                       "protocol": params.get("protocol", "default"),
                       "voc_pixel_inclusive": params.get("voc_pixel_inclusive", False),
                       "classes": names, "coco_iou_thresholds": "0.50:0.05:0.95",
                       "tracking_max_distance": round(1.0 - params["iou_threshold"], 12),
                       "ground_truth_session_id": str(gt_session.id), "video_id": str(ts.video_id),
                       "model": model_name},
        "counts": {"frames": int(frames.size), "ground_truth_objects": objects, "ground_truth_boxes": boxes,
                   "detections": len(dt),
                   "detections_above_threshold": int(at_threshold(dt.confidence, params["score_threshold"]).sum()),
                   "detections_without_score": int((dt.confidence == NO_SCORE).sum()),
                   "detections_of_other_classes": dropped},
        **metrics,
        "tracking_note": tracking_note,
        "basis": basis,
    }
    # Found again from the session and job ids (never from a stored path): see the report route.
    write_plots(stored, ts_id, ctx.job_id, render_report(results))
    run_id = params.get("validation_run_id")
    matches_path = None
    if run_id:  # the run aggregates these matches with the other videos' (the run row keeps the path)
        from .validation import matches_of, store_matches

        matches = matches_of(gt, dt, names, frames, timeline.timestamps, params["score_threshold"],
                             params["iou_threshold"], tracking=with_tracking, video_id=str(ts.video_id))
        matches_path = store_matches(stored, REPORT_DIR, ts_id, ctx.job_id, matches)
    ctx.progress(95, "storing")
    if not _store_results(ts_id, ctx.job_id, results):
        return {"test_session_id": str(ts_id), "outcome": "superseded by a newer evaluation",
                "coco": results["coco"]["overall"]}
    prune_plots(stored, ts_id, str(ctx.job_id))
    if run_id:
        from .validation import video_ended

        video_ended(run_id, ts_id, "done", evaluation_job_id=ctx.job_id, matches_path=matches_path)
    op = results["operating_point"]
    return {"test_session_id": str(ts_id), "outcome": "stored", "AP": results["coco"]["overall"]["AP"],
            "AP50": results["coco"]["overall"]["AP50"], "precision": op["precision"], "recall": op["recall"],
            "f1": op["f1"], "counts": results["counts"]}


@app.task(name="jobs.evaluation", bind=True)
def evaluation(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, evaluate_body)
