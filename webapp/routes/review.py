"""Reviewing an annotation session: its progress, the consistency findings of each track, and
validating or rejecting many annotations at once (the whole session, a class, a frame range).

``GET /api/annotations/sessions/<id>/review`` answers the counts by review status (overall and
per class) and every annotation with the findings ``POST /api/annotations/<id>/validate`` would
report. ``POST /api/annotations/sessions/<id>/validate`` decides every selected annotation; one
whose checks find an error is left as it was (listed under ``skipped`` with its findings) unless
``force``. It is one audited action, and each decided annotation reaches the session's room.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from keyframes import Timeline
from models import AnnotationSession, Video, VideoAnnotation, utcnow
from tasks import rooms

from ..annotation_service import annotation_dict, broadcast, consistency_findings, load_session
from ..auth import current_user
from ..db import audit, db_session, parse_uuid
from ..errors import ApiError, validation_error
from ..extensions import socketio
from ..schemas import MAX_BULK, BulkValidateIn, ReviewArgs
from ..timelines import video_timeline

bp = Blueprint("review", __name__, url_prefix="/api/annotations/sessions",
               description="Reviewing annotations: progress, findings, bulk validation")

STATUSES = ("pending", "validated", "rejected")
MAX_REVIEW = 2000


def progress(db: Session, session_id: uuid.UUID) -> dict[str, Any]:
    """Counts by review status, overall and per class."""
    out: dict[str, Any] = {s: 0 for s in STATUSES}
    per_class: dict[str, dict[str, int]] = {}
    for label, status, n in db.execute(
            select(VideoAnnotation.class_label, VideoAnnotation.validation_status, func.count())
            .where(VideoAnnotation.annotation_session_id == session_id)
            .group_by(VideoAnnotation.class_label, VideoAnnotation.validation_status)):
        out[status] = out.get(status, 0) + int(n)
        per_class.setdefault(label, {s: 0 for s in STATUSES})[status] = int(n)
    out["total"] = sum(out[s] for s in STATUSES)
    out["reviewed_percent"] = round(100.0 * (out["total"] - out["pending"]) / out["total"], 1) if out["total"] else 0.0
    out["per_class"] = dict(sorted(per_class.items()))
    return out


def _frame_span(timeline: Timeline, annotation: VideoAnnotation) -> tuple[int | None, int | None]:
    frames = timeline.frames_between(annotation.start_timestamp, annotation.end_timestamp)
    return (int(frames[0]), int(frames[-1])) if frames.size else (None, None)


@bp.route("/<session_id>/review", methods=["GET"])
@bp.arguments(ReviewArgs, location="query")
def session_review(args: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The session's review progress and each annotation with its consistency findings."""
    db, user = db_session(), current_user()
    ann_session, _, video = load_session(db, user, parse_uuid(session_id, "annotation session"))
    timeline = video_timeline(video)
    rows = db.scalars(select(VideoAnnotation).where(VideoAnnotation.annotation_session_id == ann_session.id)
                      .order_by(VideoAnnotation.start_timestamp, VideoAnnotation.id).limit(MAX_REVIEW + 1)).all()
    items = []
    for a in rows[:MAX_REVIEW]:
        findings = consistency_findings(db, a, video) if args["findings"] and a.validation_status != "rejected" \
            else []
        first, last = _frame_span(timeline, a)
        items.append({"id": str(a.id), "class_label": a.class_label, "validation_status": a.validation_status,
                      "start_timestamp": a.start_timestamp, "end_timestamp": a.end_timestamp,
                      "frame_from": first, "frame_to": last, "keyframes": len(a.keyframes),
                      "confidence": a.confidence, "version": a.version,
                      "validated_at": a.validated_at.isoformat() if a.validated_at else None,
                      "validation_reason": a.validation_reason, "findings": findings,
                      "errors": sum(f["severity"] == "error" for f in findings),
                      "warnings": sum(f["severity"] == "warning" for f in findings)})
    return {"session_id": str(ann_session.id), "status": ann_session.status,
            "progress": progress(db, ann_session.id), "annotations": items,
            "truncated": len(rows) > MAX_REVIEW}


