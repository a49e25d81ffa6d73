"""The one lifecycle every job kind shares, and the one progress helper.

A task is a thin adapter: ``run_job(task, job_id, body)`` claims the job row, runs ``body``
with a :class:`JobContext`, and records the outcome. It is safe against redelivery:

* the claim is an optimistic UPDATE on ``attempts``, so two deliveries cannot both run;
* a delivery that finds a live attempt (fresh heartbeat) parks itself with a retry, one that
  finds a dead attempt takes over and resumes from the job's checkpoint;
* every later write is guarded by the claim token, so a superseded attempt cannot write a
  result; results are therefore written once;
* after ``max_attempts`` lost workers the job fails with a message saying so.

State has one writer, :func:`write_state`: status, progress and error go to the job row and, in
the same transaction, to the columns a kind's own row shows them in (``STATE_COLUMNS``: the
blueprint's export and import jobs, a test session's status). Task bodies never write state.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import ColumnElement, Connection, Executable, Row, func, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from models import TERMINAL_STATUSES, Database, ExportJob, ImportJob, Job, TestSession, utcnow
from settings import Settings
from storage import StorageUnavailable

from . import rooms, runtime

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)


#: Called with (job, progress payload) on every room emit: a job kind that belongs to something larger
#: (a validation run's detections) moves that larger thing's progress too. Best effort.
PROGRESS_HOOKS: list[Callable[[Job, dict[str, Any]], None]] = []


def _run_hooks(job: Job, data: dict[str, Any]) -> None:
    for hook in PROGRESS_HOOKS:
        try:
            hook(job, data)
        except Exception as exc:  # noqa: BLE001 - progress is best effort
            log.warning("progress hook %s failed for job %s: %s", getattr(hook, "__name__", hook), job.id, exc)


class JobRefused(Exception):
    """The job's input was refused: its message, as it is, is the job's error."""


class JobCancelled(Exception):
    """Raised inside a job body when a user asked to cancel it."""


class JobLost(Exception):
    """Another attempt owns the job now; this one must stop without writing."""


#: Redis key set when a user cancels a running job, before the database is told. A job that
#: holds SQLite's one write lock in a long transaction cannot learn of the cancel through the
#: database (the cancel's write waits for that transaction), so it also reads this key.
CANCEL_HINT_KEY = "job-cancel:{}"
CANCEL_HINT_SECONDS = 24 * 3600


def hint_cancel(client: Redis, job_id: uuid.UUID | str) -> None:
    """Tell a running job through Redis that it was cancelled (the database flag follows)."""
    client.set(CANCEL_HINT_KEY.format(job_id), 1, ex=CANCEL_HINT_SECONDS)


def cancel_hinted(job_id: uuid.UUID | str) -> bool:
    """Whether a cancel of this job was announced through Redis (False when Redis is unreachable)."""
    try:
        return bool(runtime.redis_client().exists(CANCEL_HINT_KEY.format(job_id)))
    except Exception as exc:  # noqa: BLE001 - best effort: the database flag still stops the job
        log.warning("could not read the cancel hint of job %s: %s", job_id, exc)
        return False


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def _host_of(nodename: str | None) -> str:
    return (nodename or "").rpartition("@")[2]


def previous_attempt_alive(job: Job, me: str, settings: Settings) -> tuple[bool, float]:
    """Whether the attempt recorded on the row may still be running, and its heartbeat age."""
    age = (utcnow() - job.heartbeat_at).total_seconds() if job.heartbeat_at else float("inf")
    if age >= settings.stale_after_seconds:
        return False, age
    if _host_of(job.worker) == _host_of(me) and job.worker_pid:
        if job.worker_pid == os.getpid() or not _pid_alive(job.worker_pid):
            return False, age
    return True, age


class Heartbeat:
    """What the job body learns from its heartbeat: cancellation asked, or ownership lost."""

    def __init__(self, job_id: uuid.UUID, token: str, service: HeartbeatService | None = None) -> None:
        self.job_id, self.token, self.service = job_id, token, service
        self.cancel_requested = False
        self.lost = False

    def beat(self, db: Database) -> None:
        row = _execute_first(db, update(Job)
                             .where(Job.id == self.job_id, Job.claim_token == self.token)
                             .values(heartbeat_at=utcnow())
                             .returning(Job.cancel_requested))
        if row is None:
            self.lost = True
        elif row[0]:
            self.cancel_requested = True

    def stop(self) -> None:
        if self.service is not None:
            self.service.unregister(self)


class HeartbeatService(threading.Thread):
    """One thread per worker process refreshes ``heartbeat_at`` of every job the process runs.

    Cheaper than a thread per job for short jobs, and a DB hiccup never kills a job.
    """

    def __init__(self, db: Database, interval: float) -> None:
        super().__init__(name="job-heartbeats", daemon=True)
        self.db, self.interval = db, interval
        self._beats: dict[uuid.UUID, Heartbeat] = {}
        self._lock = threading.Lock()

    def register(self, job_id: uuid.UUID, token: str) -> Heartbeat:
        beat = Heartbeat(job_id, token, self)
        with self._lock:
            self._beats[job_id] = beat
        return beat

    def unregister(self, beat: Heartbeat) -> None:
        with self._lock:
            if self._beats.get(beat.job_id) is beat:
                del self._beats[beat.job_id]

    def run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                beats = list(self._beats.values())
            for beat in beats:
                try:
                    beat.beat(self.db)
                except Exception as exc:  # noqa: BLE001 - a DB hiccup must not kill the job
                    log.warning("heartbeat for job %s failed: %s", beat.job_id, exc)


@dataclass
class ProgressReporter:
    """Progress three ways at three rates: job row, Socket.IO rooms, Celery events."""

    db: Database
    job: Job
    token: str
    task: Any
    settings: Settings
    heartbeat: Heartbeat | None = None
    percent: float = 0.0
    stage: str = ""
    seq: int = 0
    _last_db: float = field(default=float("-inf"))
    _last_emit: float = field(default=float("-inf"))

    def _next_seq(self) -> int:
        # Microseconds since the epoch: increases across attempts and workers without coordination.
        self.seq = max(self.seq + 1, time.time_ns() // 1000)
        return self.seq

    def payload(self, status: str) -> dict[str, Any]:
        return rooms.job_progress(self.job.id, self.job.kind, status, self.percent, self.stage, self.seq)

    def update(self, percent: float, stage: str | None = None, checkpoint: dict | None = None) -> None:
        if self.heartbeat is not None:
            if self.heartbeat.lost:
                raise JobLost(str(self.job.id))
            if self.heartbeat.cancel_requested:
                raise JobCancelled(str(self.job.id))
        percent = min(100.0, max(0.0, float(percent)))
        stage_changed = stage is not None and stage != self.stage
        self.percent = percent
        if stage is not None:
            self.stage = stage
        now = time.monotonic()
        write_db = stage_changed or now - self._last_db >= self.settings.progress_db_interval_seconds
        emit = stage_changed or now - self._last_emit >= self.settings.progress_emit_interval_seconds
        if not (write_db or emit):
            return
        self._next_seq()
        if write_db:
            values: dict[str, Any] = {
                "progress_percent": self.percent, "stage": self.stage[:255], "seq": self.seq,
                "heartbeat_at": utcnow(),
            }
            if checkpoint is not None:
                values["checkpoint"] = checkpoint
            if not _write_state(self.db, self.job.id, self.job.kind, Job.claim_token == self.token, **values):
                raise JobLost(str(self.job.id))
            self._last_db = now
        if emit:
            self.emit("processing", monitor=True)
            self._last_emit = now

    def emit(self, status: str, monitor: bool = False) -> None:
        """Rooms always; Flower only for intermediate progress (it sees start and end itself)."""
        data = self.payload(status)
        rooms.publish_job(runtime.emit, data, self.job.project_id)
        _run_hooks(self.job, data)
        if monitor:
            try:
                self.task.send_event("task-progress", **data)
            except Exception as exc:  # noqa: BLE001 - monitoring is best effort
                log.debug("could not send task-progress event: %s", exc)


@dataclass
class JobContext:
    """What a job body sees: its parameters, where to resume, and the progress helper."""

    job_id: uuid.UUID
    kind: str
    params: dict[str, Any]
    project_id: uuid.UUID | None
    attempt: int
    checkpoint: dict[str, Any] | None
    worker: str
    queue: str
    reporter: ProgressReporter

    def progress(self, percent: float, stage: str | None = None, checkpoint: dict | None = None) -> None:
        """Report progress; also the point where cancellation and lost ownership surface."""
        self.reporter.update(percent, stage, checkpoint)

    def check_cancel(self) -> None:
        hb = self.reporter.heartbeat
        if hb is not None and hb.lost:
            raise JobLost(str(self.job_id))
        if hb is not None and hb.cancel_requested:
            raise JobCancelled(str(self.job_id))

    def sleep(self, seconds: float) -> None:
        """Sleep while staying cancellable."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.check_cancel()
            time.sleep(min(0.05, left))
        self.check_cancel()


