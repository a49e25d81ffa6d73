"""Export and import jobs: rows streamed through the formats engine, files written atomically.

Exports read rows in batches and hand iterators to the writers; the file is written under a
``.part`` name and renamed only when complete, so a failed or cancelled export leaves nothing.
Imports validate the whole file first (every problem with its location), then write in
batches inside one transaction together with the import's own completed state: a failure,
a cancellation or a lost worker leaves nothing half-imported, and a redelivered job that
finds its import completed writes nothing again.
"""
from __future__ import annotations

import hashlib
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Task
from sqlalchemy import Connection, Select, Table, and_, bindparam, delete, func, insert, or_, select, update

import bindings
import formats
from formats import Annotation, Detection, FormatError, ReadOptions, VideoInfo
from keyframes import Timeline, Track
from keyframes.exchange import (
    KeyframeRead,
    TrackOpened,
    number_tracks,
    records_by_frame,
    records_by_track,
    track_events,
)
from models import (
    TERMINAL_STATUSES,
    AnnotationKeyframe,
    AnnotationSession,
    AuditLog,
    Database,
    DetectionEvent,
    ExportJob,
    ImportJob,
    Job,
    Project,
    ProjectRequirement,
    ProjectVideoAssignment,
    TestSession,
    User,
    Video,
    VideoAnnotation,
    utcnow,
)
from models.bulk import OrderedIds, insert_rows
from settings import Settings
from storage import store, video_file

from . import runtime
from .app import app
from .lifecycle import JobCancelled, JobContext, JobLost, JobRefused, cancel_hinted, run_job

EXPORT_TYPES = ("project", "annotations", "results", "full")
IMPORT_TYPES = ("project", "annotations", "results")
RECORD_FORMATS = tuple(f for f in formats.FORMATS if f != "json")
SINGLE_VIDEO = formats.SINGLE_VIDEO
BATCH = 2000
MAX_STORED_ISSUES = 1000
# The document's sections in dependency order: an import creates rows in this order.
SECTIONS = ("projects", "requirements", "videos", "assignments", "annotation_sessions", "annotations", "keyframes",
            "test_sessions", "detections")


class ImportRefused(JobRefused):
    """Validation found errors and the import was asked to abort on them."""


# ----------------------------------------------------------------------------- storage


def exports_dir() -> Path:
    path = Path(runtime.settings().storage_dir) / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def imports_dir() -> Path:
    path = Path(runtime.settings().storage_dir) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def load_timeline(video: Video) -> Timeline:
    """The video's frame times saved at upload; frames past the scanned part at its rate."""
    return bindings.video_timeline(video, runtime.settings().storage_dir)


def video_info(video: Video, name: str | None = None, video_id: str | None = None) -> VideoInfo:
    return VideoInfo(video.width, video.height, video.frame_count, video.fps, name or video_name(video),
                     video_id or str(video.id))


def video_name(video: Video) -> str:
    stem = Path(video.filename).stem or "video"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:60].strip(".") or "video"
    return f"{safe}-{str(video.id)[:8]}"


# ----------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """What an export covers; every list narrows it, an empty one does not."""

    project_ids: tuple[uuid.UUID, ...] = ()
    video_ids: tuple[uuid.UUID, ...] = ()
    annotation_session_ids: tuple[uuid.UUID, ...] = ()
    test_session_ids: tuple[uuid.UUID, ...] = ()
    classes: tuple[str, ...] = ()
    validation_status: tuple[str, ...] = ()
    time_from: float | None = None
    time_to: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        def ids(key: str) -> tuple[uuid.UUID, ...]:
            return tuple(uuid.UUID(str(v)) for v in data.get(key) or ())

        return cls(ids("project_ids"), ids("video_ids"), ids("annotation_session_ids"), ids("test_session_ids"),
                   tuple(data.get("classes") or ()), tuple(data.get("validation_status") or ()),
                   data.get("time_from"), data.get("time_to"))

    def session_filter(self) -> list[Any]:
        clauses: list[Any] = []
        if self.project_ids:
            clauses.append(AnnotationSession.project_id.in_(self.project_ids))
        if self.video_ids:
            clauses.append(AnnotationSession.video_id.in_(self.video_ids))
        if self.annotation_session_ids:
            clauses.append(AnnotationSession.id.in_(self.annotation_session_ids))
        return clauses

    def annotation_filter(self) -> list[Any]:
        clauses: list[Any] = []
        if self.classes:
            clauses.append(VideoAnnotation.class_label.in_(self.classes))
        if self.validation_status:
            clauses.append(VideoAnnotation.validation_status.in_(self.validation_status))
        if self.time_from is not None:
            clauses.append(VideoAnnotation.end_timestamp >= self.time_from)
        if self.time_to is not None:
            clauses.append(VideoAnnotation.start_timestamp <= self.time_to)
        return clauses

    def test_session_filter(self) -> list[Any]:
        clauses: list[Any] = []
        if self.project_ids:
            clauses.append(TestSession.project_id.in_(self.project_ids))
        if self.video_ids:
            clauses.append(TestSession.video_id.in_(self.video_ids))
        if self.test_session_ids:
            clauses.append(TestSession.id.in_(self.test_session_ids))
        return clauses

    def detection_filter(self) -> list[Any]:
        clauses: list[Any] = []
        if self.classes:
            clauses.append(DetectionEvent.class_label.in_(self.classes))
        if self.time_from is not None:
            clauses.append(DetectionEvent.timestamp >= self.time_from)
        if self.time_to is not None:
            clauses.append(DetectionEvent.timestamp <= self.time_to)
        return clauses


