"""Annotation sessions, temporal annotations, keyframes and the validation workflow.

Boxes are pixel coordinates ``{"x1", "y1", "x2", "y2"}`` with the origin at the frame's
top-left corner, ``x2 > x1`` and ``y2 > y1``; a box must overlap the frame. Keyframes put a box
(``frame_data.bounding_box``) on a frame; between keyframes the box moves linearly in time.
"""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

import bindings
from keyframes import interpolate
from models import AnnotationKeyframe, AnnotationSession, Video, VideoAnnotation, utcnow
from tasks import rooms

from ..annotation_service import (
    EditConflict,
    annotation_counts,
    annotation_dict,
    broadcast,
    consistency_findings,
    create_annotation,
    delete_annotation,
    keyframe_values,
    load_annotation,
    load_session,
    merge_annotations,
    split_annotation,
    touch,
    update_annotation,
)
from ..auth import current_user, get_project_for, member_projects, project_role
from ..db import audit, db_session, paginate, parse_uuid, row_view
from ..errors import ApiError, validation_error
from ..extensions import socketio
from ..schemas import (
    AnnotationCreate,
    AnnotationListArgs,
    AnnotationOut,
    AnnotationPage,
    AnnotationPatch,
    AnnotationSessionCreate,
    AnnotationSessionListArgs,
    AnnotationSessionOut,
    AnnotationSessionPage,
    AnnotationSessionPatch,
    BoxesArgs,
    KeyframeCreate,
    KeyframeOut,
    KeyframePatch,
    MergeIn,
    SplitIn,
    SplitOut,
    ValidateIn,
)
from ..timelines import video_timeline

bp = Blueprint("annotations", __name__, url_prefix="/api/annotations",
               description="Annotation sessions, temporal annotations, keyframes, validation")
MAX_BOX_FRAMES = 20000
TRANSITIONS = {("active", "paused"), ("paused", "active"), ("active", "completed"), ("paused", "completed")}


def _with_count(sessions: list[AnnotationSession]) -> list[dict]:
    counts = annotation_counts(db_session(), [s.id for s in sessions])
    return [row_view(s, annotation_count=counts.get(s.id, 0)) for s in sessions]


def _conflict(exc: EditConflict) -> ApiError:
    return ApiError(409, "the annotation changed since base_version; here is the current state",
                    code="annotation_conflict", details={"current": exc.current})


# ------------------------------------------------------------------------------ sessions


@bp.route("/sessions", methods=["POST"])
@bp.arguments(AnnotationSessionCreate)
@bp.response(201, AnnotationSessionOut)
def create_session(data: dict[str, Any]) -> dict[str, Any]:
    db, user = db_session(), current_user()
    project = get_project_for(db, user, data["project_id"], write=True)
    video = db.get(Video, data["video_id"])
    if video is None:
        raise ApiError(404, "video not found")
    if video.project_id != project.id:
        raise validation_error({"video_id": "the video does not belong to this project"})
    ann_session = AnnotationSession(project_id=project.id, video_id=video.id, annotator_id=str(user.id),
                                    session_name=data["session_name"], annotation_type=data["annotation_type"],
                                    meta=data["metadata"])
    db.add(ann_session)
    db.flush()
    audit(db, "create", "annotation_session", ann_session.id, {"video_id": str(video.id)})
    db.commit()
    return _with_count([ann_session])[0]


@bp.route("/sessions", methods=["GET"])
@bp.arguments(AnnotationSessionListArgs, location="query")
@bp.response(200, AnnotationSessionPage)
def list_sessions(args: dict[str, Any]) -> dict[str, Any]:
    db, user = db_session(), current_user()
    stmt = select(AnnotationSession)
    if not user.is_admin:
        stmt = stmt.where(AnnotationSession.project_id.in_(member_projects(user)))
    if "project_id" in args:
        get_project_for(db, user, args["project_id"])
    for key in ("project_id", "video_id", "status", "annotator_id"):
        if key in args:
            stmt = stmt.where(getattr(AnnotationSession, key) == args[key])
    page = paginate(db, stmt.order_by(AnnotationSession.created_at, AnnotationSession.id),
                    args["page"], args["per_page"])
    page["items"] = _with_count(list(page["items"]))
    return page


