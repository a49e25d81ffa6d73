"""Validation runs: one model configuration against a whole test set of a project's videos.

A run makes one test session per video and queues every detection job at once (GPU pool);
each video's evaluation counts the run's finished videos in the database and the last one
queues the aggregation (CPU pool). See ``tasks.validation``.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, send_file
from flask_smorest import Blueprint
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models import (
    RUN_TERMINAL,
    TERMINAL_STATUSES,
    AnnotationSession,
    Job,
    Project,
    ProjectMember,
    TestSession,
    ValidationRun,
    ValidationRunVideo,
    Video,
    VideoAnnotation,
    VideoCompatibilityCache,
    utcnow,
)
from storage import NotFound, store
from tasks import rooms
from tasks import validation as runs_tasks
from tasks.dispatch import create_job, dispatch
from tasks.evaluation import EvaluationError, queue_evaluation
from tasks.lifecycle import cancel_pending
from tasks.rooms import job_snapshot

from ..auth import current_user, get_or_404, get_project_for
from ..db import audit, db_session, paginate
from ..errors import ApiError, validation_error
from ..extensions import socketio
from ..realtime import breaker, broadcast_job, marks
from ..schemas import (
    RunCompareArgs,
    RunCompareOut,
    RunMetricsOut,
    ValidationRunIn,
    ValidationRunListArgs,
    ValidationRunOut,
    ValidationRunPage,
)
from .test_sessions import check_model

bp = Blueprint("validation_runs", __name__, url_prefix="/api/validation-runs",
               description="Validation runs: a model over a test set")
DETECTION_KEYS = ("batch_size", "frame_stride", "frame_from", "frame_to", "enable_tracking", "track_buffer_seconds")
EVALUATION_KEYS = ("iou_threshold", "score_threshold", "classes", "protocol", "include_pending")


def run_view(db: Session, run: ValidationRun) -> dict[str, Any]:
    view = {c.name: getattr(run, c.name) for c in ValidationRun.__table__.columns
            if c.name not in ("metrics", "comparison", "report_path", "cancel_requested")}
    view["progress"] = runs_tasks.progress(db, run)
    return view


# ------------------------------------------------------------------------------ selecting


def _conditions_match(measured: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, want in wanted.items():
        have = measured.get(key)
        if isinstance(want, dict):
            if not isinstance(have, int | float) or isinstance(have, bool):
                return False
            if ("min" in want and have < want["min"]) or ("max" in want and have > want["max"]):
                return False
        elif have != want:
            return False
    return True


def select_videos(db: Session, project: Project, selection: dict[str, Any] | None) -> list[Video]:
    """The run's videos, in the order asked (ids) or of upload (filter); 422 on ``videos`` otherwise."""
    if selection is not None and "ids" in selection:
        ids = list(dict.fromkeys(selection["ids"]))
        found = {v.id: v for v in db.scalars(select(Video).where(Video.id.in_(ids)))}
        unknown = [str(i) for i in ids if i not in found]
        if unknown:
            raise validation_error({"videos": f"unknown videos: {unknown}"})
        foreign = [str(i) for i in ids if found[i].project_id != project.id]
        if foreign:
            raise validation_error({"videos": f"videos of another project: {foreign}"})
        return [found[i] for i in ids]
    wanted = (selection or {}).get("filter") or {}
    videos = db.scalars(select(Video).where(Video.project_id == project.id)
                        .order_by(Video.created_at, Video.id)).all()
    camera = project.camera_metadata or {}
    if any(camera.get(k) != v for k, v in (wanted.get("camera_metadata") or {}).items()):
        videos = []
    tags = set(wanted.get("tags") or ())
    videos = [v for v in videos if tags <= set(v.tags or ())]
    if wanted.get("conditions"):
        measured = {c.video_id: c.compatibility_vector or {} for c in db.scalars(
            select(VideoCompatibilityCache).where(VideoCompatibilityCache.video_id.in_([v.id for v in videos])))}
        videos = [v for v in videos if _conditions_match(measured.get(v.id, {}), wanted["conditions"])]
    if not videos:
        raise validation_error({"videos": "no video of the project matches"})
    return videos


