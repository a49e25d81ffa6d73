"""The web side of jobs and events: submitting through the outbox, pushing to rooms."""
from __future__ import annotations

import logging
import time

from flask import Flask, current_app, url_for
from sqlalchemy.orm import Session

from models import Job
from tasks import rooms
from tasks.dispatch import dispatch, dispatch_pending, mark_dispatched

from .extensions import socketio

log = logging.getLogger(__name__)


class BrokerBreaker:
    """After a failed send, requests skip the broker for a moment and leave jobs to the outbox."""

    def __init__(self, cooldown: float = 2.0) -> None:
        self.cooldown = cooldown
        self.down_until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def record(self, ok: bool) -> None:
        if not ok:
            self.down_until = time.monotonic() + self.cooldown


breaker = BrokerBreaker()


class DispatchMarks:
    """Outbox marks written in batches off the request path (one UPDATE per flush).

    A mark that is lost (process killed before the flush) only means the sweep sends the
    job a second time, which the task's claim makes harmless.
    """

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.flushing = False

    def add(self, job_id: str) -> None:
        self.pending.append(job_id)
        if not self.flushing:
            self.flushing = True
            socketio.start_background_task(self._flush, current_app._get_current_object())

    def _flush(self, app: Flask) -> None:
        try:
            socketio.sleep(0.05)  # gather the marks of concurrent submissions
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    mark_dispatched(app.extensions["database"], batch)
                except Exception as exc:  # noqa: BLE001 - the sweep re-sends; harmless
                    log.warning("could not record dispatch of %d job(s): %s", len(batch), exc)
        finally:
            self.flushing = False


marks = DispatchMarks()


def submit(session: Session, job: Job) -> tuple[Job, int, dict[str, str]]:
    """Commit the job row, then try to send it; answer 202 either way."""
    session.commit()
    if breaker.available():
        breaker.record(dispatch(current_app.extensions["database"], job, marks.add))
    return job, 202, {"Location": url_for("jobs.get_job", job_id=str(job.id))}


def push(event: str, data: dict, room: str) -> None:
    """``socketio.emit`` in the shape :mod:`tasks.rooms` takes."""
    socketio.emit(event, data, to=room)


def broadcast_job(snapshot: dict) -> None:
    """Push a job state the web process itself changed (cancel of a pending job)."""
    data = {k: v for k, v in snapshot.items() if k != "project_id"}
    try:
        rooms.publish_job(push, data, snapshot.get("project_id"))
    except Exception as exc:  # noqa: BLE001 - clients also get the state from the snapshot
        log.warning("could not broadcast job %s: %s", data["job_id"], exc)


def outbox_loop(app: Flask) -> None:
    """Background task of the web process: dispatch jobs the broker missed."""
    interval = app.config["SETTINGS"].outbox_interval_seconds
    database = app.extensions["database"]
    while True:
        socketio.sleep(interval)
        try:
            sent = dispatch_pending(database)
            breaker.record(True)
            if sent:
                log.info("outbox dispatched %d job(s)", sent)
        except Exception as exc:  # noqa: BLE001 - keep sweeping whatever happens
            log.warning("outbox sweep failed: %s", exc)
