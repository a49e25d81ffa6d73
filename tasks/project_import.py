"""Project imports: a platform document (``project`` or ``full`` export) becomes new projects.

Everything is checked before anything is written (:func:`formats.project.check`), then every
row is written in one transaction together with the import's completed state. Each row gets a
new id (the old one shifted, so that order is kept); creation and update times, versions and
validation states are kept as they were. The importing user becomes an administrator of each
new project.

Videos are files, and the document holds only their metadata: each video is found on this
platform by its sha256 among the videos the importing user may read, and its file is shared.
A video owned by a project of the document gets a row of its own in the new project (same
file); one that belongs to some other project is referred to as it is. A video the platform
does not have (or the user may not read) is an error located at its row: upload it, then
import again. Users are kept where they exist here (else left empty, as when a user is
deleted); test sessions lose their link to the detection job, which is not part of a project.

Every JSON column passes the same schema as the API's (:mod:`models.schemas`; requirements
the same parser), so a malformed value is an error at its row and nothing is written. A
document never brings a path into the platform's storage: a video's ``storage_path`` is the
found file's, a keyframe's ``screenshot_path`` and a test session's report plots
(``metrics.results.plots``) are dropped, each with a warning at its row; the report route
serves only what the session's own evaluation job wrote.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, Connection, Float, Integer, String, Text, Uuid, insert, or_, select, update
from sqlalchemy import Column as SAColumn
from sqlalchemy.types import JSON

import formats
from compatibility import RequirementError, parse_requirement
from formats.errors import STORAGE_PATH, TYPE
from formats.project import Column, ProjectCheck
from models import (
    AnnotationKeyframe,
    AnnotationSession,
    AuditLog,
    DetectionEvent,
    ImportJob,
    Project,
    ProjectMember,
    ProjectRequirement,
    ProjectVideoAssignment,
    TestSession,
    User,
    Video,
    VideoAnnotation,
    utcnow,
)
from models.schemas import column_problems
from models.types import UTCDateTime
from storage import store
from vision.catalogue import safe_file_name

from .lifecycle import JobContext

if TYPE_CHECKING:
    from .transfer import Writer

TABLES = {"projects": Project.__table__, "requirements": ProjectRequirement.__table__, "videos": Video.__table__,
          "assignments": ProjectVideoAssignment.__table__, "annotation_sessions": AnnotationSession.__table__,
          "annotations": VideoAnnotation.__table__, "keyframes": AnnotationKeyframe.__table__,
          "test_sessions": TestSession.__table__, "detections": DetectionEvent.__table__}
# Facts of the file itself: taken from the video found on this platform.
FILE_COLUMNS = ("storage_path", "size_bytes", "checksum", "fps", "frame_count", "width", "height", "duration",
                "codec", "variable_frame_rate")
USER_COLUMNS = {"projects": ("created_by",), "videos": ("uploaded_by",), "annotations": ("validated_by",),
                "test_sessions": ("created_by",)}


def _column(col: SAColumn) -> Column:
    t = col.type
    if isinstance(t, UTCDateTime):
        kind = "datetime"
    elif isinstance(t, Uuid):
        kind = "uuid"
    elif isinstance(t, JSON):
        kind = "json"
    elif isinstance(t, Boolean):
        kind = "bool"
    elif isinstance(t, Float):
        kind = "float"
    elif isinstance(t, Integer):  # BigInteger too
        kind = "int"
    elif isinstance(t, String | Text):
        kind = "str"
    else:  # pragma: no cover - a new column type must be given a kind here
        raise TypeError(f"no document kind for {col.table.name}.{col.name} ({t!r})")
    return Column(kind, bool(col.nullable), getattr(t, "length", None) if kind == "str" else None,
                  (64 if isinstance(t, BigInteger) else 32) if kind == "int" else None)


def document_columns() -> dict[str, dict[str, Column]]:
    """The document's columns per section, from the tables (what an export writes)."""
    return {section: {c.name: _column(c) for c in table.columns} for section, table in TABLES.items()}


def _plots(data: dict[str, Any]) -> bool:
    """Whether a test session row names report files (``metrics.results.plots``)."""
    results = (data.get("metrics") or {}).get("results")
    return isinstance(results, dict) and "plots" in results