def scope_projects(conn: Connection, scope: Scope) -> list[uuid.UUID]:
    """Every project the scope touches (for permission checks and class lists).

    Named projects bound the scope: every other list narrows within them.
    """
    if scope.project_ids:
        return sorted(set(scope.project_ids), key=str)
    found: set[uuid.UUID] = set()
    if scope.video_ids:
        found |= {p for p in conn.scalars(select(Video.project_id).where(Video.id.in_(scope.video_ids))) if p}
        found |= set(conn.scalars(select(AnnotationSession.project_id)
                                  .where(AnnotationSession.video_id.in_(scope.video_ids))))
    if scope.annotation_session_ids:
        found |= set(conn.scalars(select(AnnotationSession.project_id)
                                  .where(AnnotationSession.id.in_(scope.annotation_session_ids))))
    if scope.test_session_ids:
        found |= set(conn.scalars(select(TestSession.project_id).where(TestSession.id.in_(scope.test_session_ids))))
    return sorted(found, key=str)


def project_classes(conn: Connection, project_ids: Iterable[uuid.UUID]) -> list[str]:
    classes: list[str] = []
    for labels in conn.scalars(select(Project.labels).where(Project.id.in_(list(project_ids)))
                               .order_by(Project.created_at, Project.id)):
        for label in labels or ():
            if label not in classes:
                classes.append(label)
    return classes


# ----------------------------------------------------------------------------- export


class Counter:
    """Wraps a record stream: counts, reports progress and honours cancellation as it goes."""

    def __init__(self, ctx: JobContext, total: int, stage: str) -> None:
        self.ctx, self.total, self.stage, self.count = ctx, max(1, total), stage, 0

    def wrap(self, records: Iterable[Any]) -> Iterator[Any]:
        for rec in records:
            self.count += 1
            if self.count % BATCH == 0:
                self.ctx.progress(min(95.0, 95.0 * self.count / self.total), self.stage)
            yield rec


def _tracks_for_video(conn: Connection, session_ids: list[uuid.UUID], video: Video, scope: Scope,
                      numbering: dict[str, int]) -> list[Track]:
    tracks = bindings.load_tracks(conn, VideoAnnotation.annotation_session_id.in_(session_ids),
                                  VideoAnnotation.video_id == video.id, *scope.annotation_filter())
    _number_tracks(tracks, numbering)
    return [replace(t, track_id=numbering[t.annotation_id],
                    start=t.start if scope.time_from is None else max(t.start, scope.time_from),
                    end=t.end if scope.time_to is None else min(t.end, scope.time_to)) for t in tracks]


def _number_tracks(tracks: list[Track], numbering: dict[str, int]) -> None:
    """Track ids for an export (:func:`keyframes.exchange.number_tracks`), shared by the file's videos."""
    sources = [t.data.get("source_track_id") for t in tracks]
    for t, number in zip(tracks, number_tracks(sources, set(numbering.values())), strict=True):
        numbering[t.annotation_id] = number


def _annotation_streams(conn: Connection, scope: Scope, by_track: bool
                        ) -> tuple[list[Video], Callable[[Video], Iterator[Annotation]], int]:
    sessions = conn.execute(select(AnnotationSession.id, AnnotationSession.video_id)
                            .where(*scope.session_filter())).all()
    by_video: dict[uuid.UUID, list[uuid.UUID]] = {}
    for sid, vid in sessions:
        by_video.setdefault(vid, []).append(sid)
    from sqlalchemy.orm import Session

    with Session(bind=conn) as s:
        videos = list(s.scalars(select(Video).where(Video.id.in_(list(by_video))).order_by(Video.created_at,
                                                                                             Video.id)))
        s.expunge_all()
    total = conn.scalar(select(func.count()).select_from(VideoAnnotation)
                        .where(VideoAnnotation.annotation_session_id.in_([s for s, _ in sessions]),
                               *scope.annotation_filter())) or 0
    numbering: dict[str, int] = {}

    def stream(video: Video) -> Iterator[Annotation]:
        tracks = _tracks_for_video(conn, by_video[video.id], video, scope, numbering)
        timeline = load_timeline(video)
        return records_by_track(tracks, timeline) if by_track else records_by_frame(tracks, timeline)

    return videos, stream, total


