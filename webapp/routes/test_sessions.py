"""Test sessions: a model run over a video (a detection job), and the detections it stored."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import AnnotationSession, DetectionEvent, Job, Project, ProjectMember, TestSession, Video
from tasks.dispatch import create_job
from vision.catalogue import ModelError, check_model_name, safe_file_name

from ..auth import current_user, get_or_404, get_project_for
from ..db import audit, db_session, paginate
from ..errors import ApiError, validation_error
from ..realtime import submit
from ..schemas import (
    DetectionListArgs,
    DetectionPage,
    TestSessionIn,
    TestSessionListArgs,
    TestSessionOut,
    TestSessionPage,
)
from .model_registry import check_registered

bp = Blueprint("test_sessions", __name__, url_prefix="/api", description="Test sessions and detection jobs")


def session_view(db: Session, ts: TestSession) -> dict:
    """The test session with its job. Its status is the row's: the lifecycle writes its detection
    job's state there with the job row, and an import completes the session it fills."""
    job = db.get(Job, ts.job_id) if ts.job_id else None
    return {
        **{c: getattr(ts, c) for c in ("id", "project_id", "video_id", "job_id", "name", "source", "model",
                                       "config", "ground_truth_session_id", "metrics", "created_by",
                                       "created_at", "completed_at")},
        "status": ts.status,
        "summary": job.result if job is not None and job.status == "completed" else None,
        "job": job,
    }


def check_model(project: Project, model: dict) -> None:
    """422 on the ``model`` field unless this installation can run it with the project's labels.

    A registered ``name:version`` must be ready; its sha256 is recorded in ``model``.
    """
    if not check_registered(db_session(), model):
        try:
            check_model_name(model["name"])
        except ModelError as exc:
            raise validation_error({"model": str(exc)}) from None
    if model.get("weights") is not None and not safe_file_name(model["weights"]):
        raise validation_error({"model": "weights must be a file name inside the model directory"})
    labels = list(project.labels)
    named = list(model.get("classes") or []) + list((model.get("label_map") or {}).values())
    unknown = sorted(set(named) - set(labels))
    if unknown:
        raise validation_error({"model": f"not labels of this project: {unknown}; the project's labels are {labels}"})


@bp.route("/test-sessions", methods=["POST"])
@bp.arguments(TestSessionIn)
@bp.response(202, TestSessionOut)
def create_test_session(data: dict[str, Any]) -> tuple[dict, int] | tuple[dict, int, dict[str, str]]:
    """Create a test session; with ``source: detection`` (the default) its detection job is queued."""
    db, user = db_session(), current_user()
    project = get_project_for(db, user, data["project_id"], write=True)
    video = db.get(Video, data["video_id"])
    if video is None:
        raise ApiError(404, "video not found")
    if video.project_id != project.id:
        raise validation_error({"video_id": "the video belongs to another project"})
    gt_id = data.get("ground_truth_session_id")
    if gt_id is not None:
        gt = db.get(AnnotationSession, gt_id)
        if gt is None or gt.project_id != project.id:
            raise ApiError(404, "ground truth annotation session not found")
        if gt.video_id != video.id:
            raise validation_error({"ground_truth_session_id": "the annotation session is of another video"})
    if data.get("frame_to") is not None and data.get("frame_from", 0) > data["frame_to"]:
        raise validation_error({"frame_to": "frame_to is before frame_from"})
    model = data["model"]
    check_model(project, model)

    config = {k: data[k] for k in ("batch_size", "frame_stride", "frame_from", "frame_to", "enable_tracking",
                                   "track_buffer_seconds", "realtime", "include_pending") if k in data}
    ts = TestSession(project_id=project.id, video_id=video.id, name=data.get("name") or model["name"],
                     source=data["source"], model=model, config=config, ground_truth_session_id=gt_id,
                     status="pending", created_by=user.id)
    db.add(ts)
    db.flush()
    audit(db, "create", "test_session", ts.id, {"model": model["name"], "video_id": str(video.id)})
    if data["source"] == "import":  # results arrive through an import job
        db.commit()
        return session_view(db, ts), 201
    job = create_job(db, "detection", {"test_session_id": str(ts.id), "video_id": str(video.id), "model": model,
                                       **config}, project_id=project.id, created_by=user.id)
    ts.job_id = job.id
    submit(db, job)
    return session_view(db, ts), 202, {"Location": f"/api/test-sessions/{ts.id}"}


@bp.route("/test-sessions", methods=["GET"])
@bp.arguments(TestSessionListArgs, location="query")
@bp.response(200, TestSessionPage)
def list_test_sessions(args: dict[str, Any]) -> dict[str, Any]:
    db, user = db_session(), current_user()
    stmt = select(TestSession)
    if "project_id" in args:
        get_project_for(db, user, args["project_id"])
        stmt = stmt.where(TestSession.project_id == args["project_id"])
    elif not user.is_admin:
        stmt = stmt.where(TestSession.project_id.in_(
            select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)))
    if "video_id" in args:
        stmt = stmt.where(TestSession.video_id == args["video_id"])
    if "status" in args:
        stmt = stmt.where(TestSession.status == args["status"])
    page = paginate(db, stmt.order_by(TestSession.created_at.desc(), TestSession.id), args["page"],
                    args["per_page"])
    job_ids = [ts.job_id for ts in page["items"] if ts.job_id]
    if job_ids:  # one query: session_view then finds every job in the session's identity map
        db.scalars(select(Job).where(Job.id.in_(job_ids))).all()
    page["items"] = [session_view(db, ts) for ts in page["items"]]
    return page


@bp.route("/test-sessions/<test_session_id>", methods=["GET"])
@bp.response(200, TestSessionOut)
def get_test_session(test_session_id: str) -> dict:
    ts = get_or_404(TestSession, test_session_id, "test session")
    return session_view(db_session(), ts)


@bp.route("/test-sessions/<test_session_id>/detections", methods=["GET"])
@bp.arguments(DetectionListArgs, location="query")
@bp.response(200, DetectionPage)
def list_detections(args: dict[str, Any], test_session_id: str) -> dict[str, Any]:
    """Stored detections in frame order, filtered by frame range, class and track."""
    ts = get_or_404(TestSession, test_session_id, "test session")
    db = db_session()
    stmt = select(DetectionEvent).where(DetectionEvent.test_session_id == ts.id)
    if "frame_from" in args:
        stmt = stmt.where(DetectionEvent.frame_number >= args["frame_from"])
    if "frame_to" in args:
        stmt = stmt.where(DetectionEvent.frame_number <= args["frame_to"])
    if "class_label" in args:
        stmt = stmt.where(DetectionEvent.class_label == args["class_label"])
    if "track_id" in args:
        stmt = stmt.where(DetectionEvent.track_id == args["track_id"])
    page = paginate(db, stmt.order_by(DetectionEvent.frame_number, DetectionEvent.detection_index),
                    args["page"], args["per_page"])
    page["items"] = [
        {"frame_number": e.frame_number, "timestamp": e.timestamp, "detection_index": e.detection_index,
         "class_label": e.class_label, "confidence": e.confidence, "bbox": [e.x1, e.y1, e.x2, e.y2],
         "track_id": e.track_id}
        for e in page["items"]
    ]
    return page
