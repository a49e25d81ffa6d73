"""Imports as an attacker would use them, on the live stack: documents that carry storage paths or
malformed JSON columns, results out of range, uploads that would fill the disk, a cancel while
the import's transaction is open."""
from __future__ import annotations

import json
import shutil
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from harness import UNIT_REDIS_URL, own_stack, project_with_video, wait_until
from sqlalchemy import create_engine, func, select, update
from test_transfer_api import _annotate, _import_project, _test_session, _whole_project, worker_env  # noqa: F401

import formats
from models import (
    AnnotationKeyframe,
    AnnotationSession,
    DetectionEvent,
    ImportJob,
    Job,
    Project,
    ProjectRequirement,
    ProjectVideoAssignment,
    TestSession,
    VideoAnnotation,
    utcnow,
)

PNG = b"\x89PNG\r\n\x1a\n"
TABLES = (Project, ProjectRequirement, ProjectVideoAssignment, AnnotationSession, VideoAnnotation,
          AnnotationKeyframe, TestSession, DetectionEvent)


def _storage(stack) -> Path:
    return Path(stack.workdir) / "storage"


def _counts(engine) -> list[int]:
    with engine.connect() as conn:
        return [conn.scalar(select(func.count()).select_from(t)) for t in TABLES]


def _errors(imp: dict) -> set[tuple]:
    return {(e["code"], e["pointer"], e.get("field")) for e in imp["validation_errors"] if e["severity"] == "error"}


def _post_import(stack, path: Path, token="admin", **form):
    with open(path, "rb") as fh:
        return stack.api("POST", "/api/import/jobs", token=token, data={"job_name": "imp", **form},
                         files={"file": (path.name, fh)})


def _wait_import(stack, import_id: str, token="admin") -> dict:
    return wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{import_id}", token=token).json())
                      ["status"] in ("completed", "failed", "cancelled") and i, 90, 0.2, "import")


# ------------------------------------------------------------------------------ storage paths


def test_a_project_document_cannot_make_the_report_route_serve_storage_files(stack, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    _, attacker = stack.create_user(f"x-att-{suffix}", "annotator")
    _, victim_video = project_with_video(stack, tmp_path, frames=41)  # another project's raw video
    victim_bytes = (_storage(stack) / stack.video_path(victim_video["id"])).read_bytes()
    project, _, path = _whole_project(stack, tmp_path, token=attacker)
    ts = stack.api("GET", f"/api/test-sessions?project_id={project['id']}", token=attacker).json()["items"][0]
    r = stack.api("POST", f"/api/test-sessions/{ts['id']}/evaluate", token=attacker, json={})
    assert r.status_code == 202, r.text
    assert stack.wait_job(r.json()["id"], timeout=300)["status"] == "completed"  # (a loaded machine is slow)
    export = stack.api("POST", "/api/export/jobs", token=attacker, json={
        "job_name": "evaluated", "export_type": "project", "format": "json",
        "scope_filter": {"project_ids": [project["id"]]}}).json()
    wait_until(lambda: stack.api("GET", f"/api/export/jobs/{export['id']}", token=attacker).json()["status"]
               == "completed", 300, 0.2, "export")
    doc = json.loads(stack.api("GET", f"/api/export/jobs/{export['id']}/download", token=attacker).content)
    results = doc["sections"]["test_sessions"][0]["metrics"]["results"]
    exported_plots = "plots" in results
    stored = stack.video_path(victim_video["id"])
    results["plots"] = {"pr_curves": stored, "confusion_matrix": f"reports/../{stored}",
                        "latency_histogram": str(_storage(stack) / stored)}
    doc["sections"]["keyframes"][0]["screenshot_path"] = stored
    doc["sections"]["videos"][0]["storage_path"] = stored
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(doc))
    imp = _import_project(stack, crafted, token=attacker)
    assert imp["status"] == "completed", imp
    (new_project,) = imp["project_ids"]
    new_ts = stack.api("GET", f"/api/test-sessions?project_id={new_project}", token=attacker).json()["items"][0]
    for name in ("pr_curves", "confusion_matrix", "latency_histogram"):
        got = stack.api("GET", f"/api/test-sessions/{new_ts['id']}/report/{name}.png", token=attacker)
        assert got.status_code == 200 and got.content[:8] == PNG and got.content != victim_bytes, name
    report = stack.api("GET", f"/api/test-sessions/{new_ts['id']}/report", token=attacker).json()
    assert all(p["data"] for p in report["plots"].values())
    # Each path was left out with a warning at its row; the evaluation's own files are found from
    # the session and job ids, so the export carries no path either.
    warnings = {(w["code"], w["pointer"], w["field"]) for w in imp["validation_errors"]}
    assert warnings == {("storage_path", "/sections/test_sessions/0", "metrics.results.plots"),
                        ("storage_path", "/sections/keyframes/0", "screenshot_path"),
                        ("storage_path", "/sections/videos/0", "storage_path")}, imp["validation_errors"]
    assert not exported_plots
    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        metrics = conn.scalar(select(TestSession.metrics).where(TestSession.id == uuid.UUID(new_ts["id"])))
        paths = set(conn.scalars(select(AnnotationKeyframe.screenshot_path)
                                 .join(VideoAnnotation, VideoAnnotation.id == AnnotationKeyframe.annotation_id)
                                 .join(AnnotationSession,
                                       AnnotationSession.id == VideoAnnotation.annotation_session_id)
                                 .where(AnnotationSession.project_id == uuid.UUID(new_project))))
    engine.dispose()
    assert "plots" not in metrics["results"] and paths == {None}


