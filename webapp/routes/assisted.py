"""Model-assisted annotation: a test session's tracked detections become a new annotation
session of ``pending`` pre-annotations, for a person to correct and validate.

One annotation per track (its most frequent class), keyframes only where interpolating between
the kept ones would move the box by more than ``keyframe_iou`` allows
(:func:`keyframes.track_keyframes`), and outside marks where the tracker lost the object for
more than ``max_missed_frames`` of the frames the model ran on.
"""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
from flask_smorest import Blueprint
from sqlalchemy import select

from keyframes import CheckLimits, track_keyframes
from models import AnnotationKeyframe, AnnotationSession, DetectionEvent, TestSession, Video, VideoAnnotation
from tasks.evaluation import evaluated_frames

from ..auth import current_user, get_or_404, get_project_for
from ..db import audit, db_session
from ..errors import ApiError, validation_error
from ..schemas import AnnotationSessionOut, PreAnnotateIn
from ..timelines import video_timeline

bp = Blueprint("assisted", __name__, url_prefix="/api/test-sessions",
               description="Model-assisted annotation: pre-annotations from a model's tracks")

COORDS = ("x1", "y1", "x2", "y2")
MAX_TRACKS = 5000


def _box(values: Iterable[float]) -> dict[str, float]:
    return {c: round(float(v), 3) for c, v in zip(COORDS, values, strict=True)}


@bp.route("/<test_session_id>/pre-annotations", methods=["POST"])
@bp.arguments(PreAnnotateIn)
@bp.response(201, AnnotationSessionOut)
def pre_annotate(data: dict[str, Any], test_session_id: str) -> AnnotationSession:
    """Make a new annotation session of the session's video from its tracked detections, every
    annotation ``pending``; answers the new session (``metadata`` says how it was made)."""
    db, user = db_session(), current_user()
    ts = get_or_404(TestSession, test_session_id, "test session")
    project = get_project_for(db, user, ts.project_id, write=True)
    if ts.status != "completed":
        raise ApiError(409, f"the test session's detections are not complete (status {ts.status})")
    labels = [str(x) for x in project.labels or []]
    classes = list(dict.fromkeys(data.get("classes") or labels))
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise validation_error({"classes": f"not labels of this project: {', '.join(unknown)}"})
    rows = db.execute(
        select(DetectionEvent.track_id, DetectionEvent.frame_number, DetectionEvent.class_label,
               DetectionEvent.confidence, DetectionEvent.x1, DetectionEvent.y1, DetectionEvent.x2, DetectionEvent.y2)
        .where(DetectionEvent.test_session_id == ts.id, DetectionEvent.track_id.is_not(None),
               DetectionEvent.confidence >= data["score_threshold"], DetectionEvent.class_label.in_(classes))
        .order_by(DetectionEvent.track_id, DetectionEvent.frame_number, DetectionEvent.confidence.desc())).all()
    if not rows:
        tracked = db.scalar(select(DetectionEvent.id).where(DetectionEvent.test_session_id == ts.id,
                                                            DetectionEvent.track_id.is_not(None)).limit(1))
        raise validation_error({"score_threshold": "no tracked detection passes the score threshold and classes"}
                               if tracked else
                               {"test_session_id": "the test session has no tracked detections: run detection with "
                                                   "tracking"})
    video = db.get(Video, ts.video_id)
    timeline = video_timeline(video)
    ran_on = evaluated_frames(ts, video)
    stride = max(1, int((ts.config or {}).get("frame_stride") or 1))
    tracks: dict[int, list] = {}
    for r in rows:
        seen = tracks.setdefault(int(r.track_id), [])
        if not seen or seen[-1].frame_number != r.frame_number:  # one box per frame: the most confident
            seen.append(r)
    kept = {t: s for t, s in tracks.items() if len(s) >= data["min_track_length"]}
    if len(kept) > MAX_TRACKS:
        raise validation_error({"min_track_length": f"{len(kept)} tracks: more than {MAX_TRACKS}; keep fewer "
                                                    "(a higher score threshold or minimum length)"})
    name = data.get("session_name") or f"pre-annotations: {ts.name}"
    ann_session = AnnotationSession(
        project_id=project.id, video_id=video.id, annotator_id=str(user.id), session_name=name[:255],
        annotation_type="spatial", status="active",
        meta={"source": "model", "test_session_id": str(ts.id), "model": (ts.model or {}).get("name"),
              **{k: data[k] for k in ("score_threshold", "keyframe_iou", "min_track_length", "max_missed_frames")},
              "classes": classes})
    db.add(ann_session)
    db.flush()
    n_keyframes = 0
    for track_id, seen in sorted(kept.items()):
        frames = np.asarray([r.frame_number for r in seen], dtype=np.int64)
        boxes = np.asarray([[r.x1, r.y1, r.x2, r.y2] for r in seen], dtype=np.float64)
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        nxt = np.searchsorted(ran_on, frames, side="right")
        next_frames = np.where(nxt < ran_on.size, ran_on[np.minimum(nxt, ran_on.size - 1)], frames + 1)
        times = timeline.time_of(frames)
        keys = track_keyframes(frames, times, boxes, data["keyframe_iou"],
                               max_gap=stride * (data["max_missed_frames"] + 1), next_frames=next_frames,
                               max_seconds=CheckLimits().max_keyframe_gap_seconds)
        label = Counter(r.class_label for r in seen).most_common(1)[0][0]
        annotation = VideoAnnotation(
            id=uuid.uuid4(), annotation_session_id=ann_session.id, video_id=video.id,
            start_timestamp=float(times[0]), end_timestamp=float(times[-1]), annotation_type="spatial",
            class_label=label, bounding_box=_box(boxes[0]),
            confidence=round(float(np.mean([r.confidence for r in seen])), 4), validation_status="pending",
            annotator_notes=f"model track {track_id} of {ts.name}",
            keyframe_data={"source": "model", "test_session_id": str(ts.id), "track_id": track_id})
        for k in keys:
            frame_data = {"bounding_box": _box(k.box)}
            if k.outside:
                frame_data["outside"] = True
            annotation.keyframes.append(AnnotationKeyframe(
                frame_number=k.frame_number, timestamp=float(timeline.time_of(k.frame_number)),
                frame_data=frame_data))
        n_keyframes += len(keys)
        db.add(annotation)
    ann_session.meta = {**ann_session.meta, "annotations": len(kept), "keyframes": n_keyframes,
                        "detections_used": sum(len(s) for s in kept.values()),
                        "tracks_left_out": len(tracks) - len(kept)}
    audit(db, "create", "annotation_session", ann_session.id, {
        "video_id": str(video.id), "from_test_session": str(ts.id), "annotations": len(kept)})
    db.commit()
    ann_session.annotation_count = len(kept)
    return ann_session
