"""Socket.IO rooms and the live events sent to them, named once.

Workers publish (through the Redis message queue) and the web process pushes and joins, so this
module imports neither Flask nor Flask-SocketIO: both sides hand it their own ``emit``.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from models import Job

#: ``emit(event, data, room)``: the worker's :func:`tasks.runtime.emit` or a wrapper of the web's ``socketio.emit``.
Emit = Callable[[str, dict[str, Any], str], Any]

# ------------------------------------------------------------------------------ rooms

JOB = "job"
PROJECT = "project"
DETECTION_STREAM = "detection_stream"
ANNOTATION = "annotation"
VALIDATION_RUN = "validation_run"
#: Every resource room kind; a room is ``{kind}_{uuid}``.
KINDS = (JOB, PROJECT, DETECTION_STREAM, ANNOTATION, VALIDATION_RUN)


def room(kind: str, resource_id: uuid.UUID | str) -> str:
    return f"{kind}_{resource_id}"


def job_room(job_id: uuid.UUID | str) -> str:
    return room(JOB, job_id)


def project_room(project_id: uuid.UUID | str) -> str:
    return room(PROJECT, project_id)


def detection_stream_room(test_session_id: uuid.UUID | str) -> str:
    return room(DETECTION_STREAM, test_session_id)


def annotation_room(session_id: uuid.UUID | str) -> str:
    return room(ANNOTATION, session_id)


def validation_run_room(run_id: uuid.UUID | str) -> str:
    return room(VALIDATION_RUN, run_id)


def parse_room(name: str) -> tuple[str, uuid.UUID] | None:
    """``(kind, id)`` of a resource room; ``None`` for any other room (a socket's own)."""
    kind, _, raw = name.rpartition("_")
    if kind not in KINDS:
        return None
    try:
        return kind, uuid.UUID(raw)
    except ValueError:
        return None


# ------------------------------------------------------------------------------ events (server → client)

CONNECTION_STATUS = "connection_status"
EVENT_ERROR = "event_error"
ROOM_LEFT = "room_left"
JOB_PROGRESS = "job_progress"
JOB_SNAPSHOT = "job_snapshot"
PROJECT_PROGRESS = "project_progress_update"
PROJECT_SNAPSHOT = "project_snapshot"
DETECTION_EVENT = "detection_event"
DETECTION_STREAM_SNAPSHOT = "detection_stream_snapshot"
ANNOTATION_SESSION_SNAPSHOT = "annotation_session_snapshot"
ANNOTATION_UPDATE = "annotation_update"
ANNOTATION_VALIDATED = "annotation_validated"
ANNOTATION_CONFLICT = "annotation_conflict"
USER_JOINED = "user_joined"
USER_LEFT = "user_left"
PRESENCE_UPDATE = "presence_update"
VALIDATION_RUN_PROGRESS = "validation_run_progress"
VALIDATION_RUN_SNAPSHOT = "validation_run_snapshot"


# ------------------------------------------------------------------------------ job progress

def job_progress(job_id: uuid.UUID | str, kind: str, status: str, progress_percent: float, stage: str,
                 seq: int) -> dict[str, Any]:
    """The ``job_progress`` payload."""
    return {
        "job_id": str(job_id),
        "kind": kind,
        "status": status,
        "progress_percent": round(float(progress_percent), 2),
        "stage": stage,
        "seq": int(seq),
    }


def job_snapshot(job: Job) -> dict[str, Any]:
    """The job as stored: the ``job_progress`` fields, plus its project."""
    return {
        **job_progress(job.id, job.kind, job.status, job.progress_percent, job.stage, job.seq),
        "project_id": str(job.project_id) if job.project_id else None,
    }


def publish_job(emit: Emit, data: dict[str, Any], project_id: uuid.UUID | str | None) -> None:
    """``job_progress`` to the job's room and ``project_progress_update`` to its project's."""
    emit(JOB_PROGRESS, data, job_room(data["job_id"]))
    if project_id:
        emit(PROJECT_PROGRESS, {"project_id": str(project_id), "progress": data}, project_room(project_id))