#: An absolute path: a slash at the start of a word (after a space, a quote, a bracket or "=") and what follows.
_ABSOLUTE_PATH = re.compile(r"(?<![^\s'\"(\[=])/(?!api/)[^\s'\"`,;()\[\]{}<>|]+")


def public_error(message: str, storage_dir: str | os.PathLike | None = None) -> str:
    """A job error without the worker's file system: paths under the storage directory become
    relative to it, any other absolute path its file name (the log keeps the full text)."""
    if storage_dir:
        root = os.path.join(os.path.realpath(storage_dir), "")
        message = message.replace(root, "").replace(os.path.join(str(storage_dir), ""), "")

    def name_only(match: re.Match) -> str:
        path = match.group(0).rstrip(".:")
        return os.path.basename(path.rstrip("/")) + match.group(0)[len(path):]

    return _ABSOLUTE_PATH.sub(name_only, message)


def _stored_error(error: str | None) -> str | None:
    return None if error is None else public_error(error, runtime.settings().storage_dir)


def _execute_first(db: Database, stmt: Executable) -> Row[Any] | None:
    """One ``RETURNING`` statement in its own transaction, through Core (cheaper than an ORM
    session): the row is read before the commit."""
    with db.engine.begin() as conn:
        return conn.execute(stmt).first()


