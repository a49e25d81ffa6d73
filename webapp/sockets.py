"""Socket.IO: authenticated connections and permission-checked rooms.

Every room join answers with a snapshot read from the database after joining, so a client
that (re)connects never misses the state it subscribed to; live events follow, ordered by
``seq``.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, request
from flask_socketio import ConnectionRefusedError, join_room, leave_room
from sqlalchemy import select

from models import TERMINAL_STATUSES, Job
from tasks.lifecycle import job_snapshot

from .auth import Principal, can_see_job, principal_from_token, project_role
from .errors import ApiError, error_body
from .extensions import socketio

_principals: dict[str, Principal] = {}


def _session():
    return current_app.extensions["database"].Session()


def _user() -> Principal:
    user = _principals.get(request.sid)
    if user is None:
        raise ApiError(401, "not authenticated")
    return user


def _uuid(data: Any, key: str) -> uuid.UUID:
    value = data.get(key) if isinstance(data, dict) else None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ApiError(422, f"{key} must be a UUID", details={"fields": {key: ["Not a valid UUID."]}}) from None


def _answer(fn):
    """Handlers answer through the ack with the API's error shape instead of raising."""

    def wrapper(data=None):
        try:
            return fn(data or {})
        except ApiError as exc:
            return error_body(exc.status, exc.message, exc.code, exc.details)

    wrapper.__name__ = fn.__name__
    return wrapper


@socketio.on("connect")
def on_connect(auth=None):
    token = auth.get("token") if isinstance(auth, dict) else None
    with _session() as session:
        try:
            user = principal_from_token(session, token)
        except ApiError as exc:
            raise ConnectionRefusedError(error_body(exc.status, exc.message, exc.code)) from None
    _principals[request.sid] = user
    socketio.emit("connection_status", {"status": "connected", "sid": request.sid,
                                        "user": {"id": str(user.id), "username": user.username, "role": user.role}},
                  to=request.sid)


@socketio.on("disconnect")
def on_disconnect(*_args):
    _principals.pop(request.sid, None)


@socketio.on("subscribe_job")
@_answer
def subscribe_job(data):
    user, job_id = _user(), _uuid(data, "job_id")
    with _session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise ApiError(404, "job not found")
        if not can_see_job(session, user, job):
            raise ApiError(403, "not allowed to see this job")
        join_room(f"job_{job_id}")
        session.refresh(job)  # read after joining: nothing falls between snapshot and live events
        snapshot = job_snapshot(job)
    socketio.emit("job_snapshot", snapshot, to=request.sid)
    return {"ok": True, "job": snapshot}


@socketio.on("unsubscribe_job")
@_answer
def unsubscribe_job(data):
    leave_room(f"job_{_uuid(data, 'job_id')}")
    return {"ok": True}


@socketio.on("join_project")
@_answer
def join_project(data):
    user, project_id = _user(), _uuid(data, "project_id")
    with _session() as session:
        from models import Project

        if session.get(Project, project_id) is None:
            raise ApiError(404, "project not found")
        if project_role(session, user, project_id) is None:
            raise ApiError(403, "not a member of this project")
        join_room(f"project_{project_id}")
        active = session.scalars(
            select(Job).where(Job.project_id == project_id, Job.status.notin_(TERMINAL_STATUSES))
            .order_by(Job.created_at)
        ).all()
        snapshot = {"project_id": str(project_id), "jobs": [job_snapshot(j) for j in active]}
    socketio.emit("project_snapshot", snapshot, to=request.sid)
    return {"ok": True, **snapshot}


@socketio.on("leave_project")
@_answer
def leave_project(data):
    leave_room(f"project_{_uuid(data, 'project_id')}")
    return {"ok": True}
