"""The one job API every kind shares: read, list, cancel; plus the probe job."""
from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import or_, select, update

from models import TERMINAL_STATUSES, ImportJob, Job, ProjectMember
from tasks.dispatch import create_job
from tasks.lifecycle import cancel_pending, hint_cancel
from tasks.rooms import job_snapshot
from tasks.transfer import release_import_file

from ..auth import can_change_job, current_user, get_or_404, get_project_for, require_admin
from ..db import audit, db_session, paginate
from ..errors import ApiError
from ..realtime import broadcast_job, submit
from ..schemas import JobListArgs, JobOut, JobPage, ProbeIn

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs", description="Jobs of every kind")


@bp.route("", methods=["GET"])
@bp.arguments(JobListArgs, location="query")
@bp.response(200, JobPage)
def list_jobs(args: dict[str, Any]) -> dict[str, Any]:
    session, user = db_session(), current_user()
    stmt = select(Job)
    if not user.is_admin:
        member_projects = select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)
        stmt = stmt.where(or_(Job.created_by == user.id, Job.project_id.in_(member_projects)))
    if "project_id" in args:
        get_project_for(session, user, args["project_id"])
        stmt = stmt.where(Job.project_id == args["project_id"])
    for key in ("status", "kind"):
        if key in args:
            stmt = stmt.where(getattr(Job, key) == args[key])
    return paginate(session, stmt.order_by(Job.created_at.desc(), Job.id), args["page"], args["per_page"])


@bp.route("/<job_id>", methods=["GET"])
@bp.response(200, JobOut)
def get_job(job_id: str) -> Job:
    return get_or_404(Job, job_id, "job")


@bp.route("/<job_id>/cancel", methods=["POST"])
@bp.response(202, JobOut)
def cancel_job(job_id: str) -> Job:
    """Cancel: a pending job stops at once; a running one stops at its next progress point."""
    session, user = db_session(), current_user()
    job = get_or_404(Job, job_id, "job")
    if not can_change_job(session, user, job):
        raise ApiError(403, "not allowed to cancel this job")
    if job.status in TERMINAL_STATUSES:
        raise ApiError(409, f"job already {job.status}", details={"status": job.status})
    try:  # first, so that a running job holding SQLite's write lock learns of it
        hint_cancel(current_app.extensions["redis"], job.id)
    except Exception:  # noqa: BLE001 - the database flag is what the task obeys
        current_app.logger.warning("could not announce the cancel of job %s", job.id)
    stopped = cancel_pending(session, job.id, job.kind)
    if not stopped:
        session.execute(update(Job).where(Job.id == job.id).values(cancel_requested=True))
    # it never ran: its upload is released
    imp = session.scalar(select(ImportJob).where(ImportJob.job_id == job.id)) if stopped and job.kind == "import" \
        else None
    audit(session, "cancel", "job", job.id)
    session.commit()
    session.refresh(job)
    if stopped:
        broadcast_job(job_snapshot(job))
        if imp is not None:
            release_import_file(imp.file_path, current_app.config["SETTINGS"])
    try:
        from tasks.app import app as celery_app

        celery_app.control.revoke(str(job.id))
    except Exception:  # noqa: BLE001 - the database flag is what the task obeys
        current_app.logger.warning("could not broadcast revoke for job %s", job.id)
    return job


@bp.route("/probe", methods=["POST"])
@bp.arguments(ProbeIn)
@bp.response(202, JobOut)
def submit_probe(data: dict[str, Any]) -> tuple[Job, int, dict[str, str]]:
    """Run ``steps`` steps of ``step_seconds`` on a pool (administrators)."""
    user = require_admin()
    session = db_session()
    project_id = data.pop("project_id", None)
    if project_id is not None:
        get_project_for(session, user, project_id)
    job = create_job(session, "probe", data, project_id=project_id, created_by=user.id)
    audit(session, "create", "job", job.id, {"kind": "probe", "queue": data["queue"]})
    return submit(session, job)
