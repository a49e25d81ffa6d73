"""The one layer between database rows and the engines.

Rows become engine objects here, and engine objects rows, in bulk: a video's frame timeline,
annotations as :class:`keyframes.Track` (with their keyframes), stored boxes
(``{"x1", "y1", "x2", "y2"}``) as coordinate tuples and back, detection rows as
:class:`vision.detections.Detections`. Routes and tasks call these instead of converting by
hand, so a change to how something is stored is made once.
"""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, select
from sqlalchemy.orm import Session

from keyframes import Keyframe, Timeline, Track
from models import AnnotationKeyframe, DetectionEvent, Video, VideoAnnotation
from storage import timeline_file
from vision.detections import Detections

COORDS = ("x1", "y1", "x2", "y2")
#: Annotation ids per ``IN`` list when keyframes are read in bulk.
ID_CHUNK = 500
TIMELINE_CACHE_SIZE = 64

_timelines: OrderedDict[tuple[str, int, str], Timeline] = OrderedDict()
_lock = threading.Lock()


# ------------------------------------------------------------------------------ boxes


def box_list(box: Any) -> tuple[float, float, float, float] | None:
    """A stored box as ``(x1, y1, x2, y2)``; None when there is none or it is not four numbers."""
    if not isinstance(box, Mapping) or not all(_number(box.get(c)) for c in COORDS):
        return None
    return tuple(float(box[c]) for c in COORDS)  # type: ignore[return-value]


def box_coords(box: Any) -> list[Any]:
    """A box as given (for validation): its four coordinates, whatever they are; [] if not a dict."""
    return [box.get(c) for c in COORDS] if isinstance(box, Mapping) else []


def box_dict(coords: Sequence[float], digits: int | None = None) -> dict[str, float]:
    """Coordinates as a stored box, optionally rounded."""
    values = (float(v) if digits is None else round(float(v), digits) for v in coords)
    return dict(zip(COORDS, values, strict=True))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ------------------------------------------------------------------------------ timelines


def video_timeline(video: Video, storage_dir: str | Path) -> Timeline:
    """The video's frame times, saved at upload next to its file (cached per process); frames past
    the scanned part (very long videos) follow at its rate."""
    key = (str(video.id), video.frame_count, str(storage_dir))
    with _lock:
        if key in _timelines:
            _timelines.move_to_end(key)
            return _timelines[key]
    timeline = Timeline.from_file(timeline_file(video, storage_dir), video.frame_count, video.fps)
    with _lock:
        _timelines[key] = timeline
        while len(_timelines) > TIMELINE_CACHE_SIZE:
            _timelines.popitem(last=False)
    return timeline


# ------------------------------------------------------------------------------ annotations → tracks


def keyframe(frame_number: int, frame_data: Any) -> Keyframe | None:
    """A stored keyframe; None when it carries no usable box."""
    box = box_list((frame_data or {}).get("bounding_box"))
    if box is None:
        return None
    return Keyframe.stored(frame_number, box, {k: v for k, v in frame_data.items() if k != "bounding_box"})


def _track(row: Any, keyframes: Iterable[Keyframe], track_id: int, class_index: Mapping[str, int] | None
           ) -> Track:
    return Track(track_id, row.class_label, row.start_timestamp, row.end_timestamp, box_list(row.bounding_box),
                 tuple(keyframes), class_index[row.class_label] if class_index is not None else -1,
                 float(row.confidence if row.confidence is not None else 1.0), row.validation_status,
                 str(row.id), str(row.video_id), dict(row.keyframe_data or {}))


def track(annotation: VideoAnnotation, track_id: int = 0) -> Track:
    """One loaded annotation (with its keyframes relationship) as a track."""
    keys = (keyframe(k.frame_number, k.frame_data) for k in annotation.keyframes)
    return _track(annotation, (k for k in keys if k is not None), track_id, None)


def load_tracks(db: Session | Connection, *where: ColumnElement[bool],
                class_index: Mapping[str, int] | None = None) -> list[Track]:
    """The annotations matching ``where`` as tracks, in creation order, keyframes read in bulk.

    Track ids are the tracks' positions in the list; ``class_index``, when given, sets each
    track's ``class_id`` from its label (filter the labels in ``where``)."""
    rows = db.execute(select(VideoAnnotation.id, VideoAnnotation.video_id, VideoAnnotation.class_label,
                             VideoAnnotation.start_timestamp, VideoAnnotation.end_timestamp,
                             VideoAnnotation.bounding_box, VideoAnnotation.confidence,
                             VideoAnnotation.validation_status, VideoAnnotation.keyframe_data)
                      .where(*where).order_by(VideoAnnotation.created_at, VideoAnnotation.id)).all()
    keys: dict[uuid.UUID, list[Keyframe]] = {r.id: [] for r in rows}
    ids = list(keys)
    for i in range(0, len(ids), ID_CHUNK):
        for ann_id, frame, data in db.execute(
                select(AnnotationKeyframe.annotation_id, AnnotationKeyframe.frame_number, AnnotationKeyframe.frame_data)
                .where(AnnotationKeyframe.annotation_id.in_(ids[i:i + ID_CHUNK]))
                .order_by(AnnotationKeyframe.annotation_id, AnnotationKeyframe.frame_number)):
            key = keyframe(frame, data)
            if key is not None:
                keys[ann_id].append(key)
    return [_track(r, keys[r.id], n, class_index) for n, r in enumerate(rows)]


# ------------------------------------------------------------------------------ detections


def load_detections(db: Session | Connection, test_session_id: uuid.UUID, class_index: Mapping[str, int],
                    batch: int = 50_000) -> Detections:
    """A test session's stored detections in frame order, read in batches of ``batch`` rows;
    labels outside ``class_index`` get class id -1."""
    stmt = (select(*(getattr(DetectionEvent, c) for c in Detections.ROW_COLUMNS))
            .where(DetectionEvent.test_session_id == test_session_id)
            .order_by(DetectionEvent.frame_number, DetectionEvent.detection_index))
    result = db.execute(stmt.execution_options(yield_per=batch))
    return Detections.merge(Detections.from_rows(part, class_index) for part in result.partitions(batch))


__all__ = ["COORDS", "box_coords", "box_dict", "box_list", "keyframe", "load_detections",
           "load_tracks", "track", "video_timeline"]
