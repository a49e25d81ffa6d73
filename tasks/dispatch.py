"""Creating jobs and handing them to the broker through a transactional outbox.

A job row is committed first with ``dispatched_at`` empty; the message is sent after the
commit and the row marked. When the broker is unreachable the row simply stays
undispatched and :func:`dispatch_pending` sends it later, so an accepted job is never lost.
Sending twice is harmless: the task claims its row atomically.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from celeryconfig import KIND_QUEUES
from models import Database, Job, utcnow
from settings import cached_settings

log = logging.getLogger(__name__)

#: Job kinds this installation can run, with the task name each one maps to.
JOB_TASKS = {"probe": "jobs.probe", "compatibility": "jobs.compatibility", "assignment": "jobs.assignment",
             "detection": "jobs.detection", "model_check": "jobs.model_check",
             "evaluation": "jobs.evaluation", "validation_aggregate": "jobs.validation_aggregate",
             "export": "jobs.export", "import": "jobs.import"}


def queue_for(kind: str, params: dict[str, Any]) -> str:
    if kind == "probe":
        return params["queue"]
    return KIND_QUEUES[kind]


def create_job(
    session: Session,
    kind: str,
    params: dict[str, Any],
    *,
    project_id: uuid.UUID | None = None,
    created_by: uuid.UUID | None = None,
) -> Job:
    """Add a pending job row to the caller's transaction; dispatch after commit."""
    if kind not in JOB_TASKS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job(
        id=uuid.uuid4(),
        kind=kind,
        queue=queue_for(kind, params),
        status="pending",
        stage="queued",
        params=params,
        project_id=project_id,
        created_by=created_by,
        max_attempts=cached_settings().job_max_attempts,
    )
    session.add(job)
    session.flush()
    return job


def send(job_id: str, kind: str, queue: str) -> bool:
    """Publish one job message; False (and a log line) when the broker is unreachable."""
    from tasks.app import app

    try:
        app.send_task(
            JOB_TASKS[kind],
            args=[job_id],
            task_id=job_id,
            queue=queue,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5},
        )
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure leaves the job in the outbox
        log.warning("broker unavailable, job %s stays in the outbox: %s", job_id, exc)
        return False


def mark_dispatched(db: Database, job_ids: list[str]) -> None:
    """Take sent jobs out of the outbox (one statement for a batch)."""
    if job_ids:
        with db.engine.begin() as conn:
            conn.execute(update(Job)
                         .where(Job.id.in_([uuid.UUID(j) for j in job_ids]), Job.dispatched_at.is_(None))
                         .values(dispatched_at=utcnow()))


def dispatch(db: Database, job: Job, mark: Callable[[str], None] | None = None) -> bool:
    """Send a committed job now; on failure the outbox sweep retries it.

    ``mark`` lets a caller batch the outbox update instead of writing it right away.
    """
    if not send(str(job.id), job.kind, job.queue):
        return False
    if mark is None:
        mark_dispatched(db, [str(job.id)])
    else:
        mark(str(job.id))
    return True


def dispatch_pending(db: Database, limit: int = 500, grace_seconds: float = 2.0) -> int:
    """Send undispatched pending jobs, oldest first; stop at the first broker failure.

    Jobs younger than ``grace_seconds`` are left to the request that created them.
    """
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    with db.session() as s:
        rows = s.execute(
            select(Job.id, Job.kind, Job.queue)
            .where(Job.dispatched_at.is_(None), Job.status == "pending", Job.created_at < cutoff)
            .order_by(Job.created_at)
            .limit(limit)
        ).all()
    sent: list[str] = []
    for job_id, kind, queue in rows:
        if not send(str(job_id), kind, queue):
            break
        sent.append(str(job_id))
    mark_dispatched(db, sent)
    if sent:
        log.info("outbox: dispatched %d job(s)", len(sent))
    return len(sent)
