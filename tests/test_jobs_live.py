"""Jobs end to end on both databases: HTTP submit, live Socket.IO progress, pools, cancel."""
from __future__ import annotations

import time

import pytest
from harness import wait_until

# Job listing filters and orders by time, stored differently on SQLite.
pytestmark = pytest.mark.both_backends


def _ordered(events: list[dict]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    percents = [e["progress_percent"] for e in events]
    assert percents == sorted(percents), percents


@pytest.mark.parametrize("queue", ["gpu", "cpu"])
def test_submit_streams_ordered_progress_until_completed(stack, queue):
    client = stack.socket()
    try:
        status = client.wait_for("connection_status")
        assert status["status"] == "connected" and status["user"]["username"] == "admin"
        r = stack.probe(queue, steps=8, step_seconds=0.15)
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["Location"].endswith(f"/api/jobs/{job['id']}")
        assert job["status"] == "pending" and job["queue"] == queue and job["kind"] == "probe"
        ack = client.call("subscribe_job", {"job_id": job["id"]})
        assert ack["ok"] and ack["job"]["job_id"] == job["id"]
        final = client.wait_for("job_progress", lambda d: d["job_id"] == job["id"] and d["status"] == "completed")
        assert final["progress_percent"] == 100
        events = client.of("job_progress", job_id=job["id"])
        _ordered(events)
        # Several distinct progress points arrived live, not only the terminal state.
        assert len({e["progress_percent"] for e in events}) >= 3, events
        assert all(e["seq"] > ack["job"]["seq"] for e in events if e["status"] == "completed")
    finally:
        client.close()
    stored = stack.job(job["id"])
    assert stored["status"] == "completed" and stored["attempts"] == 1
    assert stored["result"]["steps"] == 8
    assert stored["started_at"] and stored["finished_at"] and stored["started_at"] <= stored["finished_at"]
    # Each kind runs on its own queue's pool: the worker is recorded on the job.
    assert stored["worker"].startswith("gpu0@" if queue == "gpu" else "cpu1@"), stored["worker"]


def test_project_room_gets_progress_of_its_jobs(stack):
    project = stack.api("POST", "/api/projects", json={"name": "room test"}).json()
    client = stack.socket()
    try:
        ack = client.call("join_project", {"project_id": project["id"]})
        assert ack["ok"] and ack["jobs"] == []
        job = stack.probe("cpu", steps=3, step_seconds=0.05, project_id=project["id"]).json()
        update = client.wait_for(
            "project_progress_update",
            lambda d: d["progress"]["job_id"] == job["id"] and d["progress"]["status"] == "completed")
        assert update["project_id"] == project["id"]
    finally:
        client.close()


def test_cancel_pending_and_running_jobs(stack):
    # A long job occupies the single GPU-queue process, so the second one waits in the queue.
    running = stack.probe("gpu", steps=200, step_seconds=0.05).json()
    waiting = stack.probe("gpu", steps=2, step_seconds=0.05).json()
    wait_until(lambda: stack.job(running["id"])["status"] == "processing", 30, what="running job")
    client = stack.socket()
    try:
        client.call("subscribe_job", {"job_id": waiting["id"]})
        r = stack.api("POST", f"/api/jobs/{waiting['id']}/cancel")
        assert r.status_code == 202 and r.json()["status"] == "cancelled"
        client.wait_for("job_progress", lambda d: d["job_id"] == waiting["id"] and d["status"] == "cancelled")
        r = stack.api("POST", f"/api/jobs/{running['id']}/cancel")
        assert r.status_code == 202 and r.json()["cancel_requested"] is True
        done = stack.wait_job(running["id"], timeout=30)
        assert done["status"] == "cancelled" and done["progress_percent"] < 100
        assert done["result"] is None
    finally:
        client.close()
    # The cancelled pending job never ran, even after its message reached the worker.
    time.sleep(1.0)
    never = stack.job(waiting["id"])
    assert never["status"] == "cancelled" and never["attempts"] == 0 and never["worker"] is None
    assert stack.api("POST", f"/api/jobs/{waiting['id']}/cancel").status_code == 409


def test_job_listing_filters_and_paginates(stack):
    ids = [stack.probe("cpu", steps=0, step_seconds=0).json()["id"] for _ in range(3)]
    for job_id in ids:
        stack.wait_job(job_id)
    page = stack.api("GET", "/api/jobs", params={"kind": "probe", "status": "completed", "per_page": 2}).json()
    assert set(page) == {"items", "total", "page", "per_page"}
    assert page["per_page"] == 2 and len(page["items"]) == 2 and page["total"] >= 3
    assert all(j["status"] == "completed" for j in page["items"])
    r = stack.api("GET", "/api/jobs", params={"status": "bogus"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_second_cpu_worker_takes_cpu_work_only(stack):
    stack.start_worker("cpu", "cpu2")
    try:
        cpu_jobs = [stack.probe("cpu", steps=3, step_seconds=0.2).json()["id"] for _ in range(6)]
        gpu_jobs = [stack.probe("gpu", steps=1, step_seconds=0.05).json()["id"] for _ in range(3)]
        cpu_workers = {stack.wait_job(j)["worker"].split("@")[0] for j in cpu_jobs}
        gpu_workers = {stack.wait_job(j)["worker"].split("@")[0] for j in gpu_jobs}
    finally:
        stack.stop("cpu2")
    assert "cpu2" in cpu_workers, cpu_workers
    assert cpu_workers <= {"cpu1", "cpu2"}
    assert gpu_workers == {"gpu0"}