@dataclass(frozen=True)
class StateColumns:
    """A row that shows its job's state in columns of its own (the blueprint's export and import
    jobs, a test session's detections): the lifecycle fills them in the statement's transaction."""

    table: Any
    status: str
    progress: str | None = None
    error: str | None = None


#: Per job kind, the row (found by its ``job_id``) that carries a copy of the job's state.
STATE_COLUMNS: dict[str, StateColumns] = {
    "export": StateColumns(ExportJob.__table__, "status", "progress_percent", "error_message"),
    "import": StateColumns(ImportJob.__table__, "import_status", "progress_percent", "error_message"),
    "detection": StateColumns(TestSession.__table__, "status"),
}


def _copy_state(conn: Connection | Session, kind: str, job_id: uuid.UUID, values: dict[str, Any]) -> None:
    side = STATE_COLUMNS.get(kind)
    if side is None:
        return
    copied: dict[str, Any] = {}
    if "status" in values:
        copied[side.status] = values["status"]
    if side.progress and "progress_percent" in values:
        copied[side.progress] = int(values["progress_percent"])  # the blueprint's column is an integer
    if side.error and "error" in values:
        copied[side.error] = values["error"]
    if copied:
        conn.execute(update(side.table).where(side.table.c.job_id == job_id).values(**copied))


def write_state(conn: Connection | Session, job_id: uuid.UUID, kind: str, *where: ColumnElement[bool],
                **values: object) -> bool:
    """The one writer of a job's state: the job row (where ``where`` still holds) and, in the same
    transaction, its kind's state columns. ``conn`` is a connection or a session in a transaction
    the caller commits. Returns whether the job row was changed."""
    done = conn.execute(update(Job).where(Job.id == job_id, *where).values(**values)).rowcount
    if done:
        _copy_state(conn, kind, job_id, values)
    return bool(done)


