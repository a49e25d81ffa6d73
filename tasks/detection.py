"""Detection jobs (GPU queue): run a model over a video, store every detection, stream them live.

The task is an adapter around ``vision``: it loads the model once per worker process,
feeds the pipeline's per-frame results to the database in bulk inserts and to the
``detection_stream_{test_session_id}`` room in small batches (about ten messages a second
at most), and records a summary in the job result.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from celery import Task
from sqlalchemy import delete, insert

from models import DetectionEvent, Project, Video, utcnow
from storage import StorageUnavailable, video_file
from vision.detectors import Detector, ModelSpec, load_detector
from vision.pipeline import DetectionPipeline, FrameResult
from vision.tracker import TrackerConfig

from . import rooms, runtime
from .app import app
from .evaluation import results_ready
from .lifecycle import JobCancelled, JobContext, JobLost, run_job
from .model_check import resolve_registered

log = logging.getLogger(__name__)

#: Rows per bulk insert, and the longest a row waits before it is written.
INSERT_ROWS = 2000
INSERT_SECONDS = 1.0
#: Detection events are batched so that a job emits at most about this many messages a second.
EMITS_PER_SECOND = 10
#: Models kept loaded per worker process (each holds device memory).
MODEL_CACHE_SIZE = 2

_models: OrderedDict[str, Detector] = OrderedDict()


def _cache_key(spec: ModelSpec) -> str:
    """Thresholds and label maps are applied after inference, so they do not need a new model."""
    return json.dumps({"name": spec.name, "weights": spec.weights, "input_size": spec.input_size,
                       "half": spec.half, "device": spec.device, "extra": spec.extra}, sort_keys=True, default=str)


def detector_for(spec: ModelSpec) -> tuple[Detector, bool]:
    """The worker process's loaded model for ``spec`` (loaded on first use); True when cached."""
    key = _cache_key(spec)
    if key in _models:
        _models.move_to_end(key)
        return _models[key], True
    detector = load_detector(spec, runtime.settings().model_dir)
    _models[key] = detector
    while len(_models) > MODEL_CACHE_SIZE:
        _models.popitem(last=False)
    return detector, False


def model_spec(params: dict[str, Any]) -> ModelSpec:
    settings = runtime.settings()
    raw = params["model"]
    raw = {"name": raw} if isinstance(raw, str) else dict(raw)
    if raw.get("weights"):  # the API accepts a file name in the model directory, nothing else
        raw["weights"] = str(Path(settings.model_dir) / raw["weights"])
    raw = resolve_registered(raw)  # a registered name:version brings its checked file and defaults
    raw.setdefault("device", None if settings.detection_device == "auto" else settings.detection_device)
    raw.setdefault("half", settings.detection_half)
    return ModelSpec.parse(raw)


def frame_message(result: FrameResult, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "frame_number": result.frame_number,
        "timestamp": round(result.timestamp, 6),
        "detections": [
            {"detection_index": r["detection_index"], "class_label": r["class_label"], "confidence": r["confidence"],
             "bbox": [r["x1"], r["y1"], r["x2"], r["y2"]], "track_id": r["track_id"]}
            for r in rows
        ],
    }


class EventSink:
    """Buffers rows for bulk inserts and frames for batched room messages."""

    def __init__(self, test_session_id: uuid.UUID, job_id: uuid.UUID) -> None:
        self.test_session_id = test_session_id
        self.job_id = job_id
        self.room = rooms.detection_stream_room(test_session_id)
        self.rows: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.last_insert = time.monotonic()
        self.last_emit = float("-inf")
        self.seq = 0
        self.inserted = 0

    def add(self, result: FrameResult, names: tuple[str, ...]) -> None:
        rows = result.detections.to_rows(names, test_session_id=self.test_session_id)
        self.rows.extend(rows)
        self.frames.append(frame_message(result, rows))
        now = time.monotonic()
        if len(self.rows) >= INSERT_ROWS or now - self.last_insert >= INSERT_SECONDS:
            self.flush_rows()
        if now - self.last_emit >= 1.0 / EMITS_PER_SECOND:
            self.flush_frames()

    def flush_rows(self) -> None:
        if self.rows:
            with runtime.database().Session() as db:
                db.execute(insert(DetectionEvent), self.rows)
                db.commit()
            self.inserted += len(self.rows)
            self.rows = []
        self.last_insert = time.monotonic()

    def flush_frames(self, final: bool = False) -> None:
        if not self.frames and not final:
            return
        self.seq += 1
        runtime.emit(rooms.DETECTION_EVENT, {
            "test_session_id": str(self.test_session_id),
            "job_id": str(self.job_id),
            "seq": self.seq,
            "final": final,
            "frames": self.frames,
            # The blueprint's single-detection field: the newest frame of this message.
            "detection": self.frames[-1] if self.frames else None,
            "timestamp": utcnow().isoformat(),
        }, room=self.room)
        self.frames = []
        self.last_emit = time.monotonic()


