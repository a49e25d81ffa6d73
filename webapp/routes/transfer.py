"""Export and import jobs: submit, follow, download; uploads stream to disk, work runs on the CPU pool."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Response, current_app, redirect, request, send_file, url_for
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError
from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, selectinload
from werkzeug.datastructures import FileStorage

import formats
from models import (
    TERMINAL_STATUSES,
    AnnotationSession,
    ExportJob,
    ImportJob,
    Job,
    TestSession,
    Video,
    VideoAnnotation,
    utcnow,
)
from storage import store
from tasks.dispatch import create_job, dispatch
from tasks.transfer import RECORD_FORMATS, Scope, scope_projects

from ..annotation_service import load_session
from ..auth import Principal, current_user, get_or_404, get_project_for, project_role, require_writer
from ..bodies import single_file
from ..db import audit, database, db_session, paginate, parse_uuid
from ..errors import ApiError, validation_error
from ..extensions import limiter
from ..realtime import breaker, marks
from ..schemas import ExportIn, ExportOut, ExportPage, ImportForm, ImportOut, ImportPage, PageArgs
from ..uploads import CHUNK, attachment, sha256_of

bp = Blueprint("transfer", __name__, url_prefix="/api", description="Export and import jobs")
#: Sessions with at most this many annotations are answered with the file itself.
DIRECT_EXPORT_LIMIT = 2000
#: How long such a request waits for its export job to end before it answers 202 with the job.
DIRECT_EXPORT_WAIT_SECONDS = 30.0


# ------------------------------------------------------------------------------ helpers


def _job_of(row: ExportJob | ImportJob) -> Job | None:
    return row.job


def _export_status(exp: ExportJob) -> str:
    """The job's status as the lifecycle wrote it on the row; a completed export whose file expiry
    deleted is ``expired`` (derived, never stored)."""
    return "expired" if exp.status == "completed" and exp.file_path is None else exp.status


def _raw(schema: type[Schema], row: object) -> dict:
    """The row's values for the response schema to serialize (it adds the derived fields after)."""
    return {name: getattr(row, name, None) for name in schema._declared_fields}


def _export_out(exp: ExportJob) -> dict:
    """Status, progress and error are the row's own columns (the lifecycle writes them with the
    job row); the job adds only what the row has no column for, its stage."""
    job = _job_of(exp)
    data = _raw(ExportOut, exp)
    data["status"] = _export_status(exp)
    data["stage"] = job.stage if job else None
    data["download_url"] = url_for("transfer.download_export", export_id=str(exp.id)) \
        if data["status"] == "completed" else None
    return data


def _import_out(imp: ImportJob) -> dict:
    """As :func:`_export_out`; the job adds its stage and its result (the sessions it filled)."""
    job = _job_of(imp)
    data = _raw(ImportOut, imp)
    data["status"] = imp.import_status
    data["stage"] = job.stage if job else None
    result = job.result if job else None
    data["result"] = result
    data["annotation_session_id"] = (result or {}).get("annotation_session_id")
    data["project_ids"] = (result or {}).get("project_ids")
    data["test_session_id"] = (result or {}).get("test_session_id") or (job.params.get("test_session_id")
                                                                        if job else None)
    return data


def _submit(db: Session, job: Job) -> None:
    db.commit()
    if breaker.available():
        breaker.record(dispatch(database(), job, marks.add))


def _check_scope(db: Session, user: Principal, scope: Scope, write: bool = False) -> list[uuid.UUID]:
    """Every project the scope touches must exist and be readable by the user."""
    for what, model, ids in (("video", Video, scope.video_ids),
                             ("annotation session", AnnotationSession, scope.annotation_session_ids),
                             ("test session", TestSession, scope.test_session_ids)):
        for i in ids:
            if db.get(model, i) is None:
                raise ApiError(404, f"{what} {i} not found")
    projects = scope_projects(db.connection(), scope)
    if not projects:
        raise validation_error({"scope_filter": "name at least one project, video, annotation session or "
                                                "test session"})
    for project_id in projects:
        get_project_for(db, user, project_id, write=write)
    return projects


def _readable_video_projects(db: Session, user: Principal, scope: Scope) -> list[str]:
    """The projects a video scope reaches that the user may read.

    Sessions of several projects may annotate one video; an export of a video covers the
    caller's projects only, so that another project's session neither fails the export nor joins it.
    """
    for video_id in scope.video_ids:
        if db.get(Video, video_id) is None:
            raise ApiError(404, f"video {video_id} not found")
    readable = [str(p) for p in scope_projects(db.connection(), scope) if project_role(db, user, p) is not None]
    if not readable:
        raise validation_error({"scope_filter": ["no project of yours annotates or tests these videos"]})
    return readable


