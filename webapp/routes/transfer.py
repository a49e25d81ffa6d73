"""Export and import jobs: submit, follow, download; uploads stream to disk, work runs on the CPU pool."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from flask import Response, current_app, redirect, request, send_file, url_for
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, select, update

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
from tasks.transfer import EXPORT_TYPES, IMPORT_TYPES, RECORD_FORMATS, Scope, scope_projects

from ..annotation_service import load_session
from ..auth import current_user, get_project_for, project_role, require_writer
from ..bodies import single_file
from ..db import audit, database, db_session, paginate, parse_uuid
from ..errors import ApiError
from ..extensions import limiter
from ..realtime import breaker, marks
from ..schemas import NAME, FiniteFloat, PageArgs, StrictSchema, page_schema
from ..uploads import CHUNK, attachment, sha256_of

bp = Blueprint("transfer", __name__, url_prefix="/api", description="Export and import jobs")
#: Sessions with at most this many annotations are exported in the request itself.
DIRECT_EXPORT_LIMIT = 2000


# ------------------------------------------------------------------------------ schemas


class ScopeIn(StrictSchema):
    project_ids = fields.List(fields.UUID(), load_default=list)
    video_ids = fields.List(fields.UUID(), load_default=list)
    annotation_session_ids = fields.List(fields.UUID(), load_default=list)
    test_session_ids = fields.List(fields.UUID(), load_default=list)
    classes = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    validation_status = fields.List(fields.String(validate=validate.OneOf(("pending", "validated", "rejected"))),
                                    load_default=list)
    time_from = FiniteFloat(validate=validate.Range(min=0))
    time_to = FiniteFloat(validate=validate.Range(min=0))

    @validates_schema
    def _range(self, data, **_kwargs):
        start, end = data.get("time_from"), data.get("time_to")
        if start is not None and end is not None and end < start:
            raise ValidationError("must not be before time_from", "time_to")


class ExportIn(StrictSchema):
    job_name = fields.String(required=True, validate=NAME)
    export_type = fields.String(required=True, validate=validate.OneOf(EXPORT_TYPES))
    format = fields.String(required=True, validate=validate.OneOf(formats.FORMATS))
    scope_filter = fields.Nested(ScopeIn, load_default=dict)
    include_images = fields.Boolean(load_default=True, metadata={
        "description": "yolo: put the frames in the dataset as JPEG (images/), so that it loads in other tools"})

    @validates_schema
    def _combination(self, data, **_kwargs):
        if data["export_type"] in ("project", "full") and data["format"] != "json":
            raise ValidationError("project and full exports are written in the platform's json format", "format")
        if data["export_type"] == "results" and data["format"] == "cvat_video":
            raise ValidationError("CVAT for video holds annotations, not results", "format")


class ExportOut(Schema):
    id = fields.UUID()
    job_id = fields.UUID(allow_none=True)
    job_name = fields.String()
    export_type = fields.String()
    format = fields.String()
    scope_filter = fields.Dict()
    status = fields.String()
    progress_percent = fields.Float()
    stage = fields.String(allow_none=True)
    file_size = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    download_count = fields.Integer()
    created_by = fields.String()
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    error_message = fields.String(allow_none=True)
    download_url = fields.String(allow_none=True)


class ImportForm(StrictSchema):
    job_name = fields.String(required=True, validate=NAME)
    import_type = fields.String(required=True, validate=validate.OneOf(IMPORT_TYPES))
    source_format = fields.String(required=True, validate=validate.OneOf(formats.FORMATS))
    project_id = fields.UUID()  # required except for project imports, which create their projects
    video_id = fields.UUID()
    session_id = fields.UUID()
    test_session_id = fields.UUID()
    source_video_id = fields.String(validate=validate.Length(min=1, max=255))
    on_error = fields.String(load_default="abort", validate=validate.OneOf(("abort", "skip")))
    label_map = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    add_missing_labels = fields.Boolean(load_default=False)
    default_label = fields.String(validate=validate.Length(min=1, max=100),
                                  metadata={"description": "the class of boxes the file gives none (MOT results, "
                                                           "det.txt, MOT15 ground truth)"})
    frame_map = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=1000)),
                            values=fields.Integer(validate=validate.Range(min=0)), metadata={
                                "description": "image or label file name -> video frame, where names carry no "
                                               "frame number (COCO, YOLO)"})
    validation_status = fields.String(load_default="pending", validate=validate.OneOf(("pending", "validated")))


class ImportOut(Schema):
    id = fields.UUID()
    job_id = fields.UUID(allow_none=True)
    job_name = fields.String()
    import_type = fields.String()
    source_format = fields.String()
    status = fields.String()
    validation_status = fields.String()
    import_status = fields.String()
    progress_percent = fields.Float()
    stage = fields.String(allow_none=True)
    records_processed = fields.Integer()
    records_total = fields.Integer()
    validation_errors = fields.List(fields.Dict())
    import_errors = fields.List(fields.Dict())
    result = fields.Dict(allow_none=True)
    annotation_session_id = fields.String(allow_none=True)
    test_session_id = fields.String(allow_none=True)
    project_ids = fields.List(fields.String(), allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    error_message = fields.String(allow_none=True)


ExportPage = page_schema(ExportOut, "ExportPage")
ImportPage = page_schema(ImportOut, "ImportPage")


def _fields_error(location: str, messages: dict) -> ApiError:
    return ApiError(422, "request validation failed", details={"fields": {location: messages}})


# ------------------------------------------------------------------------------ helpers


def _job_of(row) -> Job | None:
    return db_session().get(Job, row.job_id) if row.job_id else None


def _status(row_status: str, job: Job | None) -> str:
    if row_status in ("completed", "failed", "cancelled", "expired") or job is None:
        return row_status
    return job.status if job.status in TERMINAL_STATUSES or row_status == "pending" else row_status


def _raw(schema: type[Schema], row) -> dict:
    """The row's values for the response schema to serialize (it adds the derived fields after)."""
    return {name: getattr(row, name, None) for name in schema._declared_fields}