@bp.route("/sessions/<session_id>", methods=["GET"])
@bp.response(200, AnnotationSessionOut)
def get_session(session_id: str) -> dict[str, Any]:
    ann_session, *_ = load_session(db_session(), current_user(), parse_uuid(session_id, "annotation session"))
    return _with_count([ann_session])[0]


@bp.route("/sessions/<session_id>", methods=["PATCH"])
@bp.arguments(AnnotationSessionPatch)
@bp.response(200, AnnotationSessionOut)
def patch_session(data: dict[str, Any], session_id: str) -> dict[str, Any]:
    """Rename, change metadata, or move the status: active ⇄ paused → completed.

    A completed session is read-only; a project administrator reopens it (status ``active``).
    """
    db, user = db_session(), current_user()
    ann_session, *_ = load_session(db, user, parse_uuid(session_id, "annotation session"))
    role = project_role(db, user, ann_session.project_id)
    if role not in ("admin", "annotator"):
        raise ApiError(403, "annotator or administrator role required in this project")
    new_status = data.get("status", ann_session.status)
    if ann_session.status == "completed":
        if new_status != "active" or role != "admin":
            raise ApiError(409, "the session is completed; only a project administrator can reopen it "
                                "(status: active)", details={"status": "completed"})
    elif new_status != ann_session.status and (ann_session.status, new_status) not in TRANSITIONS:
        raise ApiError(409, f"cannot move from {ann_session.status} to {new_status}")
    if "session_name" in data:
        ann_session.session_name = data["session_name"]
    if "metadata" in data:
        ann_session.meta = data["metadata"]
    if new_status != ann_session.status:
        ann_session.end_time = utcnow() if new_status == "completed" else None
        ann_session.status = new_status
    audit(db, "update", "annotation_session", ann_session.id, {"fields": sorted(data)})
    db.commit()
    return _with_count([ann_session])[0]


# ------------------------------------------------------------------------------ annotations


@bp.route("/temporal", methods=["POST"])
@bp.arguments(AnnotationCreate)
@bp.response(201, AnnotationOut)
def add_temporal_annotation(data: dict[str, Any]) -> VideoAnnotation:
    db, user = db_session(), current_user()
    annotation = create_annotation(db, user, data)
    audit(db, "create", "annotation", annotation.id)
    db.commit()
    payload = annotation_dict(annotation)
    broadcast(annotation.annotation_session_id, "create", payload, user)
    return annotation


@bp.route("/temporal", methods=["GET"])
@bp.arguments(AnnotationListArgs, location="query")
@bp.response(200, AnnotationPage)
def list_annotations(args: dict[str, Any]) -> dict[str, Any]:
    """Filter by session, time range and/or frame range (spans that overlap it), class, status."""
    db, user = db_session(), current_user()
    stmt = select(VideoAnnotation)
    video = None
    if "session_id" in args:
        ann_session, _, video = load_session(db, user, args["session_id"])
        stmt = stmt.where(VideoAnnotation.annotation_session_id == ann_session.id)
    if "video_id" in args:
        video = db.get(Video, args["video_id"])
        if video is None:
            raise ApiError(404, "video not found")
        if video.project_id is None or project_role(db, user, video.project_id) is None:
            raise ApiError(403, "not allowed to see this video's annotations")
        stmt = stmt.where(VideoAnnotation.video_id == video.id)
        if not user.is_admin:  # sessions of other projects may annotate this video too: not theirs to see
            stmt = stmt.where(VideoAnnotation.annotation_session_id.in_(
                select(AnnotationSession.id).where(AnnotationSession.project_id.in_(member_projects(user)))))
    if video is None:
        raise validation_error({"session_id": "give session_id or video_id"})
    time_from, time_to = args.get("time_from"), args.get("time_to")
    if "frame_from" in args or "frame_to" in args:
        timeline = video_timeline(video)
        last = timeline.frame_count - 1
        f_from, f_to = min(args.get("frame_from", 0), last), min(args.get("frame_to", last), last)
        time_from = max(time_from or 0.0, float(timeline.time_of(f_from)))
        time_to = min(time_to if time_to is not None else float("inf"), float(timeline.time_of(f_to)))
    if time_from is not None:
        stmt = stmt.where(VideoAnnotation.end_timestamp >= time_from)
    if time_to is not None:
        stmt = stmt.where(VideoAnnotation.start_timestamp <= time_to)
    for key in ("class_label", "validation_status"):
        if key in args:
            stmt = stmt.where(getattr(VideoAnnotation, key) == args[key])
    return paginate(db, stmt.order_by(VideoAnnotation.start_timestamp, VideoAnnotation.id),
                    args["page"], args["per_page"])