# ------------------------------------------------------------------------------ JSON columns


def test_malformed_json_columns_are_located_errors_and_every_list_still_answers(stack, tmp_path):
    project, video, path = _whole_project(stack, tmp_path)
    doc = json.loads(path.read_text())
    s = doc["sections"]
    s["projects"][0]["labels"] = 12345
    s["projects"][0]["camera_metadata"] = [1, 2, 3]
    s["requirements"].append({**s["requirements"][0], "id": {"$uuid": str(uuid.uuid4())}, "weight": -5})
    s["requirements"][0]["requirement_value"] = "garbage"
    s["assignments"][0]["metadata"] = "str"
    s["annotation_sessions"][0]["metadata"] = "str"
    s["annotations"][0]["keyframe_data"] = [1]
    s["annotations"][1]["bounding_box"] = {"x1": 1, "y1": 1, "x2": 5, "y2": 5, "z": 3}
    s["keyframes"][0]["frame_data"] = "box"
    s["test_sessions"][0]["config"] = "str"
    # numbers the database columns cannot hold, or JSON cannot say
    s["annotations"][2]["confidence"] = float("nan")
    s["keyframes"][1]["frame_data"]["visibility"] = float("inf")
    s["detections"][0]["track_id"] = 2**31
    s["detections"][2]["x1"] = float("-inf")
    bad = tmp_path / "malformed.json"
    bad.write_text(json.dumps(doc))
    engine = create_engine(stack.database_url)
    before = _counts(engine)
    imp = _import_project(stack, bad)
    assert imp["status"] == "failed" and imp["validation_status"] == "invalid", imp
    assert "nothing was imported" in imp["error_message"]
    assert _errors(imp) == {
        ("type", "/sections/projects/0", "labels"), ("type", "/sections/projects/0", "camera_metadata"),
        ("type", "/sections/requirements/0", "requirement_value"), ("type", "/sections/requirements/1", "weight"),
        ("type", "/sections/assignments/0", "metadata"), ("type", "/sections/annotation_sessions/0", "metadata"),
        ("type", "/sections/annotations/0", "keyframe_data"), ("type", "/sections/annotations/1", "bounding_box.z"),
        ("type", "/sections/keyframes/0", "frame_data"), ("type", "/sections/test_sessions/0", "config"),
        ("non_finite", "/sections/annotations/2", "confidence"), ("non_finite", "/sections/keyframes/1", "frame_data"),
        ("out_of_range", "/sections/detections/0", "track_id"), ("non_finite", "/sections/detections/2", "x1"),
    }, imp["validation_errors"]
    assert _counts(engine) == before
    # the model's weights are checked once the row's columns have the right shapes
    s = json.loads(path.read_text())["sections"]
    doc["sections"] = s
    s["test_sessions"][0]["model"] = {"name": "x", "weights": "../../etc/passwd"}
    bad.write_text(json.dumps(doc))
    imp = _import_project(stack, bad)
    assert _errors(imp) == {("type", "/sections/test_sessions/0", "model.weights")}, imp["validation_errors"]
    assert _counts(engine) == before
    engine.dispose()
    # Every list of every kind answers.
    _list_everything(stack)