def _write_state(db: Database, job_id: uuid.UUID, kind: str, *where: ColumnElement[bool], **values: object) -> bool:
    """:func:`write_state` in a transaction of its own."""
    with db.engine.begin() as conn:
        return write_state(conn, job_id, kind, *where, **values)


def _claim_row(db: Database, job_id: uuid.UUID, *where: ColumnElement[bool], **values: object) -> Row[Any] | None:
    """Claim with ``RETURNING``: the row as claimed, its state copied in the same transaction."""
    with db.engine.begin() as conn:
        row = conn.execute(update(Job).where(Job.id == job_id, *where).values(**values)
                           .returning(*Job.__table__.c)).first()
        if row is not None:
            _copy_state(conn, row.kind, job_id, values)
        return row


def cancel_pending(conn: Connection | Session, job_id: uuid.UUID, kind: str, now: datetime | None = None) -> bool:
    """Cancel a job that has not started (False when it has): it never runs."""
    now = now or utcnow()
    return write_state(conn, job_id, kind, Job.status == "pending", status="cancelled", stage="cancelled",
                       cancel_requested=True, finished_at=now, seq=int(now.timestamp() * 1_000_000))


def error_text(exc: BaseException) -> str:
    """How a job's exception reads as its error."""
    return str(exc) if isinstance(exc, JobRefused) else f"{type(exc).__name__}: {exc}"