def _export_out(exp: ExportJob) -> dict:
    job = _job_of(exp)
    data = _raw(ExportOut, exp)
    data["status"] = _status(exp.status, job)
    data["progress_percent"] = 100.0 if exp.status == "completed" else float(job.progress_percent if job else 0)
    data["stage"] = job.stage if job else None
    if exp.status != "completed" and job is not None and job.error:
        data["error_message"] = exp.error_message or job.error
    data["download_url"] = url_for("transfer.download_export", export_id=str(exp.id)) \
        if exp.status == "completed" else None
    return data


def _import_out(imp: ImportJob) -> dict:
    job = _job_of(imp)
    data = _raw(ImportOut, imp)
    data["status"] = _status(imp.import_status, job)
    data["progress_percent"] = 100.0 if imp.import_status == "completed" else float(
        job.progress_percent if job else imp.progress_percent)
    data["stage"] = job.stage if job else None
    result = job.result if job else None
    data["result"] = result
    data["annotation_session_id"] = (result or {}).get("annotation_session_id")
    data["project_ids"] = (result or {}).get("project_ids")
    data["test_session_id"] = (result or {}).get("test_session_id") or (job.params.get("test_session_id")
                                                                        if job else None)
    if imp.import_status != "completed" and job is not None and job.error and not imp.error_message:
        data["error_message"] = job.error
    return data


def _submit(db, job: Job) -> None:
    db.commit()
    if breaker.available():
        breaker.record(dispatch(database(), job, marks.add))


def _check_scope(db, user, scope: Scope, write: bool = False) -> list[uuid.UUID]:
    """Every project the scope touches must exist and be readable by the user."""
    for what, model, ids in (("video", Video, scope.video_ids),
                             ("annotation session", AnnotationSession, scope.annotation_session_ids),
                             ("test session", TestSession, scope.test_session_ids)):
        for i in ids:
            if db.get(model, i) is None:
                raise ApiError(404, f"{what} {i} not found")
    projects = scope_projects(db.connection(), scope)
    if not projects:
        raise _fields_error("json", {"scope_filter": ["name at least one project, video, annotation session or "
                                                      "test session"]})
    for project_id in projects:
        get_project_for(db, user, project_id, write=write)
    return projects


