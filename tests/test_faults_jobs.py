"""Faults in the middle of real detection and export jobs: a worker killed with SIGKILL, a cancel
in each stage. Results exist once or not at all; job, test session and export records agree.

The workers run the platform's tasks through ``faultpoints`` (the real app with one fault point):
a test names a stage, the job stays at that stage's progress point until it is cancelled, so
the cancel lands in that stage however short it is. Kills are timed from the database (progress
made, events stored), never by sleeping.
"""
from __future__ import annotations

import os
import signal
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import PYTHON, RedisServer, Stack, make_clip, wait_until
from sqlalchemy import create_engine, func, insert, select

from models import AnnotationSession, DetectionEvent, ExportJob, Job, TestSession, VideoAnnotation, migrate

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TERMINAL = ("completed", "failed", "cancelled")


# ----------------------------------------------------------------------------- the stack


def start_fault_worker(stack: Stack, queue: str, name: str) -> None:
    """Like ``Stack.start_worker``, with the app that has the fault point."""
    cmd = [PYTHON, "-m", "celery", "-A", "faultpoints", "worker", "-Q", queue, "-P", "prefork", "-c", "1",
           "--prefetch-multiplier", "1", "-E", "-n", f"{name}@%h", "--loglevel", "INFO",
           "--without-mingle", "--without-gossip"]
    stack._starts[name] = stack._starts.get(name, 0) + 1
    stack._spawn(name, cmd, CUDA_VISIBLE_DEVICES="")
    wait_until(lambda: stack._ready(name), 60, 0.2, f"worker {name}")


@pytest.fixture(scope="module")
def fstack(tmp_path_factory, pg_database):
    """Web, one GPU-queue and one CPU worker on PostgreSQL and a private Redis."""
    tmp = tmp_path_factory.mktemp("faults-jobs")
    redis = RedisServer(tmp / "redis")
    redis.start()
    url = pg_database()
    migrate(url)
    st = Stack(tmp, url, redis.url, PYTHONPATH=f"{ROOT}{os.pathsep}{TESTS}",
               FAULT_HOLD_FILE=str(tmp / "hold-stage"))
    st.engine = create_engine(url)
    try:
        st.start_web()
        start_fault_worker(st, "gpu", "gpu0")
        start_fault_worker(st, "cpu", "cpu1")
        yield st
    finally:
        st.close()
        st.engine.dispose()
        redis.stop()


@contextmanager
def hold_at(stack: Stack, prefix: str):
    path = Path(stack.env["FAULT_HOLD_FILE"])
    path.write_text(prefix)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def job_row(stack: Stack, job_id: str):
    with stack.engine.connect() as conn:
        return conn.execute(select(Job).where(Job.id == uuid.UUID(job_id))).one()


def wait_stage(stack: Stack, job_id: str, prefix: str, timeout: float = 120):
    def seen():
        row = job_row(stack, job_id)
        assert row.status not in TERMINAL, f"job ended ({row.status}, {row.error}) before stage {prefix!r}"
        return row.status == "processing" and (row.stage or "").startswith(prefix) and row
    return wait_until(seen, timeout, 0.05, f"stage {prefix!r}")


def cancel(stack: Stack, job_id: str) -> None:
    r = stack.api("POST", f"/api/jobs/{job_id}/cancel")
    assert r.status_code == 202, r.text


# ----------------------------------------------------------------------------- detection


@pytest.fixture(scope="module")
def street(fstack, shared_data):
    project = fstack.api("POST", "/api/projects", json={"name": f"street-{uuid.uuid4().hex[:6]}"}).json()
    path = shared_data / "video" / "vtest.avi"
    with open(path, "rb") as fh:
        r = fstack.api("POST", "/api/videos", data={"project_id": project["id"]}, files={"file": (path.name, fh)})
    assert r.status_code == 201, r.text
    return project, r.json()


def submit_detection(stack: Stack, street, frame_to: int) -> dict:
    project, video = street
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "model": "opencv/hog-people",
        "batch_size": 4, "frame_to": frame_to, "enable_tracking": True})
    assert r.status_code == 202, r.text
    return r.json()


def stored_events(stack: Stack, test_session_id: str) -> list[tuple]:
    with stack.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(DetectionEvent.frame_number, DetectionEvent.detection_index, DetectionEvent.class_label,
                   DetectionEvent.confidence, DetectionEvent.x1, DetectionEvent.y1, DetectionEvent.x2,
                   DetectionEvent.y2, DetectionEvent.track_id)
            .where(DetectionEvent.test_session_id == uuid.UUID(test_session_id))
            .order_by(DetectionEvent.frame_number, DetectionEvent.detection_index))]