@bp.route("/<annotation_id>", methods=["GET"])
@bp.response(200, AnnotationOut)
def get_annotation(annotation_id: str) -> VideoAnnotation:
    annotation, *_ = load_annotation(db_session(), current_user(), parse_uuid(annotation_id, "annotation"))
    return annotation


@bp.route("/<annotation_id>", methods=["PATCH"])
@bp.arguments(AnnotationPatch)
@bp.response(200, AnnotationOut)
def patch_annotation(data: dict[str, Any], annotation_id: str) -> VideoAnnotation:
    """Change fields; with ``base_version``, a stale edit is refused with 409 and the current state."""
    db, user = db_session(), current_user()
    base = data.pop("base_version", None)
    try:
        annotation = update_annotation(db, user, parse_uuid(annotation_id, "annotation"), data, base)
    except EditConflict as exc:
        raise _conflict(exc) from None
    audit(db, "update", "annotation", annotation.id, {"fields": sorted(data)})
    db.commit()
    broadcast(annotation.annotation_session_id, "update", annotation_dict(annotation), user)
    return annotation


@bp.route("/<annotation_id>", methods=["DELETE"])
@bp.response(204)
def remove_annotation(annotation_id: str) -> None:
    db, user = db_session(), current_user()
    try:
        gone = delete_annotation(db, user, parse_uuid(annotation_id, "annotation"), None)
    except EditConflict as exc:
        raise _conflict(exc) from None
    audit(db, "delete", "annotation", gone["id"])
    db.commit()
    broadcast(gone["annotation_session_id"], "delete", gone, user)


@bp.route("/<annotation_id>/boxes", methods=["GET"])
@bp.arguments(BoxesArgs, location="query")
def annotation_boxes(args: dict[str, Any], annotation_id: str) -> dict[str, Any]:
    """The box on every frame of the range, interpolated between keyframes, with its timestamp."""
    db = db_session()
    annotation, _, _, video = load_annotation(db, current_user(), parse_uuid(annotation_id, "annotation"))
    timeline = video_timeline(video)
    span = timeline.frames_between(annotation.start_timestamp, annotation.end_timestamp)
    if span.size == 0 or (annotation.bounding_box is None and not annotation.keyframes):
        return {"annotation_id": str(annotation.id), "version": annotation.version, "boxes": []}
    lo = max(int(span[0]), args.get("frame_from", int(span[0])))
    hi = min(int(span[-1]), args.get("frame_to", int(span[-1])))
    if hi - lo + 1 > MAX_BOX_FRAMES:
        raise validation_error({"frame_to": f"ask for at most {MAX_BOX_FRAMES} frames at a time"})
    frames = span[(span >= lo) & (span <= hi)]
    track = bindings.track(annotation)
    boxes = interpolate(track.keyframes, frames, timeline, track.box)
    times = timeline.time_of(frames)
    keyed = {k.frame_number for k in annotation.keyframes  # boxes an import kept from an interpolating tool are not
             if k.frame_data.get("keyframe", True) and not k.frame_data.get("outside")}
    return {"annotation_id": str(annotation.id), "version": annotation.version, "boxes": [
        {"frame_number": int(f), "timestamp": round(float(t), 6), "keyframe": int(f) in keyed,
         "bounding_box": bindings.box_dict(b, 3)}
        for f, t, b in zip(frames, times, boxes, strict=True) if b[0] == b[0]]}  # NaN: outside the view


