"""Annotation edits shared by the HTTP routes and the collaborative Socket.IO channel.

Both paths validate the same way, persist the same way (optimistic concurrency on the
annotation's ``version``), and broadcast the same ``annotation_update`` to the session's room.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

import bindings
from keyframes import CheckLimits, box_errors, check_track
from models import AnnotationSession, Project, Video, VideoAnnotation, utcnow
from tasks import rooms

from .auth import Principal, get_or_404
from .errors import ApiError, validation_error
from .extensions import socketio
from .schemas import AnnotationOut
from .timelines import video_timeline

EDITABLE = ("start_timestamp", "end_timestamp", "annotation_type", "class_label", "bounding_box", "confidence",
            "annotator_notes", "keyframe_data")


class EditConflict(Exception):
    """The client edited a version that is no longer current."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("stale base_version")
        self.current = current


def annotation_dict(annotation: VideoAnnotation) -> dict[str, Any]:
    return AnnotationOut().dump(annotation)




# ------------------------------------------------------------------------------ access


def load_session(db: Session, user: Principal, session_id: uuid.UUID, write: bool = False
                 ) -> tuple[AnnotationSession, Project, Video]:
    """The session if the user may read it (or write to it); a completed session is read-only."""
    ann_session = get_or_404(AnnotationSession, session_id, "annotation session", write=write, session=db, user=user)
    if write and ann_session.status == "completed":
        raise ApiError(409, "the annotation session is completed and read-only until an admin reopens it",
                       details={"status": "completed"})
    return ann_session, db.get(Project, ann_session.project_id), db.get(Video, ann_session.video_id)


def load_annotation(db: Session, user: Principal, annotation_id: uuid.UUID, write: bool = False
                    ) -> tuple[VideoAnnotation, AnnotationSession, Project, Video]:
    annotation = db.get(VideoAnnotation, annotation_id)
    if annotation is None:
        raise ApiError(404, "annotation not found")
    ann_session, project, video = load_session(db, user, annotation.annotation_session_id, write)
    return annotation, ann_session, project, video