def _visible(model: type[ExportJob] | type[ImportJob], user: Principal) -> Select:
    stmt = select(model)
    if not user.is_admin:
        stmt = stmt.where(model.created_by == str(user.id))
    return stmt


# ------------------------------------------------------------------------------ exports


def _create_export(db: Session, user: Principal, data: dict) -> tuple[ExportJob, Job]:
    scope_data = {k: ([str(v) for v in val] if k.endswith("_ids") else val)
                  for k, val in data.get("scope_filter", {}).items()}
    if scope_data.get("video_ids") and not scope_data.get("project_ids"):
        scope_data["project_ids"] = _readable_video_projects(db, user, Scope.from_dict(scope_data))
    scope = Scope.from_dict(scope_data)
    projects = _check_scope(db, user, scope)
    exp = ExportJob(id=uuid.uuid4(), job_name=data["job_name"], export_type=data["export_type"],
                    format=data["format"], scope_filter=scope_data, status="pending", created_by=str(user.id))
    db.add(exp)
    job = create_job(db, "export", {"export_id": str(exp.id), "include_images": data.get("include_images", True)},
                     project_id=projects[0] if len(projects) == 1 else None, created_by=user.id)
    exp.job_id = job.id
    audit(db, "create", "export_job", exp.id, {"format": exp.format, "export_type": exp.export_type})
    return exp, job


@bp.route("/export/jobs", methods=["POST"])
@bp.arguments(ExportIn)
@bp.response(202, ExportOut)
def create_export(data: dict[str, Any]) -> tuple[dict, int, dict[str, str]]:
    """Start an export on the CPU pool; follow it with GET /api/export/jobs/{id}."""
    db, user = db_session(), current_user()
    exp, job = _create_export(db, user, data)
    _submit(db, job)
    return _export_out(exp), 202, {"Location": url_for("transfer.get_export", export_id=str(exp.id))}


@bp.route("/export/jobs", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, ExportPage)
def list_exports(args: dict[str, Any]) -> dict[str, Any]:
    db, user = db_session(), current_user()
    page = paginate(db, _visible(ExportJob, user).options(selectinload(ExportJob.job))
                    .order_by(ExportJob.created_at.desc(), ExportJob.id), args["page"], args["per_page"])
    page["items"] = [_export_out(e) for e in page["items"]]
    return page


@bp.route("/export/jobs/<export_id>", methods=["GET"])
@bp.response(200, ExportOut)
def get_export(export_id: str) -> dict:
    return _export_out(get_or_404(ExportJob, export_id, "export job"))


@bp.route("/export/jobs/<export_id>/download", methods=["GET"])
def download_export(export_id: str) -> Response:
    """The file, streamed; 409 until the export completed, 410 once it expired."""
    db, user = db_session(), current_user()
    exp = get_or_404(ExportJob, export_id, "export job")
    status = _export_status(exp)
    if status == "expired":
        raise ApiError(410, "this export expired and its file was deleted; export again")
    if status != "completed":
        raise ApiError(409, f"the export is not complete (status {status})", details={"status": status})
    if exp.expires_at is not None and exp.expires_at <= utcnow():
        raise ApiError(410, "this export expired; export again")
    _check_scope(db, user, Scope.from_dict(exp.scope_filter or {}))
    stored = store(current_app.config["STORAGE_DIR"])
    if not stored.exists(exp.file_path):
        raise ApiError(410, "the export file is gone; export again")
    db.execute(update(ExportJob).where(ExportJob.id == exp.id)
               .values(download_count=ExportJob.download_count + 1))
    audit(db, "download", "export_job", exp.id)
    db.commit()
    ext = Path(exp.file_path).suffix
    mimetype = "application/zip" if ext == ".zip" else formats.CONTENT_TYPES[exp.format]
    url = stored.url(exp.file_path, filename=attachment(exp.job_name, "export", ext), mimetype=mimetype)
    response = redirect(url) if url else send_file(stored.local_path(exp.file_path), mimetype=mimetype,
                                                   conditional=False, etag=False)
    response.headers["Content-Disposition"] = attachment(exp.job_name, "export", ext)
    response.headers["X-Content-SHA256"] = exp.sha256 or ""
    return response


