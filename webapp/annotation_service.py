"""Annotation edits shared by the HTTP routes and the collaborative Socket.IO channel.

Both paths validate the same way, persist the same way (optimistic concurrency on the
annotation's ``version``), and broadcast the same ``annotation_update`` to the session's room.
"""
from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

import bindings
from keyframes import CheckLimits, Timeline, box_errors, check_track, interpolate
from models import AnnotationKeyframe, AnnotationSession, Project, Video, VideoAnnotation, utcnow
from tasks import rooms

from .auth import Principal, get_or_404
from .errors import ApiError, validation_error
from .extensions import socketio
from .schemas import AnnotationOut, KeyframeEdits
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



# ------------------------------------------------------------------------------ track edits


def keyframe_edits(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[int]]:
    """Take the keyframe changes out of a collaborative edit's body (422 when malformed)."""
    raw = {k: body.pop(k) for k in ("keyframes", "delete_keyframes") if k in body}
    try:
        edits = KeyframeEdits().load(raw)
    except ValidationError as exc:
        raise validation_error({"annotation": exc.messages}, "data") from None
    return edits["keyframes"], edits["delete_keyframes"]


def apply_keyframes(db: Session, annotation: VideoAnnotation, video: Video, upserts: list[dict[str, Any]],
                    deletes: list[int]) -> None:
    """Set keyframes by frame number (a frame holds one keyframe) and delete others, as one
    change of the annotation: its version moves once."""
    if not upserts and not deletes:
        return
    by_frame = {k.frame_number: k for k in annotation.keyframes}
    for frame in deletes:
        if frame in by_frame:
            annotation.keyframes.remove(by_frame.pop(frame))
    for data in upserts:
        values = keyframe_values(data, annotation, video)
        keyframe = by_frame.get(values["frame_number"])
        if keyframe is None:
            by_frame[values["frame_number"]] = keyframe = AnnotationKeyframe(annotation_id=annotation.id, **values)
            annotation.keyframes.append(keyframe)
        else:
            for key, value in values.items():
                setattr(keyframe, key, value)
    touch(db, annotation)


def _boxes_on(annotation: VideoAnnotation, timeline: Timeline, frames: list[int]) -> list[dict[str, float] | None]:
    """The track's box on each frame as ``/boxes`` gives it; None where it is outside."""
    spec = bindings.track(annotation)
    rows = interpolate(spec.keyframes, np.asarray(frames), timeline, spec.box)
    return [None if b[0] != b[0] else dict(zip(("x1", "y1", "x2", "y2"), (float(v) for v in b), strict=True))
            for b in rows]


def _copy_keyframe(keyframe: AnnotationKeyframe, owner: VideoAnnotation) -> AnnotationKeyframe:
    return AnnotationKeyframe(annotation_id=owner.id, frame_number=keyframe.frame_number,
                              timestamp=keyframe.timestamp, frame_data=dict(keyframe.frame_data),
                              screenshot_path=keyframe.screenshot_path)


def _pin(keyframes: list[AnnotationKeyframe], owner: VideoAnnotation, timeline: Timeline, frame: int, box: dict | None,
         fallback: dict | None) -> list[AnnotationKeyframe]:
    """A keyframe for ``owner`` that holds the state on ``frame`` (outside where there is no box),
    unless ``keyframes`` already has one there."""
    if any(k.frame_number == frame for k in keyframes) or (box is None and fallback is None):
        return []
    data = {"bounding_box": box} if box is not None else {"bounding_box": fallback, "outside": True}
    return [AnnotationKeyframe(annotation_id=owner.id, frame_number=frame, timestamp=float(timeline.time_of(frame)),
                               frame_data=data)]


def _any_box(annotation: VideoAnnotation) -> dict | None:
    boxes = [k.frame_data["bounding_box"] for k in annotation.keyframes
             if isinstance(k.frame_data.get("bounding_box"), dict)]
    return boxes[0] if boxes else annotation.bounding_box


def _check_base(annotation: VideoAnnotation, base_version: int | None) -> None:
    if base_version is not None and base_version != annotation.version:
        raise EditConflict(annotation_dict(annotation))