def row_problems(section: str, data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """What the API would refuse in this row's JSON columns (errors), and the paths left out (warnings)."""
    problems = [("error", TYPE, name, message) for name, message in column_problems(section, data)]
    if section == "requirements":
        try:
            parse_requirement(data.get("requirement_type"), data.get("requirement_value"), data.get("weight"))
        except RequirementError as exc:
            problems.append(("error", TYPE, exc.field, str(exc)))
    elif section == "keyframes" and data.get("screenshot_path") is not None:
        problems.append(("warning", STORAGE_PATH, "screenshot_path",
                         "a path into the platform's storage is not imported; left empty"))
    elif section == "test_sessions" and not problems:
        weights = (data.get("model") or {}).get("weights")
        if weights is not None and not (isinstance(weights, str) and safe_file_name(weights)):
            problems.append(("error", TYPE, "model.weights", "weights must be a file name inside the model "
                                                             "directory"))
        if _plots(data):
            problems.append(("warning", STORAGE_PATH, "metrics.results.plots",
                             "report files are not imported: the report is drawn again from the stored numbers"))
    return problems


def _imported_row(section: str, out: dict[str, Any]) -> dict[str, Any]:
    """The row as written: what :func:`row_problems` warned about is left out."""
    if section == "keyframes":
        out["screenshot_path"] = None
    elif section == "test_sessions" and _plots(out):
        results = {k: v for k, v in out["metrics"]["results"].items() if k != "plots"}
        out["metrics"] = {**out["metrics"], "results": results}
    return out


def _find_videos(conn: Connection, check: ProjectCheck, user: User | None) -> dict[uuid.UUID, Video]:
    """The video of this platform behind each video row, or an error at that row."""
    found: dict[uuid.UUID, Video] = {}
    checksums = sorted({v.checksum for v in check.videos})
    stmt = select(Video).where(Video.checksum.in_(checksums)).order_by(Video.created_at, Video.id)
    if user is None or user.role != "admin":
        uid = user.id if user else None
        members = select(ProjectMember.project_id).where(ProjectMember.user_id == uid)
        stmt = stmt.where(or_(Video.project_id.in_(members), Video.project_id.is_(None) & (Video.uploaded_by == uid)))
    from sqlalchemy.orm import Session

    stored = store()
    with Session(bind=conn) as s:
        candidates: dict[str, list[Video]] = {}
        for video in s.scalars(stmt):
            if stored.exists(video.storage_path):
                s.expunge(video)
                candidates.setdefault(video.checksum, []).append(video)
    for row in check.videos:
        options = candidates.get(row.checksum, [])
        same = [v for v in options if v.id == row.id]
        if same or options:
            found[row.id] = video = (same or options)[0]
            if row.in_document and row.storage_path != video.storage_path:
                check.add_warning(STORAGE_PATH, "the document's storage_path is not imported: the file is this "
                                                "platform's video with the same sha256",
                                  pointer=f"/sections/videos/{row.index}", field="storage_path")
        else:
            check.add_error("reference", f"video {row.filename!r} (sha256 {row.checksum}) is not on this platform "
                                         "where you may read it: upload it, then import again",
                            pointer=f"/sections/videos/{row.index}", field="checksum")
    return found


def validate(conn: Connection, path: Path, user: User | None) -> tuple[ProjectCheck, dict[uuid.UUID, Video]]:
    check = formats.project.check(path, document_columns(), row_check=row_problems)
    videos = _find_videos(conn, check, user) if check.videos else {}
    return check, videos


def write(ctx: JobContext, w: Writer, path: Path, check: ProjectCheck, videos: dict[uuid.UUID, Video],
          imp: ImportJob) -> dict[str, Any]:
    """Every row of the document, in order, inside the caller's transaction (``w`` batches the inserts)."""
    conn: Connection = w.conn
    users = set(conn.scalars(select(User.id)))
    columns = {section: [c.name for c in table.columns if not (section == "detections" and c.name == "id")]
               for section, table in TABLES.items()}
    files = {old: (video.id, {name: getattr(video, name) for name in FILE_COLUMNS}) for old, video in videos.items()}
    now = utcnow()
    importer = uuid.UUID(imp.created_by) if _is_uuid(imp.created_by) else None
    new_projects: list[uuid.UUID] = []
    current = None
    for section, out in formats.project.imported_rows(formats.read_document(path), check, columns, files, users,
                                                      USER_COLUMNS):
        if section != current:
            w.flush()
            current = section
        w.tick()
        if out is None:  # a video of another project, referred to as it is
            continue
        if section == "projects":
            new_projects.append(out["id"])
        w.add(TABLES[section], _imported_row(section, out))
    w.flush()
    if importer is not None and importer in users:
        for project_id in new_projects:
            conn.execute(insert(ProjectMember.__table__).values(project_id=project_id, user_id=importer,
                                                                 role="admin", created_at=now))
    for project_id in new_projects:
        conn.execute(insert(AuditLog.__table__).values(
            at=now, user_id=importer, action="import", resource_type="project", resource_id=str(project_id),
            details={"import_id": str(imp.id), "rows": check.counts}))
    conn.execute(update(ImportJob).where(ImportJob.id == imp.id).values(records_processed=w.processed))
    return {"project_ids": [str(p) for p in new_projects], "rows": dict(check.counts),
            "videos_shared": sum(1 for v in check.videos if not v.in_document)}


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


__all__ = ["TABLES", "document_columns", "row_problems", "validate", "write"]