def _finish_unclaimed(db: Database, job: Job, status: str, error: str | None) -> bool:
    return _write_state(db, job.id, job.kind, Job.attempts == job.attempts, Job.status.notin_(TERMINAL_STATUSES),
                        status=status, error=_stored_error(error), finished_at=utcnow(), claim_token=None,
                        stage="cancelled" if status == "cancelled" else "failed", seq=time.time_ns() // 1000)


def emit_from_row(db: Database, job_id: uuid.UUID) -> None:
    """Announce the job's stored state (a state written outside a running attempt)."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        data = rooms.job_snapshot(job)
    project_id = data.pop("project_id")
    rooms.publish_job(runtime.emit, data, project_id)
    _run_hooks(job, data)


def run_job(task: Task, job_id: str, body: Callable[[JobContext], dict[str, Any] | None]) -> dict[str, Any]:
    """Claim the job, run its body, store the outcome. Returns a short summary for Flower.

    If the database cannot be reached to claim the job, the message is retried with
    backoff rather than dropped: the job row stays ``pending`` until a worker can claim it.
    """
    try:
        return _claim_and_run(task, job_id, body)
    except DBAPIError as exc:
        if getattr(task.request, "called_directly", True):
            raise
        retries = int(getattr(task.request, "retries", 0) or 0)
        log.warning("database unavailable while claiming job %s (%s); retrying", job_id, exc.__class__.__name__)
        raise task.retry(countdown=min(30.0, 0.5 * 2 ** retries), max_retries=None) from None


def _claim_and_run(task: Task, job_id: str, body: Callable[[JobContext], dict[str, Any] | None]) -> dict[str, Any]:
    settings = runtime.settings()
    db = runtime.database()
    jid = uuid.UUID(job_id)
    me = getattr(task.request, "hostname", None) or f"worker@{socket.gethostname()}"

    token = str(uuid.uuid4())
    now = utcnow()
    claim = dict(status="processing", claim_token=token, attempts=Job.attempts + 1, worker=me,
                 worker_pid=os.getpid(), heartbeat_at=now, started_at=func.coalesce(Job.started_at, now))
    # The common case in one round trip: a fresh pending job, claimed and read at once.
    row = _claim_row(db, jid, Job.status == "pending", Job.attempts == 0, Job.cancel_requested.is_(False),
                     **claim, stage="started")
    if row is not None:
        return _run_claimed(task, db, settings, Job(**row._asdict()), token, body)

    with db.session() as s:
        job = s.get(Job, jid)
    if job is None:
        log.error("job %s not found in the database; dropping its message", job_id)
        return {"outcome": "missing"}
    if job.status in TERMINAL_STATUSES:
        return {"outcome": f"already {job.status}"}
    if job.cancel_requested:
        if _finish_unclaimed(db, job, "cancelled", None):
            emit_from_row(db, jid)
        return {"outcome": "cancelled before start"}
    if job.status == "processing":
        alive, age = previous_attempt_alive(job, me, settings)
        if alive:
            # Someone may still be running it: look again once its heartbeat would be stale.
            raise task.retry(countdown=max(1.0, settings.stale_after_seconds - age + 0.5), max_retries=None)
        if job.attempts >= job.max_attempts:
            error = (
                f"worker lost {job.attempts} times while running this job (last on {job.worker}); "
                f"giving up after {job.max_attempts} attempts"
            )
            if _finish_unclaimed(db, job, "failed", error):
                emit_from_row(db, jid)
            return {"outcome": "failed: redelivery cap"}

    stage = "resuming" if job.attempts > 0 else "started"
    row = _claim_row(db, jid, Job.status == job.status, Job.attempts == job.attempts, **claim, stage=stage)
    if row is None:
        return {"outcome": "claimed by another delivery"}
    return _run_claimed(task, db, settings, Job(**row._asdict()), token, body)


def _wait_for_storage(task: Task, db: Database, job: Job, token: str, reporter: ProgressReporter,
                      exc: StorageUnavailable) -> dict[str, Any]:
    """The store is down (a transient outage, not the job's fault): give the claim back, leave the
    job ``pending`` and retry the message with backoff, as for a database down at claim time. The
    next delivery claims it afresh (one more attempt) and its body starts over."""
    retries = int(getattr(task.request, "retries", 0) or 0)
    reporter.stage = "waiting for storage"
    reporter._next_seq()
    if not _write_state(db, job.id, job.kind, Job.claim_token == token, Job.status == "processing",
                        status="pending", claim_token=None, stage=reporter.stage, error=_stored_error(error_text(exc)),
                        dispatched_at=utcnow(), seq=reporter.seq):
        return {"outcome": "superseded"}
    log.warning("storage unavailable while running job %s (%s); retrying", job.id, exc)
    reporter.emit("pending")
    raise task.retry(countdown=min(30.0, 0.5 * 2 ** retries), max_retries=None) from None


def _run_claimed(task: Task, db: Database, settings: Settings, job: Job, token: str,
                 body: Callable[[JobContext], dict[str, Any] | None]) -> dict[str, Any]:
    """Run the body of a job this attempt owns (``job`` is the row as claimed) and record the outcome."""
    job_id, jid = str(job.id), job.id
    heartbeat = runtime.heartbeats(HeartbeatService).register(jid, token)
    reporter = ProgressReporter(db, job, token, task, settings, heartbeat, percent=float(job.progress_percent),
                                stage=job.stage, seq=int(job.seq))
    ctx = JobContext(jid, job.kind, job.params, job.project_id, job.attempts, job.checkpoint, job.worker,
                     job.queue, reporter)
    reporter._next_seq()
    reporter.emit("processing")  # the claim already wrote the stage: announce it, no second write
    status, result, error = "completed", None, None
    try:
        result = body(ctx) or {}
    except StorageUnavailable as exc:
        if getattr(task.request, "called_directly", True):
            status, error = "failed", error_text(exc)
        else:
            heartbeat.stop()
            return _wait_for_storage(task, db, job, token, reporter, exc)
    except JobCancelled:
        status = "cancelled"
    except JobLost:
        log.warning("job %s was taken over by another attempt; stopping", job_id)
        return {"outcome": "superseded"}
    except SoftTimeLimitExceeded:
        status, error = "failed", f"time limit exceeded ({task.soft_time_limit or 'configured'} s)"
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
        status, error = "failed", error_text(exc)
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
    finally:
        heartbeat.stop()

    reporter.stage = {"completed": "done", "cancelled": "cancelled", "failed": "failed"}[status]
    if status == "completed":
        reporter.percent = 100.0
    reporter._next_seq()
    done = _write_state(db, jid, job.kind, Job.claim_token == token, Job.status == "processing",
                        status=status, result=result, error=_stored_error(error), finished_at=utcnow(),
                        progress_percent=reporter.percent, stage=reporter.stage, seq=reporter.seq)
    if not done:
        return {"outcome": "superseded"}
    reporter.emit(status)
    return {"outcome": status}