def _readable_video_projects(db, user, scope: Scope) -> list[str]:
    """The projects a video scope reaches that the user may read.

    Sessions of several projects may annotate one video; an export of a video covers the
    caller's projects only, so that another project's session neither fails the export nor joins it.
    """
    for video_id in scope.video_ids:
        if db.get(Video, video_id) is None:
            raise ApiError(404, f"video {video_id} not found")
    readable = [str(p) for p in scope_projects(db.connection(), scope) if project_role(db, user, p) is not None]
    if not readable:
        raise _fields_error("json", {"scope_filter": ["no project of yours annotates or tests these videos"]})
    return readable


def _visible(model, user):
    stmt = select(model)
    if not user.is_admin:
        stmt = stmt.where(model.created_by == str(user.id))
    return stmt


def _load_export(export_id: str) -> ExportJob:
    db, user = db_session(), current_user()
    exp = db.get(ExportJob, parse_uuid(export_id, "export job"))
    if exp is None:
        raise ApiError(404, "export job not found")
    if not (user.is_admin or exp.created_by == str(user.id)):
        raise ApiError(403, "not allowed to see this export job")
    return exp


def _load_import(import_id: str) -> ImportJob:
    db, user = db_session(), current_user()
    imp = db.get(ImportJob, parse_uuid(import_id, "import job"))
    if imp is None:
        raise ApiError(404, "import job not found")
    if not (user.is_admin or imp.created_by == str(user.id)):
        raise ApiError(403, "not allowed to see this import job")
    return imp


# ------------------------------------------------------------------------------ exports


def _create_export(db, user, data: dict) -> tuple[ExportJob, Job]:
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
def create_export(data):
    """Start an export on the CPU pool; follow it with GET /api/export/jobs/{id}."""
    db, user = db_session(), current_user()
    exp, job = _create_export(db, user, data)
    _submit(db, job)
    return _export_out(exp), 202, {"Location": url_for("transfer.get_export", export_id=str(exp.id))}


@bp.route("/export/jobs", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, ExportPage)
def list_exports(args):
    db, user = db_session(), current_user()
    page = paginate(db, _visible(ExportJob, user).order_by(ExportJob.created_at.desc(), ExportJob.id),
                    args["page"], args["per_page"])
    page["items"] = [_export_out(e) for e in page["items"]]
    return page


@bp.route("/export/jobs/<export_id>", methods=["GET"])
@bp.response(200, ExportOut)
def get_export(export_id):
    return _export_out(_load_export(export_id))


@bp.route("/export/jobs/<export_id>/download", methods=["GET"])
def download_export(export_id):
    """The file, streamed; 409 until the export completed, 410 once it expired."""
    db, user = db_session(), current_user()
    exp = _load_export(export_id)
    if exp.status == "expired":
        raise ApiError(410, "this export expired and its file was deleted; export again")
    if exp.status != "completed" or not exp.file_path:
        raise ApiError(409, f"the export is not complete (status {_status(exp.status, _job_of(exp))})",
                       details={"status": _status(exp.status, _job_of(exp))})
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
def export_session(session_id, fmt):
    """Small sessions are answered directly (streamed); larger ones start an export job (202).

    A session is small when it has at most ``DIRECT_EXPORT_LIMIT`` annotations and the rows
    the file would hold (each annotation once per frame it spans) stay within
    ``DIRECT_EXPORT_MAX_ROWS``. Otherwise, or with ``?async=1``, the answer is ``202`` with the
    export job (as ``POST /api/export/jobs`` makes it) and its ``Location``.
    """
    db, user = db_session(), current_user()
    if fmt not in formats.FORMATS:
        raise ApiError(404, f"unknown format {fmt!r}; one of {', '.join(formats.FORMATS)}")
    ann_session, _, video = load_session(db, user, parse_uuid(session_id, "annotation session"))
    count, rows = _session_rows(db, ann_session, video)
    data = {"job_name": f"{ann_session.session_name}", "export_type": "annotations", "format": fmt,
            "scope_filter": {"annotation_session_ids": [ann_session.id]}}
    too_big = count > DIRECT_EXPORT_LIMIT or rows > current_app.config["SETTINGS"].direct_export_max_rows
    if too_big or request.args.get("async") in ("1", "true"):
        exp, job = _create_export(db, user, data)
        _submit(db, job)
        # No response schema on this route (it also answers files): serialize as the job routes do.
        return ExportOut().dump(_export_out(exp)), 202, {"Location": url_for("transfer.get_export",
                                                                              export_id=str(exp.id))}
    return _direct_export(db, ann_session, fmt)


