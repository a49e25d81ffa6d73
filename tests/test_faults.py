"""Faults with real processes: the database goes away, a worker is told to stop, the web dies."""
from __future__ import annotations

import signal
import time

import pytest
from harness import UNIT_REDIS_URL, PostgresServer, RedisServer, Stack, own_stack, wait_until

from models import migrate

# Servers are stopped and restarted under running jobs.
pytestmark = pytest.mark.slow


def test_database_down_gives_503_then_recovers_and_workers_retry(tmp_path):
    pg = PostgresServer()
    pg.init()
    pg.start()
    migrate(pg.url)
    st = Stack(tmp_path, pg.url, UNIT_REDIS_URL, SOCKETIO_CHANNEL=f"pg-{time.time_ns()}")
    try:
        st.start_web()
        token = st.token()
        assert st.api("GET", "/api/projects", token=token).status_code == 200
        # A job waits in the queue while no worker runs; then the database goes away.
        job = st.probe("cpu", steps=2, step_seconds=0.05, token=token).json()
        pg.stop()
        r = st.api("GET", "/api/projects", token=token, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable", r.text
        assert st.api("GET", "/api/health", token=None).status_code == 503
        # A worker that starts now cannot claim the job: it retries with backoff instead of dropping it.
        st.start_worker("cpu", "cpu1", wait=False)
        wait_until(lambda: "database unavailable while claiming job" in st.log("cpu1"), 60, 0.5,
                   "the worker to retry its claim")
        pg.start()  # nobody restarts: web and worker recover by themselves
        wait_until(lambda: st.api("GET", "/api/projects", token=token).status_code == 200, 60, 0.5, "the API")
        done = st.wait_job(job["id"], timeout=120)
        assert done["status"] == "completed" and done["attempts"] == 1
    finally:
        st.close()
        pg.destroy()


def test_warm_shutdown_finishes_the_running_job(tmp_path):
    with own_stack(tmp_path, workers=(("gpu", "gpu0"),)) as st:
        job = st.probe("gpu", steps=10, step_seconds=0.2).json()
        wait_until(lambda: st.job(job["id"])["status"] == "processing", 30, what="job start")
        proc = st.procs["gpu0"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        done = st.job(job["id"])
        assert done["status"] == "completed" and done["attempts"] == 1 and done["progress_percent"] == 100


def test_web_killed_after_accepting_loses_no_job(tmp_path):
    """Accepted while Redis was down, then the web process dies: beat's outbox sweep sends it."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        with own_stack(tmp_path, redis.url, workers=(("cpu", "cpu1"),), beat=True) as st:
            token = st.token()
            redis.stop()
            job = st.probe("cpu", steps=1, step_seconds=0, token=token).json()
            assert job["status"] == "pending"
            st.stop("web", signal.SIGKILL)
            redis.start()
            done = st.wait_job_db(job["id"], timeout=120)
            assert done == "completed"
    finally:
        redis.stop()


def test_redis_restart_during_a_run(tmp_path):
    """Running jobs finish, web and workers reconnect by themselves, clients re-sync from a snapshot."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        with own_stack(tmp_path, redis.url, workers=(("cpu", "cpu1"),)) as st:
            client = st.socket()
            try:
                job = st.probe("cpu", steps=30, step_seconds=0.2).json()
                client.call("subscribe_job", {"job_id": job["id"]})
                client.wait_for("job_progress", lambda d: d["job_id"] == job["id"] and d["progress_percent"] >= 10)
                redis.stop()
                time.sleep(2)
                redis.start()
                done = st.wait_job(job["id"], timeout=120)
                assert done["status"] == "completed" and done["attempts"] == 1
                # Events sent while Redis was down are gone; the snapshot on (re)subscribing has the truth.
                ack = client.call("subscribe_job", {"job_id": job["id"]})
                assert ack["job"]["status"] == "completed" and ack["job"]["progress_percent"] == 100
                # And the pipeline works again end to end, live events included.
                after = st.probe("cpu", steps=3, step_seconds=0.1).json()
                client.call("subscribe_job", {"job_id": after["id"]})
                assert client.wait_for(
                    "job_progress", lambda d: d["job_id"] == after["id"] and d["status"] == "completed", timeout=60)
            finally:
                client.close()
    finally:
        redis.stop()