def resolve_ground_truth(db: Session, project: Project, videos: list[Video], spec: str | dict[uuid.UUID, uuid.UUID],
                         own: dict[uuid.UUID, uuid.UUID | None]) -> dict[uuid.UUID, uuid.UUID]:
    """Each video's ground-truth annotation session; 422 on ``ground_truth`` naming the videos without one.

    ``"validated"``: the video's own session if a test session already names one, else the newest
    completed annotation session of the video with validated annotations, else the newest with any.
    """
    out: dict[uuid.UUID, uuid.UUID] = {}
    if isinstance(spec, dict):
        extra = [str(k) for k in spec if k not in {v.id for v in videos}]
        if extra:
            raise validation_error({"ground_truth": f"videos not in the run: {extra}"})
        for video_id, session_id in spec.items():
            gt = db.get(AnnotationSession, session_id)
            if gt is None or gt.project_id != project.id or gt.video_id != video_id:
                raise validation_error(
                    {"ground_truth": f"annotation session {session_id} is not one of video {video_id}"})
            out[video_id] = session_id
    missing = [v for v in videos if v.id not in out]
    if missing and spec == "validated":
        for v in missing:
            if own.get(v.id) is not None:
                out[v.id] = own[v.id]
        candidates = db.execute(
            select(AnnotationSession.id, AnnotationSession.video_id)
            .join(VideoAnnotation, VideoAnnotation.annotation_session_id == AnnotationSession.id)
            .where(AnnotationSession.project_id == project.id,
                   AnnotationSession.video_id.in_([v.id for v in missing if v.id not in out]),
                   VideoAnnotation.validation_status == "validated")
            .group_by(AnnotationSession.id, AnnotationSession.video_id, AnnotationSession.status,
                      AnnotationSession.created_at)
            .order_by((AnnotationSession.status == "completed").desc(), AnnotationSession.created_at.desc(),
                      func.count(VideoAnnotation.id).desc())).all()
        for session_id, video_id in candidates:
            out.setdefault(video_id, session_id)
    lacking = [str(v.id) for v in videos if v.id not in out]
    if lacking:
        raise validation_error({"ground_truth": f"videos without a validated annotation session: {lacking}"})
    return out


def _check_gates(db: Session, project: Project, videos: list[Video], gates: list, classes: list[str] | None,
                 has_baseline: bool) -> None:
    if not gates:
        return
    attributes = runs_tasks.video_attributes(db, project.id, [v.id for v in videos])
    errors = runs_tasks.gates_engine().validate_gates(gates, list(classes or project.labels),
                                                      runs_tasks.engine().slice_keys(attributes), has_baseline)
    if errors:
        raise validation_error(errors)


# ------------------------------------------------------------------------------ routes