@bp.route("/annotations/sessions/<session_id>/export/<fmt>", methods=["GET"])
def export_session(session_id: str, fmt: str) -> Response | tuple[dict[str, Any], int, dict[str, str]]:
    """Small sessions are answered with the file (streamed); larger ones with their export job (202).

    Every export runs as an export job on the CPU pool. A session is small when it has at most
    ``DIRECT_EXPORT_LIMIT`` annotations and the rows the file would hold (each annotation once per
    frame it spans) stay within ``DIRECT_EXPORT_MAX_ROWS``: the request then waits up to
    ``DIRECT_EXPORT_WAIT_SECONDS`` for the job and answers its file. Otherwise, or with
    ``?async=1``, or when the job is not done in that time, the answer is ``202`` with the export
    job (as ``POST /api/export/jobs`` makes it) and its ``Location``.
    """
    db, user = db_session(), current_user()
    if fmt not in formats.FORMATS:
        raise ApiError(404, f"unknown format {fmt!r}; one of {', '.join(formats.FORMATS)}")
    ann_session, _, video = load_session(db, user, parse_uuid(session_id, "annotation session"))
    count, rows = _session_rows(db, ann_session, video)
    data = {"job_name": f"{ann_session.session_name}", "export_type": "annotations", "format": fmt,
            "scope_filter": {"annotation_session_ids": [ann_session.id]}}
    too_big = count > DIRECT_EXPORT_LIMIT or rows > current_app.config["SETTINGS"].direct_export_max_rows
    exp, job = _create_export(db, user, data)
    _submit(db, job)
    if not too_big and request.args.get("async") not in ("1", "true") and _wait_for(job.id) == "completed":
        db.refresh(exp)
        if exp.file_path:
            return _export_file(exp, ann_session.session_name)
    # No response schema on this route (it also answers files): serialize as the job routes do.
    return ExportOut().dump(_export_out(exp)), 202, {"Location": url_for("transfer.get_export",
                                                                          export_id=str(exp.id))}


def _session_rows(db: Session, ann_session: AnnotationSession, video: Video) -> tuple[int, int]:
    """The session's annotations and (an upper bound of) the per-frame rows they export to."""
    count, seconds = db.execute(
        select(func.count(), func.coalesce(func.sum(VideoAnnotation.end_timestamp - VideoAnnotation.start_timestamp),
                                           0.0))
        .where(VideoAnnotation.annotation_session_id == ann_session.id)).one()
    fps = max(float(video.fps or 0.0), float(video.frame_count or 0) / max(float(video.duration or 0.0), 1e-9), 1.0)
    per_frame = int(float(seconds) * fps) + 2 * int(count)  # each span's first and last frame
    return int(count), min(per_frame, int(count) * max(int(video.frame_count or 0), 1))


def _wait_for(job_id: uuid.UUID, seconds: float = DIRECT_EXPORT_WAIT_SECONDS) -> str:
    """The job's status once it ended, or its status when ``seconds`` have passed. Each look is
    its own short read (a transaction held open would not see the worker's commits on SQLite);
    the sleep yields to other requests (the web process is cooperative)."""
    engine = database().engine
    deadline = time.monotonic() + seconds
    delay = 0.02
    while True:
        with engine.connect() as conn:
            status = conn.scalar(select(Job.status).where(Job.id == job_id))
        if status in TERMINAL_STATUSES or status is None or time.monotonic() >= deadline:
            return status
        time.sleep(delay)
        delay = min(0.25, delay * 1.5)