# ------------------------------------------------------------------------------ keyframes


@bp.route("/<annotation_id>/keyframes", methods=["POST"])
@bp.arguments(KeyframeCreate)
@bp.response(201, KeyframeOut)
def create_keyframe(data: dict[str, Any], annotation_id: str) -> AnnotationKeyframe:
    db, user = db_session(), current_user()
    annotation, _, _, video = load_annotation(db, user, parse_uuid(annotation_id, "annotation"), write=True)
    named = data.pop("annotation_id", annotation.id)
    if named != annotation.id:
        raise validation_error({"annotation_id": f"the URL names annotation {annotation.id}, the body {named}"})
    values = keyframe_values(data, annotation, video)
    if any(k.frame_number == values["frame_number"] for k in annotation.keyframes):
        raise ApiError(409, f"frame {values['frame_number']} already has a keyframe")
    keyframe = AnnotationKeyframe(annotation_id=annotation.id, **values)
    annotation.keyframes.append(keyframe)
    _touch_or_conflict(db, annotation)
    audit(db, "create", "keyframe", keyframe.id, {"annotation_id": str(annotation.id)})
    db.commit()
    broadcast(annotation.annotation_session_id, "update", annotation_dict(annotation), user)
    return keyframe


@bp.route("/<annotation_id>/keyframes", methods=["GET"])
@bp.response(200, KeyframeOut(many=True))
def list_keyframes(annotation_id: str) -> list[AnnotationKeyframe]:
    annotation, *_ = load_annotation(db_session(), current_user(), parse_uuid(annotation_id, "annotation"))
    return annotation.keyframes


def _keyframe(annotation: VideoAnnotation, keyframe_id: str) -> AnnotationKeyframe:
    kid = parse_uuid(keyframe_id, "keyframe")
    for keyframe in annotation.keyframes:
        if keyframe.id == kid:
            return keyframe
    raise ApiError(404, "keyframe not found")


def _touch_or_conflict(db: Session, annotation: VideoAnnotation) -> None:
    try:
        touch(db, annotation)
    except EditConflict as exc:
        raise _conflict(exc) from None


@bp.route("/<annotation_id>/keyframes/<keyframe_id>", methods=["PATCH"])
@bp.arguments(KeyframePatch)
@bp.response(200, KeyframeOut)
def patch_keyframe(data: dict[str, Any], annotation_id: str, keyframe_id: str) -> AnnotationKeyframe:
    db, user = db_session(), current_user()
    annotation, _, _, video = load_annotation(db, user, parse_uuid(annotation_id, "annotation"), write=True)
    keyframe = _keyframe(annotation, keyframe_id)
    merged = {"frame_number": keyframe.frame_number, "frame_data": keyframe.frame_data} | data
    if "frame_number" in data and "timestamp" not in data:
        merged.pop("timestamp", None)
    values = keyframe_values(merged, annotation, video)
    if any(k.frame_number == values["frame_number"] and k.id != keyframe.id for k in annotation.keyframes):
        raise ApiError(409, f"frame {values['frame_number']} already has a keyframe")
    for key, value in values.items():
        setattr(keyframe, key, value)
    _touch_or_conflict(db, annotation)
    audit(db, "update", "keyframe", keyframe.id, {"annotation_id": str(annotation.id)})
    db.commit()
    broadcast(annotation.annotation_session_id, "update", annotation_dict(annotation), user)
    return keyframe


@bp.route("/<annotation_id>/keyframes/<keyframe_id>", methods=["DELETE"])
@bp.response(204)
def delete_keyframe(annotation_id: str, keyframe_id: str) -> None:
    db, user = db_session(), current_user()
    annotation, *_ = load_annotation(db, user, parse_uuid(annotation_id, "annotation"), write=True)
    keyframe = _keyframe(annotation, keyframe_id)
    annotation.keyframes.remove(keyframe)
    _touch_or_conflict(db, annotation)
    audit(db, "delete", "keyframe", keyframe.id, {"annotation_id": str(annotation.id)})
    db.commit()
    broadcast(annotation.annotation_session_id, "update", annotation_dict(annotation), user)