def annotation_counts(db: Session, session_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not session_ids:
        return {}
    rows = db.execute(select(VideoAnnotation.annotation_session_id, func.count())
                      .where(VideoAnnotation.annotation_session_id.in_(session_ids))
                      .group_by(VideoAnnotation.annotation_session_id)).all()
    return {sid: n for sid, n in rows}


# ------------------------------------------------------------------------------ validation


def check_fields(values: dict[str, Any], project: Project, video: Video) -> None:
    """Every problem with its field, not only the first (422)."""
    errors: dict[str, list[str]] = {}
    start, end = values.get("start_timestamp"), values.get("end_timestamp")
    if start is not None and end is not None and start > end:
        errors.setdefault("end_timestamp", []).append("must not be before start_timestamp")
    for key in ("start_timestamp", "end_timestamp"):
        value = values.get(key)
        if value is not None and value > video.duration + 1e-6:
            errors.setdefault(key, []).append(f"{value} s is past the end of the video ({video.duration} s)")
    box = values.get("bounding_box")
    if box is not None:
        for message in box_errors(bindings.box_coords(box), video.width, video.height):
            errors.setdefault("bounding_box", []).append(message)
    label = values.get("class_label")
    if label is not None and label not in project.labels:
        errors.setdefault("class_label", []).append(
            f"'{label}' is not in the project's labels: {', '.join(project.labels)}")
    if errors:
        raise validation_error(errors)


# ------------------------------------------------------------------------------ edits


def broadcast(session_id: uuid.UUID, op: str, annotation: dict[str, Any], user: Principal,
              skip_sid: str | None = None) -> None:
    socketio.emit(rooms.ANNOTATION_UPDATE, {
        "session_id": str(session_id), "op": op, "annotation": annotation, "version": annotation.get("version"),
        "from_user": {"id": str(user.id), "username": user.username},
    }, to=rooms.annotation_room(session_id), skip_sid=skip_sid)


def create_annotation(db: Session, user: Principal, data: dict[str, Any]) -> VideoAnnotation:
    ann_session, project, video = load_session(db, user, data["annotation_session_id"], write=True)
    if data["video_id"] != ann_session.video_id:
        raise validation_error({"video_id": "must be the video of the annotation session"})
    check_fields(data, project, video)
    annotation = VideoAnnotation(id=data.get("id") or uuid.uuid4(), **{k: data[k] for k in EDITABLE if k in data},
                                 annotation_session_id=ann_session.id, video_id=video.id)
    db.add(annotation)
    db.flush()
    return annotation


def update_annotation(db: Session, user: Principal, annotation_id: uuid.UUID, data: dict[str, Any],
                      base_version: int | None) -> VideoAnnotation:
    annotation, _, project, video = load_annotation(db, user, annotation_id, write=True)
    if base_version is not None and base_version != annotation.version:
        raise EditConflict(annotation_dict(annotation))
    merged = {k: getattr(annotation, k) for k in EDITABLE} | data
    check_fields(merged, project, video)
    for key, value in data.items():
        setattr(annotation, key, value)
    _flush_versioned(db, annotation)
    return annotation


def delete_annotation(db: Session, user: Principal, annotation_id: uuid.UUID, base_version: int | None
                      ) -> dict[str, Any]:
    annotation, *_ = load_annotation(db, user, annotation_id, write=True)
    if base_version is not None and base_version != annotation.version:
        raise EditConflict(annotation_dict(annotation))
    gone = annotation_dict(annotation)
    db.delete(annotation)
    _flush_versioned(db, annotation)
    return gone


def touch(db: Session, annotation: VideoAnnotation) -> None:
    """A keyframe change is a change of its annotation: bump the version."""
    annotation.updated_at = utcnow()
    _flush_versioned(db, annotation)


def _flush_versioned(db: Session, annotation: VideoAnnotation) -> None:
    try:
        db.flush()
    except StaleDataError:
        # Someone else changed it between our read and our write.
        db.rollback()
        current = db.get(VideoAnnotation, annotation.id)
        raise EditConflict(annotation_dict(current) if current else None) from None


# ------------------------------------------------------------------------------ keyframes


def keyframe_values(data: dict[str, Any], annotation: VideoAnnotation, video: Video) -> dict[str, Any]:
    """Check a keyframe against the video's real timeline and the annotation's time span."""
    timeline = video_timeline(video)
    frame = data["frame_number"]
    if frame >= timeline.frame_count:
        raise validation_error(
            {"frame_number": f"the video has {timeline.frame_count} frames (0-{timeline.frame_count - 1})"})
    actual = float(timeline.time_of(frame))
    given = data.get("timestamp")
    if given is not None and abs(given - actual) > max(1e-3, timeline.frame_interval(frame) / 2):
        raise validation_error({"timestamp": f"frame {frame} is at {actual:.6f} s in this video, not {given}"})
    if not annotation.start_timestamp - 1e-6 <= actual <= annotation.end_timestamp + 1e-6:
        raise validation_error({"frame_number": f"frame {frame} ({actual:.3f} s) is outside the annotation's "
                                                f"time span {annotation.start_timestamp}-{annotation.end_timestamp} s"})
    box = data.get("frame_data", {}).get("bounding_box")
    if box is not None:
        coords = bindings.box_coords(box)
        errors = box_errors(coords, video.width, video.height) if None not in coords and coords else [
            "bounding_box needs x1, y1, x2, y2"]
        if errors:
            raise validation_error({"frame_data": "; ".join(errors)})
    return {**data, "timestamp": actual}


# ------------------------------------------------------------------------------ checks


def consistency_findings(db: Session, annotation: VideoAnnotation, video: Video,
                         limits: CheckLimits = CheckLimits()) -> list[dict[str, Any]]:
    others = db.scalars(select(VideoAnnotation).where(
        VideoAnnotation.annotation_session_id == annotation.annotation_session_id,
        VideoAnnotation.id != annotation.id, VideoAnnotation.validation_status != "rejected",
        VideoAnnotation.class_label == annotation.class_label,
        VideoAnnotation.start_timestamp <= annotation.end_timestamp,
        VideoAnnotation.end_timestamp >= annotation.start_timestamp)).all()
    findings = check_track(bindings.track(annotation), [bindings.track(o) for o in others], video_timeline(video),
                           video.width, video.height, video.duration, limits)
    return [f.to_dict() for f in findings]