def split_annotation(db: Session, user: Principal, annotation_id: uuid.UUID, frame: int, base_version: int | None,
                     new_id: uuid.UUID | None = None) -> tuple[VideoAnnotation, VideoAnnotation]:
    """Cut a track in two at ``frame``: the first keeps frames before it, a new track (same label,
    review state and fields) takes ``frame`` on. Every frame keeps the box it had."""
    annotation, _, _, video = load_annotation(db, user, annotation_id, write=True)
    _check_base(annotation, base_version)
    timeline = video_timeline(video)
    span = timeline.frames_between(annotation.start_timestamp, annotation.end_timestamp)
    if span.size < 2 or not int(span[0]) < frame <= int(span[-1]):
        first, last = (int(span[0]), int(span[-1])) if span.size else (None, None)
        raise validation_error({"frame_number": f"split at a frame after the track's first ({first}) up to its "
                                                f"last ({last})"})
    before_box, at_box = _boxes_on(annotation, timeline, [frame - 1, frame])
    fallback = _any_box(annotation)
    after = VideoAnnotation(id=new_id or uuid.uuid4(), annotation_session_id=annotation.annotation_session_id,
                            video_id=annotation.video_id, start_timestamp=float(timeline.time_of(frame)),
                            end_timestamp=annotation.end_timestamp,
                            **{k: getattr(annotation, k) for k in EDITABLE
                               if k not in ("start_timestamp", "end_timestamp")},
                            validation_status=annotation.validation_status, validated_by=annotation.validated_by,
                            validated_at=annotation.validated_at, validation_reason=annotation.validation_reason)
    db.add(after)
    keyed = bool(annotation.keyframes)
    for keyframe in [k for k in annotation.keyframes if k.frame_number >= frame]:
        after.keyframes.append(_copy_keyframe(keyframe, after))
        annotation.keyframes.remove(keyframe)
    if keyed:
        annotation.keyframes.extend(_pin(annotation.keyframes, annotation, timeline, frame - 1, before_box, None))
        after.keyframes.extend(_pin(after.keyframes, after, timeline, frame, at_box, fallback))
    annotation.end_timestamp = float(timeline.time_of(frame - 1))
    touch(db, annotation)
    return annotation, after


def merge_annotations(db: Session, user: Principal, annotation_id: uuid.UUID, other_id: uuid.UUID,
                      base_version: int | None, other_base_version: int | None) -> tuple[VideoAnnotation, dict]:
    """Join two tracks of one label that do not overlap in time into the first (``annotation_id``);
    the other is deleted. Every frame keeps the box it had; frames between them are outside."""
    if other_id == annotation_id:
        raise validation_error({"other_id": "cannot merge a track with itself"})
    keep, _, _, video = load_annotation(db, user, annotation_id, write=True)
    other = db.get(VideoAnnotation, other_id)
    if other is None or other.annotation_session_id != keep.annotation_session_id:
        raise validation_error({"other_id": "no such annotation in this annotation session"})
    _check_base(keep, base_version)
    _check_base(other, other_base_version)
    if other.class_label != keep.class_label:
        raise validation_error({"other_id": f"the tracks have different labels ({keep.class_label}, "
                                            f"{other.class_label}): give them one label first"})
    timeline = video_timeline(video)
    first, later = sorted((keep, other), key=lambda a: (a.start_timestamp, a.end_timestamp))
    fa = timeline.frames_between(first.start_timestamp, first.end_timestamp)
    fb = timeline.frames_between(later.start_timestamp, later.end_timestamp)
    if not fa.size or not fb.size or int(fb[0]) <= int(fa[-1]):
        raise validation_error({"other_id": "the tracks overlap in time: split or shorten one first"})
    end_a, start_b = int(fa[-1]), int(fb[0])
    (box_a,), (box_b,) = _boxes_on(first, timeline, [end_a]), _boxes_on(later, timeline, [start_b])
    fallback = _any_box(first) or _any_box(later)
    gone, span = annotation_dict(other), (first.start_timestamp, later.end_timestamp)
    added = (_pin(first.keyframes, keep, timeline, end_a, box_a, None)
             + _pin(later.keyframes, keep, timeline, start_b, box_b, fallback)
             + (_pin([], keep, timeline, end_a + 1, None, box_a) if start_b > end_a + 1 and box_a is not None else []))
    moved = [_copy_keyframe(k, keep) for k in other.keyframes]
    db.delete(other)
    _flush_versioned(db, other)
    keep.keyframes.extend(moved + added)
    keep.start_timestamp, keep.end_timestamp = span
    touch(db, keep)
    return keep, gone
