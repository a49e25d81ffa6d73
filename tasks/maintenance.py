"""Periodic housekeeping run by beat on the CPU pool."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from models import Database, Job, utcnow
from settings import load_settings, redis_url

from . import runtime
from .app import app
from .dispatch import dispatch_pending, send
from .lifecycle import emit_from_row, write_state

if TYPE_CHECKING:
    from redis import Redis

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
                changed = write_state(
                    s, job_id, kind, Job.status == "processing", Job.attempts == attempts,
                    status="failed", stage="failed", claim_token=None, finished_at=utcnow(),
                    error=f"worker {worker} vanished (no heartbeat for {settings.stale_after_seconds:.0f} s); "
                          f"giving up after {attempts} attempts")
                failed += changed
            else:
                changed = write_state(s, job_id, kind, Job.status == "processing", Job.attempts == attempts,
                                      status="pending", stage="requeued: worker vanished", claim_token=None,
                                      worker=None, worker_pid=None)
                requeued += changed
        if changed and attempts >= max_attempts:
            emit_from_row(db, job_id)
        elif changed:
            send(str(job_id), kind, queue)
    if requeued or failed:
        log.warning("reaper: %d job(s) re-queued, %d failed", requeued, failed)
    import redis

    client = redis.Redis.from_url(app.conf.broker_url, socket_timeout=5)
    try:
        resent = redispatch_lost(db, client, settings.lost_message_after_seconds)
    finally:
        client.close()
    return {"requeued": requeued, "failed": failed, "resent": resent}


#: Kombu's Redis transport keeps messages of priority > 0 in sibling lists named with this separator.
_PRIORITY_SEPARATOR = "\x06\x16"


def _waiting_messages(client: Redis, queues: set[str]) -> str:
    """Every message still waiting in these queues, as one string to search for job ids."""
    parts = []
    for queue in queues:
        for key in (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in (3, 6, 9))):
            parts.extend(m.decode("utf-8", "replace") for m in client.lrange(key, 0, -1))
    return "\n".join(parts)


def redispatch_lost(db: Database, client: Redis, older_than_seconds: float) -> int:
    """Re-send pending jobs whose message is no longer waiting in their queue.

    A worker killed at the wrong moment can take a message off the queue and die before it is
    recorded as unacknowledged or before the job is claimed; nothing would ever deliver it again,
    and the job would stay pending for good. A pending job sent long enough ago whose message is
    not waiting in its queue is sent again: should the first message still surface (a reserved
    copy on a busy or restarted worker), the claim lets only one of them run.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with db.session() as s:
        candidates = s.execute(
            select(Job.id, Job.kind, Job.queue)
            .where(Job.status == "pending", Job.dispatched_at.is_not(None), Job.dispatched_at < cutoff)
            .order_by(Job.dispatched_at).limit(500)
        ).all()
    if not candidates:
        return 0
    waiting = _waiting_messages(client, {queue for _, _, queue in candidates})
    resent = 0
    for job_id, kind, queue in candidates:
        if str(job_id) in waiting:
            continue  # waiting its turn behind others: nothing is lost
        with db.session() as s:
            claimed = s.execute(update(Job).where(Job.id == job_id, Job.status == "pending")
                                .values(dispatched_at=utcnow())).rowcount
        if claimed and send(str(job_id), kind, queue):
            resent += 1
    if resent:
        log.warning("reaper: %d pending job(s) whose message was lost sent again", resent)
    return resent


@app.task(name="maintenance.ping", ignore_result=True)
def ping(report_key: str | None = None) -> float:
    """A bare Celery task with no job row: the floor our job lifecycle is measured against.

    With ``report_key`` it records when it ran in that Redis hash (field: its task id).
    """
    import time

    started = time.time()
    if report_key:
        import redis
        from celery import current_task

        client = redis.Redis.from_url(redis_url())
        client.hset(report_key, current_task.request.id, started)
        client.expire(report_key, 3600)
    return started