def _export_file(exp: ExportJob, name: str) -> Response:
    path = Path(current_app.config["STORAGE_DIR"]) / exp.file_path
    size = path.stat().st_size
    fh = open(path, "rb")  # noqa: SIM115 - closed by the generator

    def chunks() -> Iterator[bytes]:
        with fh:
            while block := fh.read(CHUNK):
                yield block

    response = Response(chunks(), mimetype=formats.CONTENT_TYPES[exp.format], direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = attachment(name, "session", formats.EXTENSIONS[exp.format])
    return response


# ------------------------------------------------------------------------------ imports


@bp.route("/import/jobs", methods=["POST"])
@limiter.limit(lambda: current_app.config["SETTINGS"].rate_limit_upload)
def create_import() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Multipart: ``file`` plus the form fields; the file is validated then imported on the CPU pool."""
    user = require_writer()
    db = db_session()
    form = request.form.to_dict()
    for key in ("label_map", "frame_map"):  # JSON objects inside the multipart form
        if key in form:
            import json

            try:
                form[key] = json.loads(form[key])
            except ValueError:
                raise validation_error({key: ["must be a JSON object"]}, "form") from None
    try:
        data = ImportForm().load(form)
    except ValidationError as exc:
        raise validation_error(exc.messages, "form") from None
    upload = single_file()
    if data["import_type"] == "project":
        return _create_project_import(db, user, data, upload)
    if "project_id" not in data:
        raise validation_error({"project_id": ["Missing data for required field."]}, "form")
    project = get_project_for(db, user, data["project_id"], write=True)
    errors: dict[str, list[str]] = {}
    if data["source_format"] not in RECORD_FORMATS:
        errors.setdefault("source_format", []).append(f"annotations and results are imported from one of "
                                                      f"{', '.join(RECORD_FORMATS)}")
    if data["import_type"] == "results" and data["source_format"] == "cvat_video":
        errors.setdefault("source_format", []).append("CVAT for video holds annotations, not results")
    video = None
    if data["import_type"] == "results":
        if "test_session_id" not in data:
            errors.setdefault("test_session_id", []).append("a results import fills a test session: give its id")
        else:
            ts = db.get(TestSession, data["test_session_id"])
            if ts is None or ts.project_id != project.id:
                errors.setdefault("test_session_id", []).append("no such test session in this project")
            else:
                video = db.get(Video, ts.video_id)
    elif "session_id" in data:
        ann_session, _, video = load_session(db, user, data["session_id"], write=True)
        if ann_session.project_id != project.id:
            errors.setdefault("session_id", []).append("the annotation session belongs to another project")
    if video is None and not errors and "video_id" in data:
        video = db.get(Video, data["video_id"])
        if video is None or (video.project_id != project.id and not db.scalar(
                select(func.count()).select_from(AnnotationSession)
                .where(AnnotationSession.project_id == project.id, AnnotationSession.video_id == video.id))):
            errors.setdefault("video_id", []).append("no such video in this project")
            video = None
    if video is None and not errors:
        errors.setdefault("video_id", []).append("give the video the file annotates (or session_id)")
    if errors:
        raise validation_error(errors, "form")

    params = {"project_id": str(project.id), "video_id": str(video.id),
              "on_error": data["on_error"], "label_map": data["label_map"],
              "add_missing_labels": data["add_missing_labels"], "validation_status": data["validation_status"]}
    for key in ("session_id", "test_session_id", "source_video_id", "default_label"):
        if key in data:
            params[key] = str(data[key])
    if data.get("frame_map"):
        params["frame_map"] = data["frame_map"]
    return _enqueue_import(db, user, data, upload, params, project.id)


def _create_project_import(db: Session, user: Principal, data: dict,
                           upload: FileStorage) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A platform document becomes new projects; the importing user administers them."""
    errors: dict[str, list[str]] = {}
    if data["source_format"] != "json":
        errors["source_format"] = ["projects are imported from the platform's json document (a project or full "
                                   "export)"]
    if data["on_error"] != "abort":
        errors["on_error"] = ["a project is imported whole or not at all: its rows refer to each other"]
    for key in ("project_id", "video_id", "session_id", "test_session_id", "source_video_id"):
        if key in data:
            errors[key] = ["a project import creates its own projects; leave this out"]
    if errors:
        raise validation_error(errors, "form")
    return _enqueue_import(db, user, data, upload, {"on_error": "abort"}, None)


def _enqueue_import(db: Session, user: Principal, data: dict, upload: FileStorage, params: dict,
                    project_id: uuid.UUID | None) -> tuple[dict[str, Any], int, dict[str, str]]:
    import_id = uuid.uuid4()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(upload.filename or "upload").name)[:100]
    relative = f"{import_id}/{safe.strip('.') or 'upload'}"
    stored = store(current_app.config["STORAGE_DIR"])
    upload.stream.flush()
    digest, _ = sha256_of(upload.stream.name)
    stored.put_file(f"imports/{relative}", upload.stream.name, move=True)
    try:
        params = {"import_id": str(import_id), **params, "sha256": digest}
        imp = ImportJob(id=import_id, job_name=data["job_name"], import_type=data["import_type"],
                        source_format=data["source_format"], file_path=relative, created_by=str(user.id))
        db.add(imp)
        job = create_job(db, "import", params, project_id=project_id, created_by=user.id)
        imp.job_id = job.id
        audit(db, "create", "import_job", import_id, {"source_format": imp.source_format,
                                                      "import_type": imp.import_type})
        _submit(db, job)
    except BaseException:
        stored.delete_prefix(f"imports/{import_id}/")
        raise
    # A multipart route has no response schema: serialize as the job routes do (ISO 8601 times).
    return ImportOut().dump(_import_out(imp)), 202, {"Location": url_for("transfer.get_import",
                                                                         import_id=str(import_id))}


@bp.route("/import/jobs", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, ImportPage)
def list_imports(args: dict[str, Any]) -> dict[str, Any]:
    db, user = db_session(), current_user()
    page = paginate(db, _visible(ImportJob, user).options(selectinload(ImportJob.job))
                    .order_by(ImportJob.created_at.desc(), ImportJob.id), args["page"], args["per_page"])
    page["items"] = [_import_out(i) for i in page["items"]]
    return page


@bp.route("/import/jobs/<import_id>", methods=["GET"])
@bp.response(200, ImportOut)
def get_import(import_id: str) -> dict:
    return _import_out(get_or_404(ImportJob, import_id, "import job"))


@bp.route("/import/jobs/<import_id>/status", methods=["GET"])
@bp.response(200, ImportOut)
def import_status(import_id: str) -> dict:
    return _import_out(get_or_404(ImportJob, import_id, "import job"))

