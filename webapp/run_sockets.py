"""Socket.IO room of a validation run: ``validation_run_{id}``, members of its project only."""
from __future__ import annotations

from flask import request
from flask_socketio import leave_room

from models import ValidationRun
from tasks import rooms
from tasks import validation as runs_tasks

from .auth import get_or_404
from .extensions import socketio
from .sockets import JSON, _joined_room, _on, _session, _user, _uuid


@_on("validation_run_subscribe")
def validation_run_subscribe(data: JSON) -> JSON:
    """Join the run's room; the answer and a ``validation_run_snapshot`` carry its progress, read after joining."""
    user, run_id = _user(), _uuid(data, "run_id")
    with _session() as session:
        run = get_or_404(ValidationRun, run_id, "validation run", session=session, user=user)
        _joined_room(rooms.validation_run_room(run_id))
        session.refresh(run)
        snapshot = runs_tasks.progress(session, run)
    socketio.emit(rooms.VALIDATION_RUN_SNAPSHOT, snapshot, to=request.sid)
    return {"ok": True, **snapshot}


@_on("validation_run_unsubscribe")
def validation_run_unsubscribe(data: JSON) -> JSON:
    leave_room(rooms.validation_run_room(_uuid(data, "run_id")))
    return {"ok": True}