def event_count(stack: Stack, test_session_id: str) -> int:
    with stack.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(DetectionEvent)
                           .where(DetectionEvent.test_session_id == uuid.UUID(test_session_id)))


def session_status(stack: Stack, test_session_id: str) -> str:
    with stack.engine.connect() as conn:
        return conn.scalar(select(TestSession.status).where(TestSession.id == uuid.UUID(test_session_id)))


def assert_progress_resumed(events: list[dict]) -> None:
    """One stream of progress across both attempts: ``seq`` always rising, one terminal event."""
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert [e["status"] for e in events].count("completed") == 1
    assert events[-1]["status"] == "completed"
    assert any(e["stage"] == "resuming" for e in events), [e["stage"] for e in events]


def test_detection_worker_killed_mid_run_is_redelivered_and_stores_each_event_once(fstack, street):
    frame_to = 47
    clean = submit_detection(fstack, street, frame_to)
    assert fstack.wait_job(clean["job_id"], timeout=300)["status"] == "completed"
    expected = stored_events(fstack, clean["id"])
    assert expected

    client = fstack.socket()
    try:
        ts = submit_detection(fstack, street, frame_to)
        client.call("subscribe_job", {"job_id": ts["job_id"]})
        # Killed once some of its events are in the database: the next attempt must not add to them.
        wait_until(lambda: event_count(fstack, ts["id"]) > 0, 180, 0.05, "first stored events")
        first = job_row(fstack, ts["job_id"])
        assert first.status == "processing" and first.attempts == 1
        os.kill(first.worker_pid, signal.SIGKILL)
        done = fstack.wait_job(ts["job_id"], timeout=300)
        progress = client.of("job_progress", job_id=ts["job_id"])
    finally:
        client.close()
    assert done["status"] == "completed", done
    assert done["attempts"] == 2 and job_row(fstack, ts["job_id"]).worker_pid != first.worker_pid
    got = stored_events(fstack, ts["id"])
    assert len(got) == len(expected) and len(set(got)) == len(got)
    assert got == expected  # the same detections as a run nobody interrupted
    assert done["result"]["events_stored"] == len(got) and done["result"]["frames_processed"] == frame_to + 1
    assert session_status(fstack, ts["id"]) == "completed"
    assert_progress_resumed(progress)


def assert_detection_cancelled(stack: Stack, ts: dict) -> None:
    job = stack.wait_job(ts["job_id"], timeout=180)
    assert job["status"] == "cancelled", job
    assert event_count(stack, ts["id"]) == 0
    assert session_status(stack, ts["id"]) == "cancelled"
    got = stack.api("GET", f"/api/test-sessions/{ts['id']}").json()
    assert got["status"] == "cancelled" and got["summary"] is None
    r = stack.api("GET", f"/api/test-sessions/{ts['id']}/detections")
    assert r.status_code == 200 and r.json()["total"] == 0


@pytest.mark.parametrize("stage", ["loading model", "storing", "stored"])
def test_detection_cancelled_while_held_in_a_stage_leaves_no_events(fstack, street, stage):
    with hold_at(fstack, stage):
        ts = submit_detection(fstack, street, 5)
        wait_stage(fstack, ts["job_id"], stage)
        cancel(fstack, ts["job_id"])
        assert_detection_cancelled(fstack, ts)


def test_detection_cancelled_while_detecting_removes_the_events_already_stored(fstack, street):
    ts = submit_detection(fstack, street, 199)
    wait_until(lambda: event_count(fstack, ts["id"]) > 0, 180, 0.05, "first stored events")
    assert job_row(fstack, ts["job_id"]).stage.startswith("detecting")
    cancel(fstack, ts["job_id"])
    assert_detection_cancelled(fstack, ts)


# ----------------------------------------------------------------------------- export

ANNOTATIONS = 300
FRAMES = 200


