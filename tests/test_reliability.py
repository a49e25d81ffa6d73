"""No job lost between database and broker, redelivery after a dead worker, the cap."""
from __future__ import annotations

import os
import signal
import uuid

import pytest
from harness import RedisServer, own_stack, wait_until
from sqlalchemy import create_engine, select

from models import Job

# Redelivery and the reaper rely on each database's transactions; workers are killed.
pytestmark = [pytest.mark.both_backends, pytest.mark.slow]


def _worker_pid(stack, job_id: str) -> int:
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(Job.worker_pid).where(Job.id == uuid.UUID(job_id)))
    finally:
        engine.dispose()


def test_worker_killed_mid_job_is_redelivered_and_completes_once(stack):
    client = stack.socket()
    try:
        job = stack.probe("gpu", steps=20, step_seconds=0.15).json()
        client.call("subscribe_job", {"job_id": job["id"]})
        wait_until(lambda: stack.job(job["id"])["progress_percent"] >= 25, 30, what="progress")
        pid = _worker_pid(stack, job["id"])
        os.kill(pid, signal.SIGKILL)  # the pool process running the job, not the worker's parent
        done = stack.wait_job(job["id"], timeout=90)
        events = client.of("job_progress", job_id=job["id"])
    finally:
        client.close()
    assert done["status"] == "completed", done
    assert done["attempts"] == 2
    assert done["result"]["attempt"] == 2 and done["result"]["resumed_from_step"] >= 4  # resumed, not restarted
    assert _worker_pid(stack, job["id"]) != pid
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e["status"] for e in events].count("completed") == 1


def test_job_that_kills_its_worker_every_time_fails_after_the_cap(stack):
    job = stack.probe("gpu", steps=5, step_seconds=0.05, crash_at_step=1).json()
    done = stack.wait_job(job["id"], timeout=120)
    assert done["status"] == "failed"
    assert done["attempts"] == 3
    assert "worker lost 3 times" in done["error"] and "giving up after 3 attempts" in done["error"]
    # The queue keeps flowing.
    after = stack.probe("gpu", steps=1, step_seconds=0).json()
    assert stack.wait_job(after["id"])["status"] == "completed"


def test_redis_down_at_submit_then_dispatched_when_it_returns(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        with own_stack(tmp_path, redis.url, workers=(("cpu", "cpu1"),)) as st:
            token = st.token()
            warm = st.probe("cpu", steps=1, step_seconds=0).json()
            assert st.wait_job(warm["id"])["status"] == "completed"

            redis.stop()
            r = st.probe("cpu", steps=2, step_seconds=0.05, token=token)
            assert r.status_code == 202, r.text
            job = r.json()
            assert job["status"] == "pending"
            assert st.job(job["id"])["status"] == "pending"

            redis.start()  # same port: web, workers and the outbox reconnect by themselves
            done = st.wait_job(job["id"], timeout=120)
            assert done["status"] == "completed" and done["attempts"] == 1
            # Dispatched once from the outbox: the job ran once and no second delivery re-ran it.
            assert st.log("cpu1").count(f"jobs.probe[{job['id']}] received") == 1
    finally:
        redis.stop()


def test_reaper_requeues_the_job_of_a_worker_that_vanished(stack):
    """The whole worker dies (parent and pool): no requeue from Celery, the reaper brings it back."""
    stack.start_beat()
    try:
        job = stack.probe("gpu", steps=30, step_seconds=0.2).json()
        wait_until(lambda: stack.job(job["id"])["progress_percent"] >= 10, 30, what="progress")
        stack.kill_worker_hard("gpu0")
        stack.start_worker("gpu", "gpu0")  # a replacement host with the same name
        done = stack.wait_job(job["id"], timeout=120)
        assert done["status"] == "completed" and done["attempts"] == 2
        assert done["result"]["resumed_from_step"] >= 3
        assert "reaper: 1 job(s) re-queued" in stack.log("cpu1")
    finally:
        stack.stop("beat")


def test_a_job_whose_message_was_lost_is_sent_again_by_the_reaper(stack):
    """A worker that dies between taking a message and recording it loses the message: the job
    stays pending with no message anywhere. The reaper notices and sends it again."""
    from datetime import timedelta

    import redis as _redis
    from sqlalchemy import update

    from models import utcnow

    stack.stop("gpu0")  # nothing consumes the gpu queue: the message waits there
    client = _redis.Redis.from_url(stack.redis_url)
    engine = create_engine(stack.database_url)
    try:
        job = stack.probe("gpu", steps=1, step_seconds=0).json()
        waiting = wait_until(lambda: [m for m in client.lrange("gpu", 0, -1) if job["id"].encode() in m],
                             30, what="the message in the queue")
        assert client.lrem("gpu", 0, waiting[0]) == 1  # ... and now it is lost
        with engine.begin() as conn:
            conn.execute(update(Job).where(Job.id == uuid.UUID(job["id"]))
                         .values(dispatched_at=utcnow() - timedelta(minutes=5)))
        stack.start_beat()
        wait_until(lambda: any(job["id"].encode() in m for m in client.lrange("gpu", 0, -1)), 60,
                   what="the reaper to send the job again")
        stack.start_worker("gpu", "gpu0")
        done = stack.wait_job(job["id"], timeout=120)
        assert done["status"] == "completed" and done["attempts"] == 1
        assert "message was lost sent again" in stack.log("cpu1")
    finally:
        stack.stop("beat")
        if "gpu0" not in stack.procs:
            stack.start_worker("gpu", "gpu0")
        engine.dispose()
        client.close()