@bp.route("", methods=["POST"])
@bp.arguments(ValidationRunIn)
@bp.response(202, ValidationRunOut)
def create_run(data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Start a run: a test session per video, every detection job queued at once, then one aggregation."""
    db, user = db_session(), current_user()
    project = get_project_for(db, user, data["project_id"], write=True)
    evaluation = {k: data["evaluation"].get(k) for k in EVALUATION_KEYS}
    if evaluation["classes"] is not None:
        unknown = sorted(set(evaluation["classes"]) - set(project.labels))
        if unknown:
            raise validation_error({"evaluation": f"classes are not labels of this project: {unknown}"})
    baseline_id = data.get("baseline_run_id")
    if baseline_id is not None:
        baseline = db.get(ValidationRun, baseline_id)
        if baseline is None or baseline.project_id != project.id:
            raise validation_error({"baseline_run_id": "no validation run of this project has this id"})
    existing: list[TestSession] = []
    if "test_session_ids" in data:
        ids = list(dict.fromkeys(data["test_session_ids"]))
        found = {t.id: t for t in db.scalars(select(TestSession).where(TestSession.id.in_(ids)))}
        bad = [str(i) for i in ids if i not in found or found[i].project_id != project.id]
        if bad:
            raise validation_error({"test_session_ids": f"unknown test sessions of this project: {bad}"})
        existing = [found[i] for i in ids]
        unfinished = [str(t.id) for t in existing if t.status != "completed"]
        if unfinished:
            raise validation_error(
                {"test_session_ids": f"test sessions whose detections are not complete: {unfinished}"})
        by_video = [t.video_id for t in existing]
        if len(set(by_video)) != len(by_video):
            raise validation_error({"test_session_ids": "two test sessions of the same video"})
        videos_by_id = {v.id: v for v in db.scalars(select(Video).where(Video.id.in_(by_video)))}
        videos = [videos_by_id[t.video_id] for t in existing]
        model = existing[0].model if len({str(t.model) for t in existing}) == 1 else \
            {"name": "mixed", "test_sessions": [t.model for t in existing]}
    else:
        model = data["model"]
        check_model(project, model)
        videos = select_videos(db, project, data.get("videos"))
    ground_truth = resolve_ground_truth(db, project, videos, data["ground_truth"],
                                        {t.video_id: t.ground_truth_session_id for t in existing})
    _check_gates(db, project, videos, data["gates"], evaluation["classes"], baseline_id is not None)

    detection = {k: data[k] for k in DETECTION_KEYS if k in data}
    run = ValidationRun(project_id=project.id, name=data.get("name") or model.get("name", ""), model=model,
                        request={"videos": [str(v.id) for v in videos],
                                 "selection": _jsonable(data.get("videos")),
                                 "test_session_ids": [str(t.id) for t in existing] or None,
                                 "ground_truth": _jsonable(data["ground_truth"]), "detection": detection},
                        evaluation=evaluation, baseline_run_id=baseline_id, gates=data["gates"],
                        status="processing", videos_total=len(videos), created_by=user.id)
    db.add(run)
    db.flush()
    run_eval = {**evaluation, "validation_run_id": str(run.id)}
    jobs: list[Job] = []
    for position, video in enumerate(videos):
        if existing:
            ts = existing[position]
            ts.ground_truth_session_id = ground_truth[video.id]
            try:
                jobs.append(queue_evaluation(db, ts, run_eval, created_by=user.id))
            except EvaluationError as exc:
                raise validation_error({"evaluation": str(exc)}) from None
        else:
            ts = TestSession(project_id=project.id, video_id=video.id, name=f"{run.name} / {video.filename}",
                             source="detection", model=model, ground_truth_session_id=ground_truth[video.id],
                             config={**detection, "include_pending": bool(evaluation["include_pending"]),
                                     "evaluation": run_eval},
                             status="pending", created_by=user.id)
            db.add(ts)
            db.flush()
            job = create_job(db, "detection", {"test_session_id": str(ts.id), "video_id": str(video.id),
                                               "model": model, "validation_run_id": str(run.id), **detection},
                             project_id=project.id, created_by=user.id)
            ts.job_id = job.id
            jobs.append(job)
        db.add(ValidationRunVideo(run_id=run.id, video_id=video.id, test_session_id=ts.id, position=position))
    audit(db, "create", "validation_run", run.id, {"videos": len(videos), "model": model.get("name"),
                                                    "from_test_sessions": bool(existing)})
    db.commit()
    if breaker.available():  # every job at once, so every worker of the pool is busy; the outbox sends the rest
        for job in jobs:
            ok = dispatch(current_app.extensions["database"], job, marks.add)
            breaker.record(ok)
            if not ok:
                break
    return run_view(db, run), 202, {"Location": f"/api/validation-runs/{run.id}"}


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, uuid.UUID) else value


@bp.route("", methods=["GET"])
@bp.arguments(ValidationRunListArgs, location="query")
@bp.response(200, ValidationRunPage)
def list_runs(args: dict[str, Any]) -> dict[str, Any]:
    db, user = db_session(), current_user()
    stmt = select(ValidationRun)
    if "project_id" in args:
        get_project_for(db, user, args["project_id"])
        stmt = stmt.where(ValidationRun.project_id == args["project_id"])
    elif not user.is_admin:
        stmt = stmt.where(ValidationRun.project_id.in_(
            select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)))
    if "status" in args:
        stmt = stmt.where(ValidationRun.status == args["status"])
    page = paginate(db, stmt.order_by(ValidationRun.created_at.desc(), ValidationRun.id), args["page"],
                    args["per_page"])
    page["items"] = [run_view(db, r) for r in page["items"]]
    return page


@bp.route("/compare", methods=["GET"])
@bp.arguments(RunCompareArgs, location="query")
@bp.response(200, RunCompareOut)
def compare(args: dict[str, Any]) -> dict[str, Any]:
    """Paired comparison of two aggregated runs: b against a, video by video where both have it."""
    parts = [p.strip() for p in args["ids"].split(",") if p.strip()]
    if len(parts) != 2:
        raise validation_error({"ids": "exactly two run ids: a,b"}, "query")
    a, b = (get_or_404(ValidationRun, p, "validation run") for p in parts)
    for run in (a, b):
        if run.metrics is None:
            raise ApiError(409, f"validation run {run.id} has no metrics yet ({run.status})",
                           details={"run_id": str(run.id), "status": run.status})
    db = db_session()
    done_a, done_b = runs_tasks.done_videos(db, a.id), runs_tasks.done_videos(db, b.id)
    attributes = runs_tasks.video_attributes(db, a.project_id, sorted({rv.video_id for rv in [*done_a, *done_b]}))
    try:
        result = runs_tasks.compare(store(current_app.config["STORAGE_DIR"]), done_a, done_b, attributes)
    except runs_tasks.engine().RunError as exc:
        raise validation_error({"ids": str(exc)}, "query", f"the runs cannot be compared: {exc}") from None
    return {"ids": [str(a.id), str(b.id)], "baseline": str(a.id), "candidate": str(b.id), "comparison": result}


@bp.route("/<run_id>", methods=["GET"])
@bp.response(200, ValidationRunOut)
def get_run(run_id: str) -> dict[str, Any]:
    return run_view(db_session(), get_or_404(ValidationRun, run_id, "validation run"))


@bp.route("/<run_id>/metrics", methods=["GET"])
@bp.response(200, RunMetricsOut)
def get_run_metrics(run_id: str) -> dict[str, Any]:
    run = get_or_404(ValidationRun, run_id, "validation run")
    return {"run_id": run.id, "status": run.status, "gate_status": run.gate_status, "gates": run.gate_results,
            "metrics": run.metrics, "comparison": run.comparison}


@bp.route("/<run_id>/report.html", methods=["GET"])
def get_run_report(run_id: str) -> Response:
    """The run's report: one HTML file with its plots inline."""
    run = get_or_404(ValidationRun, run_id, "validation run")
    if run.report_path is None:
        raise ApiError(404, f"the run has no report yet ({run.status})")
    try:
        path = store(current_app.config["STORAGE_DIR"]).local_path(run.report_path)
    except NotFound:
        raise ApiError(404, "the run's report file is gone") from None
    return send_file(path, mimetype="text/html", as_attachment=True,
                     download_name=f"validation-run-{run.id}.html")


@bp.route("/<run_id>/cancel", methods=["POST"])
@bp.response(202, ValidationRunOut)
def cancel_run(run_id: str) -> dict[str, Any]:
    """Stop every job of the run: pending ones at once, running ones at their next progress point."""
    db = db_session()
    run = get_or_404(ValidationRun, run_id, "validation run", write=True)
    if run.status in RUN_TERMINAL:
        raise ApiError(409, f"validation run already {run.status}", details={"status": run.status})
    now = utcnow()
    db.execute(update(ValidationRun).where(ValidationRun.id == run.id)
               .values(status="cancelled", cancel_requested=True, finished_at=now))
    db.execute(update(ValidationRunVideo).where(ValidationRunVideo.run_id == run.id,
                                                ValidationRunVideo.status == "pending")
               .values(status="cancelled", error="run cancelled", finished_at=now))
    job_ids = set(_run_job_ids(db, run))
    stopped = []
    kinds = dict(db.execute(select(Job.id, Job.kind).where(Job.id.in_(list(job_ids)))).all()) if job_ids else {}
    for job_id in job_ids:
        if job_id in kinds and cancel_pending(db, job_id, kinds[job_id], now):
            stopped.append(job_id)
        else:
            db.execute(update(Job).where(Job.id == job_id, Job.status.notin_(TERMINAL_STATUSES))
                       .values(cancel_requested=True))
    audit(db, "cancel", "validation_run", run.id, {"jobs": len(job_ids)})
    db.commit()
    db.refresh(run)
    for job in db.scalars(select(Job).where(Job.id.in_(stopped))):
        broadcast_job(job_snapshot(job))
    try:
        from tasks.app import app as celery_app

        if job_ids:
            celery_app.control.revoke([str(j) for j in job_ids])
    except Exception:  # noqa: BLE001 - the database flag is what the tasks obey
        current_app.logger.warning("could not broadcast revoke for validation run %s", run.id)
    view = run_view(db, run)
    try:
        socketio.emit(rooms.VALIDATION_RUN_PROGRESS, view["progress"], to=rooms.validation_run_room(run.id))
    except Exception:  # noqa: BLE001 - clients also get the state from the snapshot
        current_app.logger.warning("could not broadcast validation run %s", run.id)
    return view


def _run_job_ids(db: Session, run: ValidationRun) -> list[uuid.UUID]:
    """Detection, evaluation and aggregation jobs of the run."""
    out = [run.aggregation_job_id] if run.aggregation_job_id else []
    sessions = db.scalars(select(TestSession).join(ValidationRunVideo,
                                                   ValidationRunVideo.test_session_id == TestSession.id)
                          .where(ValidationRunVideo.run_id == run.id)).all()
    for ts in sessions:
        if ts.job_id and ts.source == "detection" and (ts.config or {}).get("evaluation", {}).get(
                "validation_run_id") == str(run.id):
            out.append(ts.job_id)
        state = (ts.metrics or {}).get("evaluation") or {}
        if state.get("job_id") and (state.get("parameters") or {}).get("validation_run_id") == str(run.id):
            out.append(uuid.UUID(state["job_id"]))
    return out