def _detection_streams(conn: Connection, scope: Scope, by_track: bool = False
                       ) -> tuple[list[tuple[TestSession, Video]], Callable[[TestSession], Iterator[Detection]], int]:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as s:
        pairs = list(s.execute(select(TestSession, Video).join(Video, Video.id == TestSession.video_id)
                               .where(*scope.test_session_filter())
                               .order_by(TestSession.created_at, TestSession.id)).tuples())
        s.expunge_all()  # sessions of one video share its Video object: expunge each object once
    ids = [ts.id for ts, _ in pairs]
    total = conn.scalar(select(func.count()).select_from(DetectionEvent)
                        .where(DetectionEvent.test_session_id.in_(ids), *scope.detection_filter())) or 0

    order = [DetectionEvent.frame_number, DetectionEvent.detection_index]
    if by_track:  # tracked detections track after track (untracked ones last), as CVAT and Label Studio hold them
        order = [DetectionEvent.track_id.is_(None), DetectionEvent.track_id, *order]

    def stream(ts: TestSession) -> Iterator[Detection]:
        result = conn.execution_options(yield_per=BATCH).execute(
            select(DetectionEvent.frame_number, DetectionEvent.timestamp, DetectionEvent.class_label,
                   DetectionEvent.confidence, DetectionEvent.x1, DetectionEvent.y1, DetectionEvent.x2,
                   DetectionEvent.y2, DetectionEvent.track_id)
            .where(DetectionEvent.test_session_id == ts.id, *scope.detection_filter())
            .order_by(*order))
        for r in result:
            yield Detection(r.frame_number, r.class_label, (r.x1, r.y1, r.x2, r.y2), r.confidence, r.track_id,
                            r.timestamp, str(ts.id))

    return pairs, stream, total


class FrameJpegs:
    """A video's frames as JPEG for a YOLO dataset, decoded forward as the writer asks for them."""

    def __init__(self, path: Path, quality: int = 95) -> None:
        self.path, self.quality = path, quality
        self.cap: Any = None
        self.position = 0

    def __call__(self, frame: int) -> bytes | None:
        import cv2

        if self.cap is None or frame < self.position:  # a frame behind us: start again
            self.close()
            self.cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
            self.position = 0
        while self.position < frame:
            if not self.cap.grab():
                return None
            self.position += 1
        ok, image = self.cap.read()
        if not ok or image is None:
            return None
        self.position += 1
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return data.tobytes() if ok else None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def _write_per_video(fmt: str, dest: Path, items: list[tuple[VideoInfo, Callable[[], Iterator[Any]], Video | None]],
                     classes: list[str], kind: str, with_images: bool = False) -> int:
    """One file per video (:func:`formats.write_per_video`); a YOLO dataset carries its frames as
    JPEG unless ``with_images`` is off."""
    def images_of(video: Video | None) -> Callable[[], FrameJpegs] | None:
        if not with_images or fmt != "yolo" or video is None:
            return None
        return lambda: FrameJpegs(video_file(video))

    return formats.write_per_video(fmt, dest, [(info, make, images_of(video)) for info, make, video in items],
                                   classes=classes, kind=kind)


def _table_rows(conn: Connection, stmt: Select, counter: Counter | None = None) -> Iterator[dict[str, Any]]:
    for row in conn.execution_options(yield_per=BATCH).execute(stmt).mappings():
        if counter is not None:
            counter.count += 1
            if counter.count % BATCH == 0:
                counter.ctx.progress(min(95.0, 95.0 * counter.count / counter.total), counter.stage)
        yield dict(row)


def _document_sections(conn: Connection, export_type: str, scope: Scope, projects: list[uuid.UUID],
                       counter: Counter) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    """The platform's own document: whole projects, or the annotations / results in scope."""
    whole = export_type in ("project", "full")
    session_ids = select(AnnotationSession.id).where(*scope.session_filter())
    test_ids = select(TestSession.id).where(*scope.test_session_filter())
    if whole:
        yield "projects", _table_rows(conn, select(Project.__table__).where(Project.id.in_(projects))
                                      .order_by(Project.created_at, Project.id))
        yield "requirements", _table_rows(conn, select(ProjectRequirement.__table__)
                                          .where(ProjectRequirement.project_id.in_(projects))
                                          .order_by(ProjectRequirement.created_at, ProjectRequirement.id))
    if whole:  # the projects' own videos and every video their rows refer to
        video_stmt = select(Video.__table__).where(or_(
            Video.project_id.in_(projects),
            Video.id.in_(select(AnnotationSession.video_id).where(AnnotationSession.project_id.in_(projects))),
            Video.id.in_(select(ProjectVideoAssignment.video_id)
                         .where(ProjectVideoAssignment.project_id.in_(projects))),
            Video.id.in_(select(TestSession.video_id).where(TestSession.project_id.in_(projects)))))
    else:
        video_ids = select(AnnotationSession.video_id).where(*scope.session_filter())
        video_stmt = select(Video.__table__).where(or_(Video.id.in_(video_ids),
                                                       Video.id.in_(select(TestSession.video_id)
                                                                    .where(*scope.test_session_filter())))
                                                   if export_type != "annotations" else Video.id.in_(video_ids))
    yield "videos", _table_rows(conn, video_stmt.order_by(Video.created_at, Video.id))
    if whole:
        yield "assignments", _table_rows(conn, select(ProjectVideoAssignment.__table__)
                                         .where(ProjectVideoAssignment.project_id.in_(projects))
                                         .order_by(ProjectVideoAssignment.assigned_at, ProjectVideoAssignment.id))
    if export_type != "results":
        yield "annotation_sessions", _table_rows(conn, select(AnnotationSession.__table__)
                                                 .where(AnnotationSession.id.in_(session_ids))
                                                 .order_by(AnnotationSession.created_at, AnnotationSession.id))
        ann = and_(VideoAnnotation.annotation_session_id.in_(session_ids), *scope.annotation_filter())
        yield "annotations", _table_rows(conn, select(VideoAnnotation.__table__).where(ann)
                                         .order_by(VideoAnnotation.created_at, VideoAnnotation.id), counter)
        yield "keyframes", _table_rows(conn, select(AnnotationKeyframe.__table__)
                                       .where(AnnotationKeyframe.annotation_id.in_(select(VideoAnnotation.id)
                                                                                   .where(ann)))
                                       .order_by(AnnotationKeyframe.annotation_id, AnnotationKeyframe.frame_number,
                                                 AnnotationKeyframe.id))
    if export_type != "annotations":
        yield "test_sessions", _table_rows(conn, select(TestSession.__table__).where(TestSession.id.in_(test_ids))
                                           .order_by(TestSession.created_at, TestSession.id))
        yield "detections", _table_rows(conn, select(DetectionEvent.__table__)
                                        .where(DetectionEvent.test_session_id.in_(test_ids),
                                               *scope.detection_filter())
                                        .order_by(DetectionEvent.test_session_id, DetectionEvent.frame_number,
                                                  DetectionEvent.detection_index), counter)