def _list_everything(stack) -> None:
    for url in ("/api/projects?per_page=500", "/api/videos?per_page=500", "/api/annotations/sessions?per_page=500",
                "/api/test-sessions?per_page=500", "/api/import/jobs", "/api/export/jobs", "/api/jobs",
                "/api/audit"):
        r = stack.api("GET", url)
        assert r.status_code == 200, (url, r.text)
    for p in stack.api("GET", "/api/projects?per_page=500").json()["items"]:
        for url in (f"/api/projects/{p['id']}", f"/api/projects/{p['id']}/requirements",
                    f"/api/projects/{p['id']}/assignments", f"/api/projects/{p['id']}/members"):
            r = stack.api("GET", url)
            assert r.status_code == 200, (url, r.text)
    for session in stack.api("GET", "/api/annotations/sessions?per_page=500").json()["items"]:
        anns = stack.api("GET", f"/api/annotations/temporal?session_id={session['id']}&per_page=500")
        assert anns.status_code == 200, anns.text
        for ann in anns.json()["items"]:
            r = stack.api("GET", f"/api/annotations/{ann['id']}/keyframes")
            assert r.status_code == 200, r.text
    for ts in stack.api("GET", "/api/test-sessions?per_page=500").json()["items"]:
        r = stack.api("GET", f"/api/test-sessions/{ts['id']}/detections")
        assert r.status_code == 200, r.text


# ------------------------------------------------------------------------------ results ranges


def test_results_out_of_range_are_located_errors_and_nothing_is_written(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    ts = _test_session(stack, project, video)
    header = ",".join(formats.csvfile.RESULT_COLUMNS)
    cols = formats.csvfile.RESULT_COLUMNS

    def line(**values) -> str:
        base = {"frame_number": 1, "label": "pedestrian", "x1": 10, "y1": 10, "x2": 50, "y2": 60, "score": 0.5}
        return ",".join(str({**base, **values}.get(c, "")) for c in cols)

    lines = [header, line(), line(frame_number=2, score="1e308"), line(frame_number=3, score=-7),
             line(frame_number=4, score="5.0"), line(frame_number=5, track_id=2**31),
             line(frame_number=6, track_id=2**31 - 1), line(frame_number=7, score=1)]
    src = tmp_path / "results.csv"
    src.write_text("\r\n".join(lines) + "\r\n")
    r = _post_import(stack, src, import_type="results", source_format="csv", project_id=project["id"],
                     test_session_id=ts)
    assert r.status_code == 202, r.text
    imp = _wait_import(stack, r.json()["id"])
    assert imp["status"] == "failed" and imp["validation_status"] == "invalid", imp
    errors = {(e["code"], e["line"], e["field"]) for e in imp["validation_errors"] if e["severity"] == "error"}
    assert errors == {("out_of_range", 3, "score"), ("out_of_range", 4, "score"), ("out_of_range", 5, "score"),
                      ("out_of_range", 6, "track_id")}, imp["validation_errors"]
    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DetectionEvent)
                           .where(DetectionEvent.test_session_id == uuid.UUID(ts))) == 0
    # skipping them imports the rest, the largest track id included
    r = _post_import(stack, src, import_type="results", source_format="csv", project_id=project["id"],
                     test_session_id=ts, on_error="skip")
    imp = _wait_import(stack, r.json()["id"])
    assert imp["status"] == "completed", imp
    with engine.connect() as conn:
        rows = conn.execute(select(DetectionEvent.frame_number, DetectionEvent.track_id)
                            .where(DetectionEvent.test_session_id == uuid.UUID(ts))
                            .order_by(DetectionEvent.frame_number)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, None), (6, 2**31 - 1), (7, None)]


