"""Periodic housekeeping run by beat on the CPU pool."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from models import Job, utcnow
from settings import load_settings

from . import runtime
from .app import app
from .dispatch import dispatch_pending, send
from .lifecycle import _emit_terminal_from_row

log = logging.getLogger(__name__)


@app.task(name="maintenance.dispatch_outbox")
def dispatch_outbox() -> int:
    """Second path for the outbox: dispatches even while no web process runs."""
    return dispatch_pending(runtime.database())


@app.task(name="maintenance.reap_stale_jobs")
def reap_stale_jobs() -> dict[str, int]:
    """Jobs whose worker vanished (no heartbeat) are re-queued, or failed after the cap."""
    settings = load_settings()
    db = runtime.database()
    cutoff = utcnow() - timedelta(seconds=settings.stale_after_seconds)
    requeued = failed = 0
    with db.session() as s:
        stale = s.execute(
            select(Job.id, Job.kind, Job.queue, Job.attempts, Job.max_attempts, Job.worker)
            .where(Job.status == "processing", Job.heartbeat_at < cutoff)
        ).all()
    for job_id, kind, queue, attempts, max_attempts, worker in stale:
        with db.session() as s:
            if attempts >= max_attempts:
                changed = s.execute(
                    update(Job).where(Job.id == job_id, Job.status == "processing", Job.attempts == attempts)
                    .values(status="failed", stage="failed", claim_token=None, finished_at=utcnow(),
                            error=f"worker {worker} vanished (no heartbeat for {settings.stale_after_seconds:.0f} s); "
                                  f"giving up after {attempts} attempts")
                ).rowcount
                failed += changed
            else:
                changed = s.execute(
                    update(Job).where(Job.id == job_id, Job.status == "processing", Job.attempts == attempts)
                    .values(status="pending", stage="requeued: worker vanished", claim_token=None, worker=None,
                            worker_pid=None)
                ).rowcount
                requeued += changed
        if changed and attempts >= max_attempts:
            _emit_terminal_from_row(db, job_id)
        elif changed:
            send(str(job_id), kind, queue)
    if requeued or failed:
        log.warning("reaper: %d job(s) re-queued, %d failed", requeued, failed)
    return {"requeued": requeued, "failed": failed}


@app.task(name="maintenance.ping", ignore_result=True)
def ping(report_key: str | None = None) -> float:
    """A bare Celery task with no job row: the floor our job lifecycle is measured against.

    With ``report_key`` it records when it ran in that Redis hash (field: its task id).
    """
    import os
    import time

    started = time.time()
    if report_key:
        import redis
        from celery import current_task

        client = redis.Redis.from_url(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
        client.hset(report_key, current_task.request.id, started)
        client.expire(report_key, 3600)
    return started