def _discard_events(test_session_id: uuid.UUID) -> None:
    with runtime.database().Session() as db:
        db.execute(delete(DetectionEvent).where(DetectionEvent.test_session_id == test_session_id))
        db.commit()


def detection_body(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    test_session_id = uuid.UUID(params["test_session_id"])
    with runtime.database().Session() as db:
        video = db.get(Video, uuid.UUID(params["video_id"]))
        if video is None:
            raise ValueError(f"video {params['video_id']} no longer exists")
        path = video_file(video)
        project = db.get(Project, video.project_id) if video.project_id else None
        labels = list(project.labels) if project is not None and project.labels else None
    # A redelivered job starts over: whatever an earlier attempt wrote is replaced, never doubled.
    _discard_events(test_session_id)
    try:
        ctx.progress(0, "loading model")
        spec = model_spec(params)
        detector, cached = detector_for(spec)
        pipeline = DetectionPipeline.from_spec(
            detector, spec, project_classes=labels,
            batch_size=int(params.get("batch_size", 4)),
            frame_stride=int(params.get("frame_stride", 1)),
            start_frame=int(params.get("frame_from") or 0),
            end_frame=None if params.get("frame_to") is None else int(params["frame_to"]) + 1,
            enable_tracking=bool(params.get("enable_tracking", False)),
            tracker=TrackerConfig(lost_buffer_seconds=float(params.get("track_buffer_seconds", 1.0)),
                                  high_threshold=max(spec.confidence_threshold, 0.5),
                                  new_track_threshold=max(spec.confidence_threshold, 0.5)),
            realtime=bool(params.get("realtime", False)),
        )
        names = pipeline.label_map.project_classes
        sink = EventSink(test_session_id, ctx.job_id)
        ctx.progress(0, f"detecting on {pipeline.stats.device}")
        done = 0
        for result in pipeline.run(path, cancelled=lambda: ctx.check_cancel() or False):
            sink.add(result, names)
            done += 1
            total = pipeline.total_frames or done
            ctx.progress(99 * done / max(total, 1), f"detecting frame {result.frame_number} ({done}/{total})")
        ctx.progress(99, "storing")
        sink.flush_rows()
        # The last point where a cancel lands: after it the session is marked complete.
        ctx.progress(100, "stored")
        sink.flush_frames(final=True)
    except JobLost:
        raise  # another attempt owns the session now and is writing its events
    except StorageUnavailable:
        _discard_events(test_session_id)  # the store is down: the lifecycle retries, the next run starts over
        raise
    except BaseException as exc:
        # Nothing half-written stays behind: a failed or cancelled run leaves no events (the
        # session's status is the job's, written by the lifecycle).
        _discard_events(test_session_id)
        status = "cancelled" if isinstance(exc, JobCancelled) else "failed"
        from .validation import video_ended

        video_ended(params.get("validation_run_id"), test_session_id, status,
                    error="detection cancelled" if status == "cancelled" else
                    f"detection failed: {type(exc).__name__}: {exc}")
        raise
    summary = pipeline.stats.summary()
    summary.update(model=spec.name, model_cached=cached, events_stored=sink.inserted,
                   half=bool(getattr(detector, "half", False)),
                   test_session_id=str(test_session_id))
    summary["evaluation_job_id"] = results_ready(test_session_id, ctx.job_id)
    return summary


@app.task(name="jobs.detection", bind=True)
def detection(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, detection_body)