# ------------------------------------------------------------------------------ upload files


def test_an_import_file_is_deleted_when_the_import_ends(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    good = tmp_path / "good.csv"
    formats.write("csv", good, [formats.Annotation(f, "pedestrian", (1.0, 2.0, 30.0, 40.0), 1) for f in range(5)])
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text().replace("pedestrian", "dragon"))
    bomb = tmp_path / "bomb.zip"
    import zipfile

    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", b"\n" * (40 * 1024 * 1024))
    outcomes = {}
    for src in (good, bad, bomb):
        r = _post_import(stack, src, import_type="annotations", source_format="csv", project_id=project["id"],
                         video_id=video["id"])
        assert r.status_code == 202, r.text
        imp = _wait_import(stack, r.json()["id"])
        outcomes[src.name] = imp["status"]
        stack.wait_job(imp["job_id"])  # the job ends after its import, once the file is released
        assert not (_storage(stack) / "imports" / imp["id"]).exists(), (src.name, imp)
    assert outcomes == {"good.csv": "completed", "bad.csv": "failed", "bomb.zip": "failed"}


def test_import_uploads_are_rate_limited(tmp_path):
    try:
        with own_stack(tmp_path, RATE_LIMIT_UPLOAD="2 per minute") as st:
            _, token = st.create_user(f"up-{uuid.uuid4().hex[:6]}", "annotator")
            doc = tmp_path / "doc.json"
            doc.write_text("{}")
            codes = [_post_import(st, doc, token=token, import_type="project", source_format="json").status_code
                     for _ in range(3)]
            assert codes == [202, 202, 429]
            imports = tmp_path / "storage" / "imports"
            assert len(list(imports.iterdir())) == 2  # the refused upload left nothing
            assert not list((tmp_path / "storage" / "tmp").glob("upload-*"))
    finally:
        redis.Redis.from_url(UNIT_REDIS_URL).flushdb()