@pytest.fixture(scope="module")
def big_session(fstack, tmp_path_factory):
    """An annotation session whose CSV export is ANNOTATIONS x FRAMES rows (a few seconds to write)."""
    tmp = tmp_path_factory.mktemp("big-session")
    project = fstack.api("POST", "/api/projects", json={"name": f"big-{uuid.uuid4().hex[:6]}"}).json()
    clip = make_clip(tmp / "clip.avi", FRAMES, 10.0)
    with open(clip, "rb") as fh:
        r = fstack.api("POST", "/api/videos", data={"project_id": project["id"]}, files={"file": (clip.name, fh)})
    assert r.status_code == 201, r.text
    video = r.json()
    session = fstack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "big",
        "annotation_type": "temporal"}).json()
    rows = [{"annotation_session_id": uuid.UUID(session["id"]), "video_id": uuid.UUID(video["id"]),
             "start_timestamp": 0.0, "end_timestamp": (FRAMES - 1) / 10.0, "annotation_type": "temporal",
             "class_label": "pedestrian" if i % 3 else "cyclist",
             "bounding_box": {"x1": 1.0 + i % 50, "y1": 2.0 + i % 40, "x2": 60.0 + i % 50, "y2": 90.0 + i % 40}}
            for i in range(ANNOTATIONS)]
    with fstack.engine.begin() as conn:
        conn.execute(insert(VideoAnnotation), rows)
        assert conn.scalar(select(func.count()).select_from(AnnotationSession)
                           .where(AnnotationSession.id == uuid.UUID(session["id"]))) == 1
    return session


def submit_export(stack: Stack, session: dict) -> dict:
    r = stack.api("POST", "/api/export/jobs", json={
        "job_name": "big", "export_type": "annotations", "format": "csv",
        "scope_filter": {"annotation_session_ids": [session["id"]]}})
    assert r.status_code == 202, r.text
    return r.json()


def export_files(stack: Stack, export_id: str) -> list[str]:
    """Everything under the export directory that belongs to this export: final, partial, temporary."""
    root = stack.workdir / "storage" / "exports"
    return sorted(p.name for p in root.iterdir() if export_id in p.name) if root.exists() else []


def export_row(stack: Stack, export_id: str):
    with stack.engine.connect() as conn:
        return conn.execute(select(ExportJob).where(ExportJob.id == uuid.UUID(export_id))).one()


def test_export_worker_killed_mid_write_is_redelivered_and_leaves_one_file(fstack, big_session):
    import hashlib

    clean = submit_export(fstack, big_session)
    assert fstack.wait_job(clean["job_id"], timeout=300)["status"] == "completed"
    clean_row = export_row(fstack, clean["id"])

    client = fstack.socket()
    try:
        exp = submit_export(fstack, big_session)
        client.call("subscribe_job", {"job_id": exp["job_id"]})
        first = wait_until(lambda: (r := job_row(fstack, exp["job_id"])).progress_percent > 0
                           and r.stage.startswith("writing") and r, 120, 0.05, "export writing")
        assert any(".part" in name for name in export_files(fstack, exp["id"]))  # killed with a file half-written
        os.kill(first.worker_pid, signal.SIGKILL)
        done = fstack.wait_job(exp["job_id"], timeout=300)
        progress = client.of("job_progress", job_id=exp["job_id"])
    finally:
        client.close()
    assert done["status"] == "completed", done
    assert done["attempts"] == 2
    row = export_row(fstack, exp["id"])
    assert export_files(fstack, exp["id"]) == [Path(row.file_path).name]  # one file, no partial one left over
    path = fstack.workdir / "storage" / row.file_path
    data = path.read_bytes()
    assert row.status == "completed" and row.file_size == len(data)
    assert row.sha256 == hashlib.sha256(data).hexdigest() == clean_row.sha256  # the same file as a clean run
    assert done["result"]["records"] == ANNOTATIONS * FRAMES
    got = fstack.api("GET", f"/api/export/jobs/{exp['id']}").json()
    assert got["status"] == "completed" and got["sha256"] == row.sha256
    assert fstack.api("GET", f"/api/export/jobs/{exp['id']}/download").content == data
    assert_progress_resumed(progress)


@pytest.mark.parametrize("stage", ["reading rows", "writing", "finalizing"])
def test_export_cancelled_while_held_in_a_stage_leaves_no_file(fstack, big_session, stage):
    with hold_at(fstack, stage):
        exp = submit_export(fstack, big_session)
        wait_stage(fstack, exp["job_id"], stage)
        cancel(fstack, exp["job_id"])
        job = fstack.wait_job(exp["job_id"], timeout=180)
    assert job["status"] == "cancelled", job
    assert export_files(fstack, exp["id"]) == []
    row = export_row(fstack, exp["id"])
    assert row.status == "cancelled" and row.file_path is None and row.sha256 is None
    got = fstack.api("GET", f"/api/export/jobs/{exp['id']}").json()
    assert got["status"] == "cancelled" and got["download_url"] is None
    assert fstack.api("GET", f"/api/export/jobs/{exp['id']}/download").status_code == 409
