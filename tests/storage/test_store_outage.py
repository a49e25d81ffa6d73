"""The object store stopped under a running pool: a detection job waits for it, then completes.

A real stack (web, a GPU-queue and a CPU-queue worker) on a real S3 server (``rclone serve s3``).
The store is stopped before the worker can fetch the video; the job must not fail: it is retried
with backoff until the store is back on the same port and folder, and then completes with its
detections stored exactly once.
"""
from __future__ import annotations

import uuid

import pytest
from harness import own_stack, wait_until
from objectstore import ObjectStoreServer
from sqlalchemy import create_engine, func, select

from models import DetectionEvent, Job

pytestmark = pytest.mark.slow
BUCKET = "outage"


def job_row(stack, job_id: str) -> Job:
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(Job).where(Job.id == uuid.UUID(job_id))).one()
    finally:
        engine.dispose()


def stored_events(stack, test_session_id: str) -> tuple[int, int]:
    """(rows, distinct (frame, index) pairs) stored for a test session."""
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            where = DetectionEvent.test_session_id == uuid.UUID(test_session_id)
            rows = conn.scalar(select(func.count()).select_from(DetectionEvent).where(where))
            pairs = conn.scalar(select(func.count()).select_from(
                select(DetectionEvent.frame_number, DetectionEvent.detection_index).where(where).distinct().subquery()))
            return rows, pairs
    finally:
        engine.dispose()


def submit(stack, project_id: str, video_id: str) -> dict:
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project_id, "video_id": video_id, "model": "opencv/hog-people",
        "batch_size": 4, "frame_stride": 2, "frame_to": 19})
    assert r.status_code == 202, r.text
    return r.json()


def test_a_detection_job_waits_for_a_stopped_store_and_completes_once(tmp_path, pg_database, unit_redis_url,
                                                                     shared_data):
    server = ObjectStoreServer(tmp_path / "objects").start()
    url = pg_database()
    try:
        with own_stack(tmp_path, unit_redis_url, database_url=url,
                       workers=(("gpu", "gpu-1"), ("cpu", "cpu-1")), **server.env(BUCKET)) as stack:
            project = stack.api("POST", "/api/projects", json={"name": f"outage-{uuid.uuid4().hex[:6]}"}).json()
            video_file = shared_data / "video" / "vtest.avi"
            with open(video_file, "rb") as fh:
                r = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                              files={"file": (video_file.name, fh)})
            assert r.status_code == 201, r.text
            video = r.json()
            # Nothing on this host has the bytes yet: the worker must fetch them from the store.
            assert not (tmp_path / "storage" / "cache").exists()

            server.stop()
            try:
                ts = submit(stack, project["id"], video["id"])

                def waiting() -> bool:
                    row = job_row(stack, ts["job_id"])
                    return row.attempts >= 1 and row.status == "pending" and row.stage == "waiting for storage"
                wait_until(waiting, 120, 0.3, "the job to wait for the store")
                row = job_row(stack, ts["job_id"])
                assert row.claim_token is None and "object store unreachable" in (row.error or "")
                assert stack.api("GET", f"/api/test-sessions/{ts['id']}").json()["status"] == "pending"
                assert "storage unavailable while running job " + ts["job_id"] in stack.log("gpu-1")
                assert stored_events(stack, ts["id"]) == (0, 0)
            finally:
                server.start()  # the same port and folder: the same store, back

            job = stack.wait_job(ts["job_id"], timeout=240)
            assert job["status"] == "completed", (job, stack.log("gpu-1")[-3000:])
            row = job_row(stack, ts["job_id"])
            outage_attempts = row.attempts
            assert outage_attempts >= 2 and row.error is None
            summary = job["result"]
            assert summary["frames_processed"] == 10 and summary["per_class"].get("pedestrian", 0) >= 5
            rows, pairs = stored_events(stack, ts["id"])
            assert rows == pairs == summary["events_stored"] > 0
            assert stack.api("GET", f"/api/test-sessions/{ts['id']}").json()["status"] == "completed"

            # The same job with the store up all along stores exactly as many detections: nothing
            # was lost or doubled by the outage, and it ran in one attempt.
            again = submit(stack, project["id"], video["id"])
            ref = stack.wait_job(again["job_id"], timeout=240)
            assert ref["status"] == "completed", ref
            assert job_row(stack, again["job_id"]).attempts == 1
            assert stored_events(stack, again["id"]) == (rows, rows)
            assert ref["result"]["events_stored"] == rows
            assert stored_events(stack, ts["id"]) == (rows, rows)
    finally:
        server.stop()
