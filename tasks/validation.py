"""Validation runs on the workers: each video's end is counted in the database, the last one
queues the aggregation job (CPU queue), and the run's progress goes to ``validation_run_{id}``.

No task waits on another. A video's evaluation job, when it stores its matches, moves the
video from ``pending`` to ``done`` and adds one to the run's count in the same transaction;
a detection or evaluation that fails moves it to ``failed`` the same way. Only that
transition counts, so a redelivered job never counts a video twice, and whichever
transaction brings ``done + failed`` to the total queues the aggregation through the outbox.
A beat sweep (:func:`reconcile`) settles videos whose job ended without saying so (a worker
killed past its redelivery cap, a job failed by the reaper).
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from celery import Task
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import (
    TERMINAL_STATUSES,
    Job,
    Project,
    TestSession,
    ValidationRun,
    ValidationRunVideo,
    Video,
    VideoCompatibilityCache,
    utcnow,
)
from storage import Store, store

from . import rooms, runtime
from .app import app
from .dispatch import create_job, dispatch
from .lifecycle import PROGRESS_HOOKS, JobCancelled, JobContext, run_job

if TYPE_CHECKING:
    import numpy as np

    from evaluation.boxes import Boxes
    from evaluation.runs import VideoMatches

log = logging.getLogger(__name__)

RUN_DIR = "validation_runs"
MATCHES_FILE = "matches.bin"
#: At most this many run-progress messages a second per run and process (terminal states always).
EMITS_PER_SECOND = 4
#: Bootstrap resamples for the intervals, and their seed (a run's numbers are reproducible).
RESAMPLES = 1000
SEED = 0


def engine() -> ModuleType:
    """The aggregation engine (pure): per-video matches, aggregate, paired comparison."""
    from evaluation import runs

    return runs


def gates_engine() -> ModuleType:
    """Gate checks on aggregated metrics (pure)."""
    from evaluation import gates

    return gates


# ------------------------------------------------------------------------------ per video


def matches_of(gt: Boxes, dt: Boxes, class_names: list[str], frames: np.ndarray,
               timestamps: Mapping[int, float] | np.ndarray | None, score_threshold: float, iou_threshold: float,
               *, tracking: bool, video_id: str) -> VideoMatches:
    """A video's matches on the inputs its evaluation used; with track ids also its HOTA statistics
    per class (detections at the operating point), so the run can report HOTA."""
    import numpy as np

    from evaluation.boxes import at_threshold
    from evaluation.hota import hota_statistics

    hota = None
    if tracking:
        kept = dt.select(at_threshold(dt.confidence, score_threshold))
        hota = np.stack([hota_statistics(gt.select(gt.class_id == c), kept.select(kept.class_id == c))
                         for c in range(len(class_names))]) if class_names else None
    return engine().video_matches(gt, dt, class_names, frames, timestamps, score_threshold, iou_threshold,
                                  tracking=tracking, video_id=video_id, hota=hota)


def store_matches(stored: Store, report_dir: str, test_session_id: uuid.UUID, job_id: uuid.UUID,
                  matches: VideoMatches) -> str:
    """A video's matches (``evaluation.runs.VideoMatches``) next to its evaluation report; its
    storage key is returned."""
    key = f"{report_dir}/{test_session_id}/{job_id}/{MATCHES_FILE}"
    stored.put_bytes(key, matches.to_bytes())
    return key


def _keep_for_run(stored: Store, run_id: str, video_id: uuid.UUID, relative: str) -> str:
    """The run keeps its own copy of the matches: a later evaluation of the session prunes the old report."""
    key = f"{RUN_DIR}/{run_id}/{video_id}.matches"
    stored.copy(relative, key)
    return key


def video_ended(run_id: str | None, test_session_id: uuid.UUID, status: str, *, error: str | None = None,
                evaluation_job_id: uuid.UUID | None = None, matches_path: str | None = None) -> bool:
    """Record that a run's video is ``done`` (its matches stored) or ``failed``/``cancelled``.

    Counted once whatever happens: only the move out of ``pending`` counts. The transaction
    that completes the count queues the aggregation. False when there was nothing to record.
    """
    if not run_id:
        return False
    rid = uuid.UUID(str(run_id))
    db = runtime.database()
    stored = store()
    job = None
    with db.Session() as s:
        rv = s.scalar(select(ValidationRunVideo).where(ValidationRunVideo.run_id == rid,
                                                       ValidationRunVideo.test_session_id == test_session_id))
        if rv is None or rv.status != "pending":
            return False
        if matches_path is not None:
            matches_path = _keep_for_run(stored, str(rid), rv.video_id, matches_path)
        moved = s.execute(update(ValidationRunVideo)
                          .where(ValidationRunVideo.id == rv.id, ValidationRunVideo.status == "pending")
                          .values(status=status, error=error, evaluation_job_id=evaluation_job_id,
                                  matches_path=matches_path, finished_at=utcnow())).rowcount
        if not moved:
            s.rollback()
            return False
        counter = ValidationRun.videos_done if status == "done" else ValidationRun.videos_failed
        row = s.execute(update(ValidationRun).where(ValidationRun.id == rid)
                        .values({counter: counter + 1})
                        .returning(ValidationRun.videos_total, ValidationRun.videos_done,
                                   ValidationRun.videos_failed, ValidationRun.status,
                                   ValidationRun.project_id, ValidationRun.created_by)).first()
        if row is not None and row.status == "processing" and row.videos_done + row.videos_failed >= row.videos_total:
            if row.videos_done == 0:
                s.execute(update(ValidationRun).where(ValidationRun.id == rid)
                          .values(status="failed", error="no video of the run could be evaluated",
                                  finished_at=utcnow()))
            else:
                job = create_job(s, "validation_aggregate", {"validation_run_id": str(rid)},
                                 project_id=row.project_id, created_by=row.created_by)
                s.execute(update(ValidationRun).where(ValidationRun.id == rid, ValidationRun.status == "processing")
                          .values(status="aggregating", aggregation_job_id=job.id))
        s.commit()
    if job is not None:
        dispatch(db, job)  # the outbox sweep sends it if the broker is away now
    emit_progress(rid, force=True)
    return True


def run_cancelled(params: dict[str, Any]) -> bool:
    """A job of a cancelled run stops before it starts (its message may have been sent before the cancel)."""
    run_id = params.get("validation_run_id")
    if not run_id:
        return False
    with runtime.database().Session() as s:
        return bool(s.scalar(select(ValidationRun.cancel_requested).where(ValidationRun.id == uuid.UUID(run_id))))


# ------------------------------------------------------------------------------ progress


def _frames(ts: TestSession, video: Video) -> int:
    config = ts.config or {}
    stride = max(1, int(config.get("frame_stride") or 1))
    start = max(0, int(config.get("frame_from") or 0))
    end = video.frame_count if config.get("frame_to") is None else min(video.frame_count, int(config["frame_to"]) + 1)
    return max(0, -(-(end - start) // stride))


def progress(s: Session, run: ValidationRun, live: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's progress from the database: per video its state and stage, counts, frames per
    second summed over the detection jobs running now, and the time left at that rate.

    ``live`` is a job's progress newer than its row (the emitting worker's own numbers). ``seq`` is
    taken before reading: of two snapshots (from any processes) the higher ``seq`` read the newer data,
    so a client keeps the event with the highest ``seq`` it has seen."""
    seq = time.time_ns() // 1000
    rows = s.execute(select(ValidationRunVideo, TestSession, Video)
                     .join(TestSession, TestSession.id == ValidationRunVideo.test_session_id)
                     .join(Video, Video.id == ValidationRunVideo.video_id)
                     .where(ValidationRunVideo.run_id == run.id)
                     .order_by(ValidationRunVideo.position)).all()
    eval_ids = {}
    for rv, ts, _ in rows:
        state = (ts.metrics or {}).get("evaluation") or {}
        if state.get("job_id") and (state.get("parameters") or {}).get("validation_run_id") == str(run.id):
            eval_ids[rv.id] = uuid.UUID(state["job_id"])
    job_ids = [ts.job_id for _, ts, _ in rows if ts.job_id] + list(eval_ids.values())
    jobs = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(job_ids)))} if job_ids else {}
    now = utcnow()
    counts = {"pending": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    fps_total, frames_left, items = 0.0, 0.0, []

    def state_of(job: Job | None) -> tuple[str, float, str]:
        if job is None:
            return "none", 0.0, ""
        if live is not None and live.get("job_id") == str(job.id):
            return live["status"], float(live["progress_percent"]), live.get("stage") or ""
        return job.status, float(job.progress_percent), job.stage

    for rv, ts, video in rows:
        det = jobs.get(ts.job_id) if ts.job_id else None
        ev = jobs.get(eval_ids.get(rv.id))
        det_status, det_pct, det_stage = state_of(det)
        ev_status, ev_pct, ev_stage = state_of(ev)
        frames = _frames(ts, video)
        done_share = 1.0 if det is None else min(1.0, det_pct / 99.0) if det_status != "completed" else 1.0
        fps = 0.0
        if det is not None and det_status == "processing" and det.started_at is not None:
            elapsed = (now - det.started_at).total_seconds()
            fps = frames * done_share / elapsed if elapsed > 0 else 0.0
        if rv.status != "pending":
            status = "done" if rv.status == "done" else rv.status
            stage = "done" if rv.status == "done" else f"{rv.status}: {rv.error or ''}".rstrip(": ")
            percent = 100.0
        elif det is not None and det_status in ("pending", "processing"):
            status = "running" if det_status == "processing" else "pending"
            stage = f"detecting: {det_stage}" if det_status == "processing" else "queued for detection"
            percent = 90.0 * done_share
            frames_left += frames * (1.0 - done_share)
        else:
            status = "running" if ev_status == "processing" else "pending" if ev is None or ev_status == "pending" \
                else "running"
            stage = f"evaluating: {ev_stage}" if ev_status == "processing" else "queued for evaluation"
            percent = 90.0 + 0.1 * ev_pct
        counts[status] += 1
        fps_total += fps
        items.append({"video_id": str(rv.video_id), "test_session_id": str(rv.test_session_id),
                      "status": status, "stage": stage, "progress_percent": round(percent, 2),
                      "frames": frames, "fps": round(fps, 3), "error": rv.error,
                      "detection_job_id": str(ts.job_id) if ts.job_id else None,
                      "evaluation_job_id": str(eval_ids[rv.id]) if rv.id in eval_ids else None})
    total = max(1, len(items))
    overall = sum(i["progress_percent"] for i in items) / total
    if run.status in ("completed", "partial"):
        overall = 100.0
    elif run.status == "aggregating":
        overall = min(overall, 99.0)
    return {
        "run_id": str(run.id), "status": run.status, "gate_status": run.gate_status,
        "videos": counts, "videos_total": len(items),
        "progress_percent": round(overall, 2),
        "fps": round(fps_total, 3),
        "eta_seconds": round(frames_left / fps_total, 1) if fps_total > 0 else None,
        "aggregation_job_id": str(run.aggregation_job_id) if run.aggregation_job_id else None,
        "per_video": items,
        "seq": seq,
    }


_last_emit: dict[uuid.UUID, float] = {}


def emit_progress(run_id: uuid.UUID, live: dict[str, Any] | None = None, force: bool = False) -> None:
    """Push the run's progress to its room, at most a few times a second unless ``force``."""
    now = time.monotonic()
    if not force and now - _last_emit.get(run_id, float("-inf")) < 1.0 / EMITS_PER_SECOND:
        return
    _last_emit[run_id] = now
    try:
        with runtime.database().Session() as s:
            run = s.get(ValidationRun, run_id)
            if run is None:
                return
            data = progress(s, run, live)
    except Exception as exc:  # noqa: BLE001 - progress is best effort; the row is the truth
        log.warning("could not read progress of validation run %s: %s", run_id, exc)
        return
    runtime.emit(rooms.VALIDATION_RUN_PROGRESS, data, room=rooms.validation_run_room(run_id))


def on_job_progress(job: Job, data: dict[str, Any]) -> None:
    """Progress hook of the job lifecycle: a run's jobs also move the run's progress."""
    run_id = (job.params or {}).get("validation_run_id")
    if run_id and job.kind != "validation_aggregate":
        emit_progress(uuid.UUID(run_id), live=data, force=data["status"] in TERMINAL_STATUSES)


# ------------------------------------------------------------------------------ aggregation


def video_attributes(s: Session, project_id: uuid.UUID, video_ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
    """What each video can be sliced by, one value per key: ``tag:<tag>`` (``yes``/``no`` for every
    tag any of the videos has), ``camera.<key>`` (the project's camera metadata) and the measured
    conditions of the compatibility analysis that are categories (``day_night``, ``codec``...)."""
    project = s.get(Project, project_id)
    camera = dict(project.camera_metadata or {}) if project is not None else {}
    videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_(video_ids)))}
    features = {c.video_id: c.compatibility_vector or {} for c in
                s.scalars(select(VideoCompatibilityCache).where(VideoCompatibilityCache.video_id.in_(video_ids)))}
    all_tags = sorted({t for v in videos.values() for t in (v.tags or [])})
    out = {}
    for vid in video_ids:
        video = videos.get(vid)
        tags = set(video.tags or []) if video is not None else set()
        attrs: dict[str, Any] = {f"tag:{t}": "yes" if t in tags else "no" for t in all_tags}
        attrs.update({f"camera.{k}": str(v) for k, v in camera.items() if isinstance(v, str | int | float | bool)})
        attrs.update({k: str(v) for k, v in (features.get(vid) or {}).items() if isinstance(v, str | bool)})
        out[str(vid)] = attrs
    return out