def _session_rows(db, ann_session: AnnotationSession, video: Video) -> tuple[int, int]:
    """The session's annotations and (an upper bound of) the per-frame rows they export to."""
    count, seconds = db.execute(
        select(func.count(), func.coalesce(func.sum(VideoAnnotation.end_timestamp - VideoAnnotation.start_timestamp),
                                           0.0))
        .where(VideoAnnotation.annotation_session_id == ann_session.id)).one()
    fps = max(float(video.fps or 0.0), float(video.frame_count or 0) / max(float(video.duration or 0.0), 1e-9), 1.0)
    per_frame = int(float(seconds) * fps) + 2 * int(count)  # each span's first and last frame
    return int(count), min(per_frame, int(count) * max(int(video.frame_count or 0), 1))


class _InRequest:
    """The job context of an export written in a request: no progress, and other requests run
    between batches (the web process is cooperative)."""

    def progress(self, *_a, **_k) -> None:
        import gevent

        gevent.sleep(0)

    def check_cancel(self) -> None:
        return None


def _direct_export(db, ann_session: AnnotationSession, fmt: str) -> Response:
    import tempfile

    from tasks.transfer import write_export

    exp = ExportJob(id=uuid.uuid4(), job_name=ann_session.session_name, export_type="annotations", format=fmt,
                    scope_filter={"annotation_session_ids": [str(ann_session.id)]})
    tmp_dir = Path(current_app.config["STORAGE_DIR"]) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="export-", suffix=".part")
    os.close(fd)
    try:
        write_export(_InRequest(), db.connection(), exp, Path(name))  # type: ignore[arg-type]
        size = os.path.getsize(name)
        fh = open(name, "rb")  # noqa: SIM115 - closed by the generator
    finally:
        os.unlink(name)  # the open handle keeps the data until the answer is sent

    def chunks():
        with fh:
            while block := fh.read(CHUNK):
                yield block

    ext = formats.EXTENSIONS[fmt]
    response = Response(chunks(), mimetype=formats.CONTENT_TYPES[fmt], direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = attachment(ann_session.session_name, "session", ext)
    return response


# ------------------------------------------------------------------------------ imports


@bp.route("/import/jobs", methods=["POST"])
@limiter.limit(lambda: current_app.config["SETTINGS"].rate_limit_upload)
def create_import():
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
                raise _fields_error("form", {key: ["must be a JSON object"]}) from None
    try:
        data = ImportForm().load(form)
    except ValidationError as exc:
        raise _fields_error("form", exc.messages) from None
    upload = single_file()
    if data["import_type"] == "project":
        return _create_project_import(db, user, data, upload)
    if "project_id" not in data:
        raise _fields_error("form", {"project_id": ["Missing data for required field."]})
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
        raise _fields_error("form", errors)

    params = {"project_id": str(project.id), "video_id": str(video.id),
              "on_error": data["on_error"], "label_map": data["label_map"],
              "add_missing_labels": data["add_missing_labels"], "validation_status": data["validation_status"]}
    for key in ("session_id", "test_session_id", "source_video_id", "default_label"):
        if key in data:
            params[key] = str(data[key])
    if data.get("frame_map"):
        params["frame_map"] = data["frame_map"]
    return _enqueue_import(db, user, data, upload, params, project.id)


def _create_project_import(db, user, data: dict, upload):
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
        raise _fields_error("form", errors)
    return _enqueue_import(db, user, data, upload, {"on_error": "abort"}, None)


def _enqueue_import(db, user, data: dict, upload, params: dict, project_id):
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
def list_imports(args):
    db, user = db_session(), current_user()
    page = paginate(db, _visible(ImportJob, user).order_by(ImportJob.created_at.desc(), ImportJob.id),
                    args["page"], args["per_page"])
    page["items"] = [_import_out(i) for i in page["items"]]
    return page


@bp.route("/import/jobs/<import_id>", methods=["GET"])
@bp.response(200, ImportOut)
def get_import(import_id):
    return _import_out(_load_import(import_id))


@bp.route("/import/jobs/<import_id>/status", methods=["GET"])
@bp.response(200, ImportOut)
def import_status(import_id):
    return _import_out(_load_import(import_id))