def write_export(ctx: JobContext, conn: Connection, exp: ExportJob, dest: Path) -> int:
    scope = Scope.from_dict(exp.scope_filter or {})
    projects = scope_projects(conn, scope)
    classes = project_classes(conn, projects)
    fmt, export_type = exp.format, exp.export_type
    if fmt == "json":
        counter = Counter(ctx, 1, "writing")
        counter.total = max(1, (conn.scalar(select(func.count()).select_from(VideoAnnotation)) or 0))
        meta = {"export_type": export_type, "job_name": exp.job_name, "scope_filter": exp.scope_filter or {},
                "exported_at": utcnow()}
        counts = formats.write_document(dest, _document_sections(conn, export_type, scope, projects, counter),
                                        meta=meta)
        return sum(counts.values())
    if export_type == "results":
        pairs, stream, total = _detection_streams(conn, scope, by_track=fmt in formats.BY_TRACK)
        counter = Counter(ctx, total, "writing results")
        if not pairs:
            raise ValueError("the scope holds no test sessions")
        infos = [(video_info(v, f"{video_name(v)}-{str(ts.id)[:8]}", str(ts.id)), ts) for ts, v in pairs]
        if fmt in SINGLE_VIDEO:
            return _write_per_video(fmt, dest, [(i, lambda ts=ts: counter.wrap(stream(ts)), None)
                                                for i, ts in infos], classes, "results")

        def all_results() -> Iterator[Detection]:
            for _, ts in infos:
                yield from counter.wrap(stream(ts))
        return formats.write(fmt, dest, all_results(), videos=[i for i, _ in infos], classes=classes, kind="results")
    videos, stream, total = _annotation_streams(conn, scope, by_track=fmt in formats.BY_TRACK)
    if not videos:
        raise ValueError("the scope holds no annotation sessions")
    counter = Counter(ctx, total * 10, "writing annotations")
    infos = [(video_info(v), v) for v in videos]
    if fmt in SINGLE_VIDEO:
        params = getattr(ctx, "params", None) or {}
        return _write_per_video(fmt, dest, [(i, lambda v=v: counter.wrap(stream(v)), v) for i, v in infos], classes,
                                "annotations", with_images=bool(params.get("include_images", True)))

    def all_annotations() -> Iterator[Annotation]:
        for _, v in infos:
            yield from counter.wrap(stream(v))
    return formats.write(fmt, dest, all_annotations(), videos=[i for i, _ in infos], classes=classes)


def export_file_name(exp: ExportJob, written: Path) -> str:
    """Named after what was written: one video's file keeps its format's extension, several
    videos in one zip (or a zipped format) end in ``.zip``."""
    ext = formats.EXTENSIONS[exp.format]
    return f"{exp.id}{'.zip' if zipfile.is_zipfile(written) else ext}"