def _selection(db: Session, ann_session: AnnotationSession, video: Video,
               data: dict[str, Any]) -> Sequence[VideoAnnotation]:
    stmt = select(VideoAnnotation).where(VideoAnnotation.annotation_session_id == ann_session.id)
    if "annotation_ids" in data:
        stmt = stmt.where(VideoAnnotation.id.in_(data["annotation_ids"]))
    if "class_label" in data:
        stmt = stmt.where(VideoAnnotation.class_label == data["class_label"])
    if "frame_from" in data or "frame_to" in data:
        timeline = video_timeline(video)
        last = timeline.frame_count - 1
        f_from, f_to = min(data.get("frame_from", 0), last), min(data.get("frame_to", last), last)
        if f_from > f_to:
            raise validation_error({"frame_to": "frame_to is before frame_from"})
        # annotations whose span overlaps the range
        stmt = stmt.where(VideoAnnotation.end_timestamp >= float(timeline.time_of(f_from)),
                          VideoAnnotation.start_timestamp <= float(timeline.time_of(f_to)))
    if data["only_pending"]:
        stmt = stmt.where(VideoAnnotation.validation_status == "pending")
    else:
        stmt = stmt.where(VideoAnnotation.validation_status != data["status"])
    rows = db.scalars(stmt.order_by(VideoAnnotation.start_timestamp, VideoAnnotation.id).limit(MAX_BULK + 1)).all()
    if len(rows) > MAX_BULK:
        raise validation_error({"annotation_ids": f"this selects more than {MAX_BULK} annotations; narrow it "
                                                  "(class_label, frame_from/frame_to)"})
    return rows


@bp.route("/<session_id>/validate", methods=["POST"])
@bp.arguments(BulkValidateIn)
def bulk_validate(data: dict[str, Any], session_id: str) -> dict[str, Any]:
    """Validate or reject every selected annotation of the session.

    The selection: ``annotation_ids``, ``class_label`` and a frame range (annotations whose span
    overlaps ``frame_from``-``frame_to``), combined; by default only pending annotations
    (``only_pending: false`` also re-decides those decided the other way). Validating runs the
    consistency checks of each; one with an error is skipped unless ``force``.
    """
    db, user = db_session(), current_user()
    ann_session, _, video = load_session(db, user, parse_uuid(session_id, "annotation session"), write=True)
    rows = _selection(db, ann_session, video, data)
    decided, skipped, warned = [], [], 0
    now = utcnow()
    for a in rows:
        findings = consistency_findings(db, a, video) if data["status"] == "validated" else []
        if any(f["severity"] == "error" for f in findings) and not data["force"]:
            skipped.append({"annotation_id": str(a.id), "class_label": a.class_label, "findings": findings})
            continue
        warned += bool(findings)
        a.validation_status = data["status"]
        a.validated_by = user.id
        a.validated_at = now
        a.validation_reason = data["reason"]
        decided.append((a, findings))
    try:
        db.flush()
    except StaleDataError:  # someone edited one of them between our read and our write
        db.rollback()
        raise ApiError(409, "annotations of the selection changed meanwhile; nothing was decided, try again",
                       code="annotation_conflict") from None
    filters = {k: v for k, v in data.items() if k in ("class_label", "frame_from", "frame_to", "only_pending",
                                                      "force")}
    if "annotation_ids" in data:
        filters["annotation_ids"] = len(data["annotation_ids"])
    audit(db, "validate", "annotation_session", ann_session.id, {
        "status": data["status"], "decided": len(decided), "skipped": len(skipped), "filters": filters,
        "annotation_ids": [str(a.id) for a, _ in decided][:1000]})
    db.commit()
    for a, findings in decided:
        payload = annotation_dict(a)
        socketio.emit(rooms.ANNOTATION_VALIDATED, {
            "annotation_id": str(a.id), "session_id": str(ann_session.id),
            "validation": {"status": a.validation_status, "validated_by": str(user.id),
                           "validated_at": payload["validated_at"], "reason": a.validation_reason,
                           "findings": findings}}, to=rooms.annotation_room(ann_session.id))
        broadcast(ann_session.id, "update", payload, user)
    return {"session_id": str(ann_session.id), "status": data["status"], "decided": len(decided),
            "annotation_ids": [str(a.id) for a, _ in decided], "with_warnings": warned, "skipped": skipped,
            "progress": progress(db, ann_session.id)}