# ------------------------------------------------------------------------------ validation


@bp.route("/<annotation_id>/validate", methods=["POST"])
@bp.arguments(ValidateIn)
def validate_annotation(data: dict[str, Any], annotation_id: str) -> dict[str, Any]:
    """Accept (``validated``) or reject an annotation, recorded with who and when.

    Before accepting, consistency checks run: overlapping duplicates of the same class and
    annotations outside the video are errors, long gaps between keyframes and implausible
    jumps are warnings. Errors refuse the validation (409 with the findings) unless ``force``.
    """
    db, user = db_session(), current_user()
    annotation, _, _, video = load_annotation(db, user, parse_uuid(annotation_id, "annotation"), write=True)
    findings = consistency_findings(db, annotation, video) if data["status"] == "validated" else []
    if any(f["severity"] == "error" for f in findings) and not data["force"]:
        raise ApiError(409, "consistency checks found problems; fix them or validate with force",
                       code="consistency_failed", details={"findings": findings})
    annotation.validation_status = data["status"]
    annotation.validated_by = user.id
    annotation.validated_at = utcnow()
    annotation.validation_reason = data["reason"]
    _touch_or_conflict(db, annotation)
    audit(db, "validate", "annotation", annotation.id, {"status": data["status"], "findings": len(findings)})
    db.commit()
    payload = annotation_dict(annotation)
    validation = {"status": annotation.validation_status, "validated_by": str(user.id),
                  "validated_at": payload["validated_at"], "reason": annotation.validation_reason,
                  "findings": findings}
    socketio.emit(rooms.ANNOTATION_VALIDATED, {"annotation_id": str(annotation.id),
                                           "session_id": str(annotation.annotation_session_id),
                                           "validation": validation},
                  to=rooms.annotation_room(annotation.annotation_session_id))
    broadcast(annotation.annotation_session_id, "update", payload, user)
    return {"annotation": payload, "findings": findings}


# ------------------------------------------------------------------------------ split and merge


@bp.route("/<annotation_id>/split", methods=["POST"])
@bp.arguments(SplitIn)
@bp.response(201, SplitOut)
def split_track(data: dict[str, Any], annotation_id: str) -> dict[str, VideoAnnotation]:
    """Cut the track in two at ``frame_number``: this one ends on the frame before, a new track
    (same label and review state) starts there. Every frame keeps its box (``/boxes``)."""
    db, user = db_session(), current_user()
    try:
        before, after = split_annotation(db, user, parse_uuid(annotation_id, "annotation"), data["frame_number"],
                                         data.get("base_version"), data.get("new_id"))
    except EditConflict as exc:
        raise _conflict(exc) from None
    audit(db, "split", "annotation", before.id, {"frame_number": data["frame_number"], "new_id": str(after.id)})
    db.commit()
    broadcast(before.annotation_session_id, "update", annotation_dict(before), user)
    broadcast(before.annotation_session_id, "create", annotation_dict(after), user)
    return {"before": before, "after": after}


@bp.route("/<annotation_id>/merge", methods=["POST"])
@bp.arguments(MergeIn)
@bp.response(200, AnnotationOut)
def merge_tracks(data: dict[str, Any], annotation_id: str) -> VideoAnnotation:
    """Join ``other_id`` (same label, no overlap in time) into this track and delete it; frames
    between the two are outside. Every frame keeps its box (``/boxes``)."""
    db, user = db_session(), current_user()
    try:
        kept, gone = merge_annotations(db, user, parse_uuid(annotation_id, "annotation"), data["other_id"],
                                       data.get("base_version"), data.get("other_base_version"))
    except EditConflict as exc:
        raise _conflict(exc) from None
    audit(db, "merge", "annotation", kept.id, {"merged": gone["id"]})
    db.commit()
    broadcast(kept.annotation_session_id, "update", annotation_dict(kept), user)
    broadcast(kept.annotation_session_id, "delete", gone, user)
    return kept