def remove_partial_export(export_id: uuid.UUID) -> None:
    """Remove what an attempt whose worker died left half-written (its ``.part`` file and temporary
    directory). The claim lets one attempt at a time own the export, so none of it is still written."""
    for path in exports_dir().glob(f".{export_id}.*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def export_body(ctx: JobContext) -> dict[str, Any]:
    db = runtime.database()
    export_id = uuid.UUID(ctx.params["export_id"])
    with db.session() as s:
        exp = s.get(ExportJob, export_id)
        if exp is None:
            raise ValueError(f"export {export_id} no longer exists")
        if exp.file_path is not None:  # a redelivery after the file was published
            return {"export_id": str(exp.id), "file_size": exp.file_size, "sha256": exp.sha256}
        s.expunge(exp)
    remove_partial_export(export_id)
    tmp = exports_dir() / f".{export_id}.{uuid.uuid4().hex[:8]}.part"
    try:
        ctx.progress(0, "reading rows")
        with db.engine.connect() as conn:
            count = write_export(ctx, conn, exp, tmp)
        ctx.progress(96, "finalizing")
        digest, size = sha256_file(tmp)
        name = export_file_name(exp, tmp)
        ctx.check_cancel()  # the last point where a cancel lands: after it the file is in place
        store().put_file(f"exports/{name}", tmp, move=True)  # complete before the row says completed
    except BaseException:
        tmp.unlink(missing_ok=True)  # the job's state (failed, cancelled) is the lifecycle's to write
        raise
    now = utcnow()
    with db.session() as s:
        s.execute(update(ExportJob).where(ExportJob.id == export_id).values(
            file_path=f"exports/{name}", file_size=size, sha256=digest,
            completed_at=now, expires_at=now + timedelta(seconds=runtime.settings().export_ttl_seconds)))
    return {"export_id": str(export_id), "records": count, "file_size": size, "sha256": digest,
            "file_name": name}


# ----------------------------------------------------------------------------- import


def _issue_dicts(issues: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for issue in issues:
        out.append(issue.to_dict())
        if len(out) >= MAX_STORED_ISSUES:
            break
    return out


def _set_import(db: Database, import_id: uuid.UUID, **values: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(ImportJob).where(ImportJob.id == import_id).values(**values))


class Writer:
    """Batched inserts inside the import's transaction, with progress where the database allows it."""

    def __init__(self, ctx: JobContext, conn: Connection, total: int, import_id: uuid.UUID) -> None:
        self.ctx, self.conn, self.total, self.import_id = ctx, conn, max(1, total), import_id
        # SQLite has one writer: progress rows written from elsewhere would wait on this transaction.
        self.report = conn.dialect.name != "sqlite"
        self.pending: dict[Any, list[dict[str, Any]]] = {}
        self.processed = 0

    def add(self, table: Table, row: dict[str, Any]) -> None:
        rows = self.pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Every pending row, table after table in the order the tables first got rows: a row's
        parents are added before it, so they are written before it."""
        for table, rows in self.pending.items():
            if rows:
                insert_rows(self.conn, table, rows)
                self.pending[table] = []

    def counted(self, records: Iterable[Any]) -> Iterator[Any]:
        """The records, each one counted (progress, cancellation) as it is read."""
        for rec in records:
            self.tick()
            yield rec

    def check_cancel(self) -> None:
        """Inside the transaction: a cancel asked in the database or announced through Redis
        (where SQLite's write lock, held by this transaction, keeps the database from hearing of it)."""
        self.ctx.check_cancel()
        if cancel_hinted(self.ctx.job_id):
            raise JobCancelled(str(self.ctx.job_id))

    def tick(self) -> None:
        self.processed += 1
        if self.processed % BATCH == 0:
            self.check_cancel()
            if self.report:
                self.ctx.progress(50 + 50 * min(1.0, self.processed / self.total), "importing")
                _set_import(runtime.database(), self.import_id, records_processed=self.processed)


def _import_annotations(w: Writer, records: Iterable[Any], video: Video, timeline: Timeline,
                        session_id: uuid.UUID, validation_status: str) -> int:
    """Tracks become annotations spanning their visible frames, every box a keyframe row
    (:func:`keyframes.exchange.track_events`); returns the annotations written."""
    ann_table, kf_table = VideoAnnotation.__table__, AnnotationKeyframe.__table__
    now = utcnow()
    ids: dict[int, uuid.UUID] = {}  # the annotation of each track still open
    new_id = OrderedIds()
    time_of = timeline.timestamps.item  # a frame's time as a float (what float(timeline.time_of(f)) gives)
    opened = 0
    spans: list[dict[str, Any]] = []
    for event in track_events(w.counted(records)):
        if isinstance(event, KeyframeRead):
            ann_id = ids.pop(event.number) if event.final else ids[event.number]
            frame_data = {"bounding_box": _box_dict(event.box)}
            if event.extras:
                frame_data.update(event.extras)
            w.add(kf_table, {"id": new_id(), "annotation_id": ann_id, "frame_number": event.frame_number,
                             "timestamp": time_of(event.frame_number), "frame_data": frame_data, "created_at": now})
        elif isinstance(event, TrackOpened):
            rec, opened = event.record, opened + 1
            ids[event.number] = ann_id = new_id()
            t = time_of(rec.frame_number)
            w.add(ann_table, {"id": ann_id, "annotation_session_id": session_id, "video_id": video.id,
                              "start_timestamp": t, "end_timestamp": t, "annotation_type": "temporal",
                              "class_label": rec.label, "bounding_box": _box_dict(rec.box),
                              "confidence": float(getattr(rec, "confidence", 1.0)),
                              "keyframe_data": {} if rec.track_id is None else {"source_track_id": rec.track_id},
                              "validation_status": validation_status, "version": 1, "created_at": now,
                              "updated_at": now})
        else:
            spans.append({"b_id": ids[event.number], "b_start": time_of(event.first), "b_end": time_of(event.last)})
    w.flush()
    for i in range(0, len(spans), BATCH):
        w.conn.execute(update(ann_table).where(ann_table.c.id == bindparam("b_id"))
                       .values(start_timestamp=bindparam("b_start"), end_timestamp=bindparam("b_end")),
                       spans[i:i + BATCH])
    return opened


def _box_dict(box: Sequence[float]) -> dict[str, float]:
    x1, y1, x2, y2 = box
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def _import_results(w: Writer, records: Iterable[Any], timeline: Timeline, test_session_id: uuid.UUID) -> int:
    """Detections replace what the test session held, so running the same import twice changes nothing."""
    w.conn.execute(delete(DetectionEvent).where(DetectionEvent.test_session_id == test_session_id))
    per_frame: dict[int, int] = {}
    table = DetectionEvent.__table__
    n = 0
    for rec in records:
        w.tick()
        index = per_frame.get(rec.frame_number, 0)
        per_frame[rec.frame_number] = index + 1
        x1, y1, x2, y2 = rec.box
        score = rec.score if isinstance(rec, Detection) else rec.confidence
        ts = rec.timestamp if rec.timestamp is not None else float(timeline.time_of(rec.frame_number))
        w.add(table, {"test_session_id": test_session_id, "frame_number": rec.frame_number, "detection_index": index,
                      "timestamp": ts, "class_label": rec.label, "confidence": float(score), "x1": x1, "y1": y1,
                      "x2": x2, "y2": y2, "track_id": rec.track_id})
        n += 1
    w.flush()
    return n


def _options(params: dict[str, Any], kind: str | None) -> ReadOptions:
    return ReadOptions(kind=kind, label_map=params.get("label_map") or {},
                       add_missing_labels=bool(params.get("add_missing_labels")),
                       on_error=params.get("on_error", "abort"), video_id=params.get("source_video_id"),
                       default_label=params.get("default_label"),
                       frame_map=params.get("frame_map") or None)


def import_body(ctx: JobContext) -> dict[str, Any]:
    db = runtime.database()
    params = ctx.params
    import_id = uuid.UUID(params["import_id"])
    with db.session() as s:
        imp = s.get(ImportJob, import_id)
        if imp is None:
            raise ValueError(f"import {import_id} no longer exists")
        s.expunge(imp)
    if imp.completed_at is not None:  # a redelivery after the commit: nothing more to write
        release_import_file(imp.file_path)
        return _job_result(db, ctx.job_id) or _committed_import_result(db, imp, params)
    try:
        result = _run_import(ctx, db, imp, store().local_path(f"imports/{imp.file_path}"), params)
    except JobLost:
        raise  # another attempt owns the import now
    except Exception:  # failed or cancelled (the lifecycle records which); a worker shutting down
        release_import_file(imp.file_path)  # is no Exception: its redelivery needs the file
        raise
    release_import_file(imp.file_path)
    if imp.import_type == "results" and result.get("test_session_id") and "duplicate_of" not in result:
        from .evaluation import results_ready

        result["evaluation_job_id"] = results_ready(uuid.UUID(result["test_session_id"]))
    return result


def _committed_import_result(db: Database, imp: ImportJob, params: dict[str, Any]) -> dict[str, Any]:
    """What an attempt killed after its import committed (but before its job finished) would have
    returned, rebuilt from what the commit left; a results import's evaluation is queued if it was not."""
    result: dict[str, Any] = {"import_id": str(imp.id), "records_processed": imp.records_processed,
                              "completed_by_earlier_attempt": True}
    if imp.import_type == "annotations":
        result["annotation_session_id"] = params.get("session_id") or str(uuid.uuid5(imp.id, "annotation_session"))
    elif imp.import_type == "results":
        result["test_session_id"] = params["test_session_id"]
        with db.session() as s:
            ts = s.get(TestSession, uuid.UUID(params["test_session_id"]))
            ready = ts is not None and ts.status == "completed"
        if not ready:
            from .evaluation import results_ready

            result["evaluation_job_id"] = results_ready(uuid.UUID(params["test_session_id"]))
    elif imp.import_type == "project":
        with db.session() as s:
            rows = s.execute(select(AuditLog.resource_id, AuditLog.details).where(
                AuditLog.action == "import", AuditLog.resource_type == "project")).all()
        result["project_ids"] = [rid for rid, details in rows if (details or {}).get("import_id") == str(imp.id)]
    return result


def _job_result(db: Database, job_id: uuid.UUID) -> dict[str, Any] | None:
    with db.session() as s:
        job = s.get(Job, job_id)
        return job.result if job else None


def _run_import(ctx: JobContext, db: Database, imp: ImportJob, path: Path, params: dict[str, Any]) -> dict[str, Any]:
    import_type, fmt = imp.import_type, imp.source_format
    if import_type == "project" and fmt == "json":
        return _run_project_import(ctx, db, imp, path)
    if import_type not in ("annotations", "results") or fmt not in RECORD_FORMATS:
        raise ValueError(f"{import_type} imports from {fmt} are not supported")
    with db.session() as s:
        project = s.get(Project, uuid.UUID(params["project_id"]))
        video = s.get(Video, uuid.UUID(params["video_id"]))
        if project is None or video is None:
            raise ValueError("the target project or video no longer exists")
        s.expunge_all()
    kind = "results" if import_type == "results" else "annotations"
    info = video_info(video)
    options = _options(params, kind)
    ctx.progress(0, "validating")
    report = formats.validate(fmt, path, video=info, classes=list(project.labels), options=options)
    ctx.check_cancel()
    valid = report.valid
    _set_import(db, imp.id, validation_status="valid" if valid else "invalid",
                validation_errors=_issue_dicts(report.issues), records_total=report.records_total)
    summary = report.to_dict()
    summary.pop("issues")
    if not valid and options.on_error == "abort":
        raise ImportRefused(f"validation failed: {report.errors} error(s), {report.warnings} warning(s); "
                            "nothing was imported (see validation_errors)")
    previous = _same_import_done(db, ctx.job_id, params)
    if previous is not None:
        _set_import(db, imp.id, completed_at=utcnow())
        return {"import_id": str(imp.id), "validation": summary, "duplicate_of": str(previous),
                "annotation_session_id": params.get("session_id"), "test_session_id": params.get("test_session_id"),
                "annotations": 0, "records_processed": 0}
    ctx.progress(50, "importing")
    timeline = load_timeline(video)
    reader = formats.open_reader(fmt, path, video=info, classes=list(project.labels), options=options)
    with db.engine.connect() as conn:
        trans = conn.begin()
        try:
            w = Writer(ctx, conn, report.records_total, imp.id)
            result: dict[str, Any] = {"import_id": str(imp.id), "validation": summary}
            if import_type == "results":
                test_session_id = uuid.UUID(params["test_session_id"])
                result["detections"] = _import_results(w, reader, timeline, test_session_id)
                result["test_session_id"] = str(test_session_id)
            else:
                session_id = _annotation_session(conn, params, imp, project, video)
                result["annotations"] = _import_annotations(w, reader, video, timeline, session_id,
                                                            params.get("validation_status", "pending"))
                result["annotation_session_id"] = str(session_id)
            added = reader.added_labels
            if added:
                conn.execute(update(Project).where(Project.id == project.id)
                             .values(labels=list(project.labels) + [a for a in added if a not in project.labels]))
                result["added_labels"] = added
            skipped = [i for i in reader.issues if i.severity == "error"]
            result["records_processed"] = w.processed
            result["skipped"] = len(skipped)
            # what the import changed or left out on the way in, each with where it is
            result["warnings"] = _issue_dicts(i for i in reader.issues if i.severity == "warning")
            w.check_cancel()
            # completed_at marks the rows committed (a redelivery writes nothing more); the job's
            # completion, written by the lifecycle, completes the import
            conn.execute(update(ImportJob).where(ImportJob.id == imp.id).values(
                records_processed=w.processed, import_errors=_issue_dicts(skipped), completed_at=utcnow()))
            trans.commit()
        except BaseException:
            trans.rollback()
            raise
    return result


def _run_project_import(ctx: JobContext, db: Database, imp: ImportJob, path: Path) -> dict[str, Any]:
    """A whole document into new projects: all checked first, then all written in one transaction."""
    from . import project_import

    with db.session() as s:
        try:
            user = s.get(User, uuid.UUID(imp.created_by))
        except ValueError:
            user = None
        s.expunge_all()
    ctx.progress(0, "validating")
    with db.engine.connect() as conn:
        check, videos = project_import.validate(conn, path, user)
    ctx.check_cancel()
    report = check.report
    _set_import(db, imp.id, validation_status="valid" if report.valid else "invalid",
                validation_errors=_issue_dicts(report.issues), records_total=report.records_total)
    summary = report.to_dict()
    summary.pop("issues")
    if not report.valid:  # rows refer to each other: a project is imported whole or not at all
        raise ImportRefused(f"validation failed: {report.errors} error(s), {report.warnings} warning(s); "
                            "nothing was imported (see validation_errors)")
    ctx.progress(50, "importing")
    with db.engine.connect() as conn:
        trans = conn.begin()
        try:
            w = Writer(ctx, conn, report.records_total, imp.id)
            result: dict[str, Any] = {"import_id": str(imp.id), "validation": summary}
            result.update(project_import.write(ctx, w, path, check, videos, imp))
            result["records_processed"] = w.processed
            w.check_cancel()
            conn.execute(update(ImportJob).where(ImportJob.id == imp.id).values(
                records_processed=w.processed, import_errors=[], completed_at=utcnow()))
            trans.commit()
        except BaseException:
            trans.rollback()
            raise
    return result


def _same_import_done(db: Database, job_id: uuid.UUID, params: dict[str, Any]) -> uuid.UUID | None:
    """A completed import of the same file into the same annotation session (it would duplicate)."""
    if not params.get("sha256") or not params.get("session_id"):
        return None
    with db.session() as s:
        for other_id, other in s.execute(select(Job.id, Job.params).where(
                Job.kind == "import", Job.status == "completed", Job.id != job_id,
                Job.project_id == uuid.UUID(params["project_id"]))):
            if other.get("sha256") == params["sha256"] and other.get("session_id") == params["session_id"] and \
                    other.get("on_error") == params.get("on_error"):
                return other_id
    return None


def _annotation_session(conn: Connection, params: dict[str, Any], imp: ImportJob, project: Project,
                        video: Video) -> uuid.UUID:
    if params.get("session_id"):
        return uuid.UUID(params["session_id"])
    # Derived from the import, so that a redelivered job would make the same session.
    session_id = uuid.uuid5(imp.id, "annotation_session")
    now = utcnow()
    conn.execute(insert(AnnotationSession.__table__).values(
        id=session_id, project_id=project.id, video_id=video.id, annotator_id=imp.created_by,
        session_name=imp.job_name[:255], annotation_type="temporal", status="active", start_time=now,
        metadata={"import_id": str(imp.id), "source_format": imp.source_format}, created_at=now, updated_at=now))
    return session_id


# ----------------------------------------------------------------------------- expiry


def expire_exports(now: datetime | None = None) -> int:
    """Delete the files of expired exports (beat runs this). An export whose job completed and
    whose file is gone reads as ``expired``: derived, never stored."""
    db = runtime.database()
    now = now or utcnow()
    with db.session() as s:
        rows = s.execute(select(ExportJob.id, ExportJob.file_path)
                         .where(ExportJob.status == "completed", ExportJob.expires_at <= now,
                                ExportJob.file_path.is_not(None))).all()
    for export_id, rel in rows:
        store().delete(rel)
        with db.session() as s:
            s.execute(update(ExportJob).where(ExportJob.id == export_id).values(file_path=None))
    return len(rows)


def remove_import_file(rel: str, storage_dir: Path | None = None) -> None:
    """Delete an import's upload (its folder ``imports/<import id>/``)."""
    folder = Path(rel).parent
    if len(folder.parts) == 1 and folder.name not in ("", ".", ".."):
        store(storage_dir).delete_prefix(f"imports/{folder.name}/")


def release_import_file(rel: str, settings: Settings | None = None) -> None:
    """An import ended: its file goes now, or at the sweep after ``IMPORT_RETENTION_SECONDS``."""
    settings = settings or runtime.settings()
    if settings.import_retention_seconds <= 0:
        remove_import_file(rel, settings.storage_dir)


#: An upload folder with no import row is left this long (the row is committed just after the move).
ORPHAN_UPLOAD_SECONDS = 3600


def sweep_import_files(now: datetime | None = None) -> int:
    """Delete the files of imports that ended more than ``IMPORT_RETENTION_SECONDS`` ago, of imports
    that never ran (cancelled while pending), and folders no import owns (beat runs this). It walks
    the store's ``imports/`` keys, on whichever backend holds them."""
    db = runtime.database()
    now = now or utcnow()
    cutoff = now - timedelta(seconds=runtime.settings().import_retention_seconds)
    stored = store()
    folders: dict[str, list[str]] = {}
    for key in stored.keys("imports/"):
        parts = key.split("/")
        if len(parts) > 2:  # imports/<import id>/<file>
            folders.setdefault(parts[1], []).append(key)
    removed = 0
    for name, keys in folders.items():
        try:
            import_id = uuid.UUID(name)
        except ValueError:
            import_id = None
        row = None
        if import_id is not None:
            with db.session() as s:
                row = s.execute(select(ImportJob.import_status, ImportJob.completed_at, ImportJob.created_at,
                                       Job.status, Job.finished_at)
                                .outerjoin(Job, Job.id == ImportJob.job_id)
                                .where(ImportJob.id == import_id)).first()
        if row is None:
            age = now.timestamp() - max(stored.modified(key) for key in keys)
            if age > max(ORPHAN_UPLOAD_SECONDS, runtime.settings().import_retention_seconds):
                stored.delete_prefix(f"imports/{name}/")
                removed += 1
            continue
        ended = row.import_status in TERMINAL_STATUSES or row.status in TERMINAL_STATUSES
        if ended and (row.finished_at or row.completed_at or row.created_at) <= cutoff:
            stored.delete_prefix(f"imports/{name}/")
            removed += 1
    return removed


@app.task(name="jobs.export", bind=True)
def export(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, export_body)


@app.task(name="jobs.import", bind=True)
def import_(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, import_body)


@app.task(name="maintenance.expire_exports")
def expire_exports_task() -> int:
    return expire_exports()


@app.task(name="maintenance.sweep_import_files")
def sweep_import_files_task() -> int:
    return sweep_import_files()


__all__ = ["EXPORT_TYPES", "IMPORT_TYPES", "SECTIONS", "FormatError", "ImportRefused", "Scope", "export_body",
           "expire_exports", "import_body", "release_import_file", "sweep_import_files"]