def test_an_import_cancelled_before_it_ran_leaves_no_file(stack, tmp_path):
    from sqlalchemy.orm import Session

    from tasks.dispatch import create_job

    import_id = uuid.uuid4()
    folder = _storage(stack) / "imports" / str(import_id)
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("x")
    engine = create_engine(stack.database_url)
    with Session(engine) as s:  # queued: marked as sent, so that no outbox sends it to a worker
        job = create_job(s, "import", {"import_id": str(import_id)})
        job.dispatched_at = utcnow()
        s.add(ImportJob(id=import_id, job_name="never", import_type="annotations", source_format="csv",
                        file_path=f"{import_id}/a.csv", created_by="test", job_id=job.id))
        s.commit()
        job_id = job.id
    r = stack.api("POST", f"/api/jobs/{job_id}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled", r.text
    assert not folder.exists()
    with engine.connect() as conn:
        assert conn.scalar(select(ImportJob.import_status).where(ImportJob.id == import_id)) == "cancelled"
    engine.dispose()


@pytest.mark.usefixtures("worker_env")
def test_the_sweep_deletes_import_files_after_their_retention(stack, tmp_path, monkeypatch):
    import settings
    from tasks import runtime
    from tasks.transfer import imports_dir, sweep_import_files

    monkeypatch.setenv("IMPORT_RETENTION_SECONDS", "3600")
    monkeypatch.setattr(settings, "_cached", None)
    runtime.reset()
    project, video = project_with_video(stack, tmp_path)
    engine = create_engine(stack.database_url)
    ended, running, orphan = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    with engine.begin() as conn:
        for import_id, status in ((ended, "failed"), (running, "processing")):
            conn.execute(ImportJob.__table__.insert().values(
                id=import_id, job_name="s", import_type="annotations", source_format="csv",
                file_path=f"{import_id}/a.csv", import_status=status, created_by="test", created_at=now))
    for import_id in (ended, running, orphan):
        (imports_dir() / str(import_id)).mkdir()
        (imports_dir() / str(import_id) / "a.csv").write_text("x")
    engine.dispose()
    sweep_import_files(now=now + timedelta(minutes=30))  # within the retention: all kept
    assert all((imports_dir() / str(i)).exists() for i in (ended, running, orphan))
    sweep_import_files(now=now + timedelta(hours=2))
    assert not (imports_dir() / str(ended)).exists() and not (imports_dir() / str(orphan)).exists()
    assert (imports_dir() / str(running)).exists()  # still running: its file is needed
    shutil.rmtree(imports_dir() / str(running))


# ------------------------------------------------------------------------------ cancel inside the transaction


class _CancelWhileWriting:
    """A job context for an import run here: when the import first checks for a cancel inside its
    transaction, a user cancels the job over HTTP (the web's write waits on SQLite for the
    transaction); the context returns once the cancel was announced, and never raises itself."""

    def __init__(self, stack, params: dict, job_id: uuid.UUID) -> None:
        self.stack, self.params, self.job_id = stack, params, job_id
        self.importing = False
        self.response = None
        self.thread: threading.Thread | None = None

    def progress(self, _percent=None, stage=None, *_args, **_kwargs) -> None:
        if stage == "importing":
            self.importing = True

    def check_cancel(self) -> None:
        if not self.importing or self.thread is not None:
            return
        self.thread = threading.Thread(target=self._cancel, daemon=True)
        self.thread.start()
        client = redis.Redis.from_url(self.stack.redis_url)
        wait_until(lambda: client.exists(f"job-cancel:{self.job_id}"), 30, 0.05, "the cancel to be announced")

    def _cancel(self) -> None:
        self.response = self.stack.api("POST", f"/api/jobs/{self.job_id}/cancel", timeout=120)


@pytest.mark.usefixtures("worker_env")
def test_a_cancel_while_the_import_writes_leaves_nothing(stack, tmp_path):
    from tasks.lifecycle import JobCancelled
    from tasks.transfer import import_body, imports_dir

    project, video = project_with_video(stack, tmp_path, frames=200)
    session, _ = _annotate(stack, project, video)
    rows = [formats.Annotation(f, "pedestrian", (1.0 + t, 2.0, 30.0 + t, 40.0), t) for f in range(200)
            for t in range(30)]
    src = tmp_path / "big.csv"
    formats.write("csv", src, rows)
    r = _post_import(stack, src, import_type="annotations", source_format="csv", project_id=project["id"],
                     video_id=video["id"], session_id=session["id"])
    done = _wait_import(stack, r.json()["id"])
    assert done["status"] == "completed", done
    stack.wait_job(done["job_id"])  # its worker is done with the job row
    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        params = conn.scalar(select(Job.params).where(Job.id == uuid.UUID(done["job_id"])))

    def annotations() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(VideoAnnotation)
                               .where(VideoAnnotation.annotation_session_id == uuid.UUID(session["id"])))

    before = annotations()
    # The same file again, as a running job of its own.
    second, job_id = uuid.uuid4(), uuid.UUID(done["job_id"])
    (imports_dir() / str(second)).mkdir()
    shutil.copy(src, imports_dir() / str(second) / "big.csv")
    with engine.begin() as conn:
        conn.execute(ImportJob.__table__.insert().values(
            id=second, job_name="again", import_type="annotations", source_format="csv",
            file_path=f"{second}/big.csv", created_by="test", job_id=job_id))
        conn.execute(update(Job).where(Job.id == job_id).values(status="processing", finished_at=None))
    ctx = _CancelWhileWriting(stack, {**params, "import_id": str(second), "sha256": None}, job_id)
    with pytest.raises(JobCancelled):
        import_body(ctx)
    ctx.thread.join(120)
    assert ctx.response is not None and ctx.response.status_code == 202, ctx.response
    assert annotations() == before
    with engine.connect() as conn:
        # the body writes no job state (the lifecycle records the cancel: test_job_state)
        assert conn.scalar(select(ImportJob.import_status).where(ImportJob.id == second)) == "pending"
        assert conn.scalar(select(Job.cancel_requested).where(Job.id == job_id)) is True
        conn.execute(update(Job).where(Job.id == job_id).values(status="cancelled"))
        conn.commit()
    assert not (imports_dir() / str(second)).exists()
    engine.dispose()
