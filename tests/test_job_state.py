"""One writer of job state: the lifecycle writes a job's status, progress and error on the jobs row
and, in the same transaction, on its export or import row; the routes answer those columns as they are."""
from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from harness import project_with_video, wait_until
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session
from test_transfer_api import _annotate, _export, worker_env  # noqa: F401 - worker_env is a fixture

from models import ExportJob, ImportJob, Job, utcnow

TERMINAL = ("completed", "failed", "cancelled")


def _rows(engine, model, row_id: str) -> tuple[Job, object]:
    with Session(engine) as s:
        side = s.get(model, uuid.UUID(row_id))
        job = s.get(Job, side.job_id)
        s.expunge_all()
    return job, side


def _agree(job: Job, side: object, status_column: str) -> None:
    """The side row holds what the jobs row holds: status, whole percent, error."""
    assert getattr(side, status_column) == job.status
    assert side.progress_percent == int(job.progress_percent)
    assert side.error_message == job.error


def test_export_and_import_rows_hold_what_the_job_row_holds(stack, tmp_path):
    engine = create_engine(stack.database_url)
    try:
        project, video = project_with_video(stack, tmp_path)
        session, _ = _annotate(stack, project, video)
        # completed
        done = _export(stack, {"job_name": "ok", "export_type": "annotations", "format": "csv",
                               "scope_filter": {"annotation_session_ids": [session["id"]]}})
        stack.wait_job(done["job_id"])
        job, exp = _rows(engine, ExportJob, done["id"])
        assert job.status == "completed" and exp.progress_percent == 100
        _agree(job, exp, "status")
        answer = stack.api("GET", f"/api/export/jobs/{done['id']}").json()
        assert (answer["status"], answer["progress_percent"], answer["error_message"]) == ("completed", 100, None)
        # failed: a project without annotation sessions holds nothing to export
        empty = stack.api("POST", "/api/projects", json={"name": f"empty-{uuid.uuid4().hex[:6]}"}).json()
        failed = _export(stack, {"job_name": "none", "export_type": "annotations", "format": "csv",
                                 "scope_filter": {"project_ids": [empty["id"]]}})
        stack.wait_job(failed["job_id"])
        job, exp = _rows(engine, ExportJob, failed["id"])
        assert job.status == "failed" and "holds no annotation sessions" in job.error
        _agree(job, exp, "status")
        assert failed["status"] == "failed" and failed["error_message"] == job.error
        # cancelled before it ran (marked as sent, so that no outbox hands it to a worker)
        with Session(engine) as s:
            from tasks.dispatch import create_job

            pending = create_job(s, "export", {"export_id": str(export_id := uuid.uuid4())})
            pending.dispatched_at = utcnow()
            s.add(ExportJob(id=export_id, job_name="never", export_type="annotations", format="csv",
                            scope_filter={"annotation_session_ids": [session["id"]]}, created_by="test",
                            job_id=pending.id))
            s.commit()
            pending_id = pending.id
        assert stack.api("POST", f"/api/jobs/{pending_id}/cancel").status_code == 202
        job, exp = _rows(engine, ExportJob, str(export_id))
        assert job.status == "cancelled"
        _agree(job, exp, "status")
        assert stack.api("GET", f"/api/export/jobs/{export_id}").json()["status"] == "cancelled"
        # an import refused by validation: its message, as it is, on both rows
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "bad", "import_type": "annotations", "source_format": "csv", "project_id": project["id"],
            "video_id": video["id"]}, files={"file": ("bad.csv", b"not,a,csv,file\r\n1,2\r\n")})
        assert r.status_code == 202, r.text
        imp = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                         ["status"] in TERMINAL and i, 90, 0.2, "import")
        stack.wait_job(imp["job_id"])
        job, row = _rows(engine, ImportJob, imp["id"])
        assert job.status == "failed" and job.error.startswith("validation failed"), job.error
        _agree(job, row, "import_status")
        assert (imp["status"], imp["import_status"], imp["error_message"]) == ("failed", "failed", job.error)
        # the route answers the row's columns: it reconciles nothing with the jobs row
        with engine.begin() as conn:
            conn.execute(update(ExportJob).where(ExportJob.id == uuid.UUID(failed["id"]))
                         .values(status="processing", progress_percent=42, error_message="as written"))
        answer = stack.api("GET", f"/api/export/jobs/{failed['id']}").json()
        assert (answer["status"], answer["progress_percent"], answer["error_message"]) == \
            ("processing", 42, "as written")
    finally:
        engine.dispose()


class _Task:
    """What the lifecycle reads of the Celery task that runs it (its request and its events)."""

    soft_time_limit = None
    request = SimpleNamespace(hostname=f"state-test@{uuid.uuid4().hex[:6]}", called_directly=True, retries=0)

    def send_event(self, *_args, **_kwargs) -> None:
        return None


@pytest.mark.usefixtures("worker_env")
def test_the_lifecycle_writes_the_export_row_in_the_job_rows_transaction(stack, tmp_path):
    """Progress, cancel and failure, each seen on both rows at once (bodies write no state)."""
    from tasks.dispatch import create_job
    from tasks.lifecycle import JobCancelled, run_job

    engine = create_engine(stack.database_url)
    project, video = project_with_video(stack, tmp_path)
    session, _ = _annotate(stack, project, video)

    def new_export() -> tuple[str, str]:
        with Session(engine) as s:
            job = create_job(s, "export", {"export_id": str(export_id := uuid.uuid4())})
            job.dispatched_at = utcnow()  # no outbox hands it to a worker: this test runs it
            s.add(ExportJob(id=export_id, job_name="t", export_type="annotations", format="csv",
                            scope_filter={"annotation_session_ids": [session["id"]]}, created_by="test",
                            job_id=job.id))
            s.commit()
            return str(job.id), str(export_id)

    seen = []

    def cancelled_body(ctx):
        ctx.progress(37.6, "writing")
        seen.append(_rows(engine, ExportJob, export_id))
        raise JobCancelled(str(ctx.job_id))

    def failing_body(ctx):
        ctx.progress(12.0, "reading rows")
        raise OSError("disk full")

    try:
        for body, status in ((cancelled_body, "cancelled"), (failing_body, "failed")):
            job_id, export_id = new_export()
            assert run_job(_Task(), job_id, body) == {"outcome": status}
            job, exp = _rows(engine, ExportJob, export_id)
            assert job.status == status
            _agree(job, exp, "status")
        job, exp = seen[0]
        assert (job.status, job.stage, exp.status, exp.progress_percent) == ("processing", "writing", "processing", 37)
        assert exp.error_message is None and job.error is None
        assert stack.api("GET", f"/api/export/jobs/{export_id}").json()["error_message"] == "OSError: disk full"
        # the export itself, through the lifecycle
        from tasks.transfer import export_body

        job_id, export_id = new_export()
        assert run_job(_Task(), job_id, export_body) == {"outcome": "completed"}
        job, exp = _rows(engine, ExportJob, export_id)
        _agree(job, exp, "status")
        assert exp.status == "completed" and exp.file_path and exp.progress_percent == 100
        with engine.connect() as conn:
            assert conn.scalar(select(Job.result).where(Job.id == uuid.UUID(job_id)))["sha256"] == exp.sha256
    finally:
        engine.dispose()