def run_matches(stored: Store, rows: list[ValidationRunVideo], only: set[str] | None = None
                ) -> Callable[[], Iterator[VideoMatches]]:
    """A callable giving the run's stored matches one file at a time (what the engine reads)."""
    keys = [rv.matches_path for rv in rows
            if rv.status == "done" and rv.matches_path and (only is None or str(rv.video_id) in only)]
    matches = engine().VideoMatches
    return lambda: (matches.from_bytes(stored.read_bytes(k)) for k in keys)


def done_videos(s: Session, run_id: uuid.UUID) -> list[ValidationRunVideo]:
    return list(s.scalars(select(ValidationRunVideo).where(ValidationRunVideo.run_id == run_id,
                                                           ValidationRunVideo.status == "done")
                          .order_by(ValidationRunVideo.position)))


def compare(stored: Store, baseline: list[ValidationRunVideo], candidate: list[ValidationRunVideo],
            attributes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Paired comparison (candidate - baseline) on the videos both runs have matches of."""
    common = {str(rv.video_id) for rv in baseline} & {str(rv.video_id) for rv in candidate}
    if not common:
        raise engine().RunError("the runs have no evaluated video in common")
    result = engine().compare_runs(run_matches(stored, baseline, common),
                                   run_matches(stored, candidate, common),
                                   {k: v for k, v in attributes.items() if k in common},
                                   resamples=RESAMPLES, seed=SEED)
    result["videos_compared"] = sorted(common)
    result["videos_left_out"] = sorted(({str(rv.video_id) for rv in baseline} |
                                        {str(rv.video_id) for rv in candidate}) - common)
    return result


def write_report(stored: Store, folder: str, title: str, metrics: dict[str, Any], comparison: dict[str, Any] | None,
                 baseline: dict[str, Any] | None, gates: dict[str, Any]) -> str:
    """The run's PNG plots and its self-contained HTML report, each published whole; the report's key."""
    from evaluation.run_report import render_html, render_plots  # matplotlib only where plots are drawn

    plots = render_plots(metrics, baseline)
    for name, data in plots.items():
        stored.put_bytes(f"{folder}/{name}.png", data)
    key = f"{folder}/report.html"
    stored.put_bytes(key, render_html(title, metrics, comparison, gates, plots).encode())
    return key


def _set_run(run_id: uuid.UUID, where_status: str | None, **values: object) -> bool:
    with runtime.database().Session() as s:
        stmt = update(ValidationRun).where(ValidationRun.id == run_id)
        if where_status is not None:
            stmt = stmt.where(ValidationRun.status == where_status)
        done = s.execute(stmt.values(**values)).rowcount
        s.commit()
    return bool(done)


def aggregate_body(ctx: JobContext) -> dict[str, Any]:
    run_id = uuid.UUID(ctx.params["validation_run_id"])
    try:
        return _aggregate(ctx, run_id)
    except JobCancelled:
        raise
    except Exception as exc:
        if _set_run(run_id, "aggregating", status="failed", error=f"aggregation failed: {type(exc).__name__}: {exc}",
                    finished_at=utcnow()):
            emit_progress(run_id, force=True)
        raise


def _aggregate(ctx: JobContext, run_id: uuid.UUID) -> dict[str, Any]:
    stored = store()
    ctx.progress(1, "loading the run")
    with runtime.database().Session() as s:
        run = s.get(ValidationRun, run_id)
        if run is None or run.status != "aggregating":
            return {"validation_run_id": str(run_id), "outcome": f"run is {run.status if run else 'gone'}"}
        rvs = s.scalars(select(ValidationRunVideo).where(ValidationRunVideo.run_id == run_id)
                        .order_by(ValidationRunVideo.position)).all()
        done = [rv for rv in rvs if rv.status == "done"]
        missing = [{"video_id": str(rv.video_id), "test_session_id": str(rv.test_session_id),
                    "status": rv.status, "error": rv.error} for rv in rvs if rv.status != "done"]
        baseline = s.get(ValidationRun, run.baseline_run_id) if run.baseline_run_id else None
        baseline_done = done_videos(s, baseline.id) if baseline is not None and baseline.metrics else []
        attributes = video_attributes(s, run.project_id, sorted({rv.video_id for rv in [*rvs, *baseline_done]}))
        baseline_metrics = baseline.metrics if baseline_done else None
        gates = list(run.gates or [])
        name = f"{run.name} ({run.id})"
    ctx.progress(10, f"aggregating {len(done)} video(s)")
    metrics = engine().aggregate(run_matches(stored, done),
                                 {k: v for k, v in attributes.items() if k in {str(rv.video_id) for rv in done}},
                                 resamples=RESAMPLES, seed=SEED)
    metrics["missing_videos"] = missing
    from evaluation.run_report import pr_curve

    metrics["pr_curve"] = pr_curve(run_matches(stored, done)())
    ctx.check_cancel()
    comparison = None
    if baseline_done:
        ctx.progress(60, "comparing with the baseline")
        try:
            comparison = compare(stored, baseline_done, done, attributes)
        except engine().RunError as exc:
            comparison = {"error": str(exc)}
    ctx.progress(75, "evaluating gates")
    gate_outcome = gates_engine().evaluate_gates(gates, metrics, comparison if comparison and
                                                 "error" not in comparison else None) \
        if gates else {"gate_status": None, "gates": []}
    ctx.progress(80, "drawing the report")
    report_path = write_report(stored, f"{RUN_DIR}/{run_id}", f"Validation run {name}", metrics,
                               comparison, baseline_metrics, gate_outcome)
    ctx.check_cancel()
    ctx.progress(95, "storing")
    status = "partial" if missing else "completed"
    if not _set_run(run_id, "aggregating", status=status, metrics=metrics, comparison=comparison,
                    gate_status=gate_outcome["gate_status"], gate_results=gate_outcome["gates"],
                    report_path=report_path, finished_at=utcnow()):
        return {"validation_run_id": str(run_id), "outcome": "run no longer aggregating (cancelled?)"}
    emit_progress(run_id, force=True)
    return {"validation_run_id": str(run_id), "outcome": status, "videos": len(done),
            "missing_videos": len(missing), "gate_status": gate_outcome["gate_status"]}


@app.task(name="jobs.validation_aggregate", bind=True)
def validation_aggregate(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, aggregate_body)


# ------------------------------------------------------------------------------ the sweep


def reconcile(s: Session) -> int:
    """Settle run videos whose job ended without recording it, aggregations that died, and
    evaluations a newer request of the same session superseded. Returns how many it acted on."""
    from .evaluation import queue_evaluation

    settled: list[tuple[str, uuid.UUID, str, str | None]] = []
    requeue: list[Job] = []
    runs = s.scalars(select(ValidationRun).where(ValidationRun.status.in_(("processing", "aggregating")))).all()
    for run in runs:
        if run.status == "aggregating":
            job = s.get(Job, run.aggregation_job_id) if run.aggregation_job_id else None
            if job is not None and job.status in ("failed", "cancelled"):
                s.execute(update(ValidationRun).where(ValidationRun.id == run.id,
                                                      ValidationRun.status == "aggregating")
                          .values(status="failed", error=f"aggregation {job.status}: {job.error or ''}".strip(),
                                  finished_at=utcnow()))
            continue
        rows = s.execute(select(ValidationRunVideo, TestSession)
                         .join(TestSession, TestSession.id == ValidationRunVideo.test_session_id)
                         .where(ValidationRunVideo.run_id == run.id, ValidationRunVideo.status == "pending")).all()
        for _, ts in rows:
            det = s.get(Job, ts.job_id) if ts.job_id else None
            if det is not None and det.status in ("failed", "cancelled"):
                settled.append((str(run.id), ts.id, "failed", f"detection {det.status}: {det.error or ''}".strip()))
                continue
            state = (ts.metrics or {}).get("evaluation") or {}
            if (state.get("parameters") or {}).get("validation_run_id") != str(run.id) or not state.get("job_id"):
                # Someone evaluated the session with other parameters meanwhile and the run's own
                # evaluation stood aside: ask for it again once the detections are complete.
                detected = det is None or det.status == "completed"
                other = s.get(Job, uuid.UUID(state["job_id"])) if state.get("job_id") else None
                if detected and ts.status == "completed" and other is not None and other.status in TERMINAL_STATUSES:
                    requeue.append(queue_evaluation(s, ts, {**run.evaluation, "validation_run_id": str(run.id)}))
                continue
            ev = s.get(Job, uuid.UUID(state["job_id"]))
            if ev is not None and ev.status in ("failed", "cancelled"):
                settled.append((str(run.id), ts.id, "failed", f"evaluation {ev.status}: {ev.error or ''}".strip()))
    s.commit()
    for job in requeue:
        dispatch(runtime.database(), job)
    return len(requeue) + sum(video_ended(run_id, ts_id, status, error=error)
                              for run_id, ts_id, status, error in settled)


@app.task(name="maintenance.reconcile_validation_runs")
def reconcile_validation_runs() -> int:
    with runtime.database().Session() as s:
        return reconcile(s)


PROGRESS_HOOKS.append(on_job_progress)
