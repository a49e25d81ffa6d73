"""Socket.IO: authenticated connections and permission-checked rooms.

Every room join answers with a snapshot read from the database after joining, so a client
that (re)connects never misses the state it subscribed to; live events follow, ordered by
``seq``.
"""
from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request
from flask_socketio import ConnectionRefusedError, join_room, leave_room
from limits import parse
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    TERMINAL_STATUSES,
    AnnotationSession,
    DetectionEvent,
    Job,
    TestSession,
    ValidationRun,
    VideoAnnotation,
)
from tasks import rooms
from tasks.rooms import job_snapshot

from .annotation_service import (
    EditConflict,
    annotation_dict,
    apply_keyframes,
    broadcast,
    create_annotation,
    delete_annotation,
    keyframe_edits,
    load_session,
    merge_annotations,
    split_annotation,
    update_annotation,
)
from .auth import (
    WRITE_ROLES,
    Principal,
    can_see_job,
    decode_token,
    get_or_404,
    get_project_for,
    principal_for_claims,
    project_role,
)
from .db import audit
from .errors import ApiError, error_body, validation_error
from .extensions import socketio
from .rights import EVERYONE, rights_version
from .schemas import AnnotationCreate, AnnotationPatch, MergeIn, SplitIn

NAMESPACE = "/"

#: What a client sends with an event, and what the ack answers: a JSON object.
JSON = dict[str, Any]
EventHandler = Callable[[JSON], JSON]


@dataclass
class Connection:
    """What a socket connected with, and the rights version its principal was last loaded at."""

    claims: dict[str, Any]
    principal: Principal
    version: int | None


_connections: dict[str, Connection] = {}


def _session() -> Session:
    session = current_app.extensions["database"].Session()
    session.info["audited_request"] = True  # edits over Socket.IO are audited like HTTP ones
    return session


def _user() -> Principal:
    """The caller as checked for the event being handled (see ``_event``)."""
    user = g.get("socket_principal")
    if user is None:
        raise ApiError(401, "not authenticated")
    return user


def _current(sid: str) -> Principal:
    """The socket's user with the rights it has now: reloaded when its rights version moved
    (or when Redis cannot say), so a logout, a new password, a deactivation or a new role
    takes effect on the very next event."""
    conn = _connections.get(sid)
    if conn is None:
        raise ApiError(401, "not authenticated")
    version = rights_version(conn.principal.id)
    if version is None or version != conn.version:
        with _session() as db:
            conn.principal = principal_for_claims(db, conn.claims)
        conn.version = version
    elif conn.claims["exp"] < time.time():
        raise ApiError(401, "token expired", code="token_expired")
    return conn.principal


def _uuid(data: object, key: str) -> uuid.UUID:
    value = data.get(key) if isinstance(data, dict) else None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise validation_error({key: "Not a valid UUID."}, "data", f"{key} must be a UUID") from None


class SocketRateLimit:
    """``RATE_LIMIT_SOCKET`` events per user over all sockets and web processes (counted in
    Redis, like the HTTP limits; in this process's memory while Redis is down). A moving
    window: no burst of twice the limit across a window's edge."""

    def __init__(self) -> None:
        self._limiters: tuple[MovingWindowRateLimiter, MovingWindowRateLimiter] | None = None

    def retry_after(self, user: Principal) -> int | None:
        """Count one event; ``None`` when it is within the limit, else seconds to wait."""
        settings = current_app.config["SETTINGS"]
        if self._limiters is None:
            redis_storage = RedisStorage(current_app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)
            self._limiters = (MovingWindowRateLimiter(redis_storage),
                              MovingWindowRateLimiter(MemoryStorage()))
        limit, key = parse(settings.rate_limit_socket), f"{settings.socketio_channel}:socket:{user.id}"
        for limiter in self._limiters:
            try:
                if limiter.hit(limit, key):
                    return None
                reset, _ = limiter.get_window_stats(limit, key)
                return max(1, math.ceil(reset - time.time()))
            except Exception:  # noqa: BLE001 - Redis down: count in memory instead
                continue
        return None

    def error(self, event: str, retry_after: int) -> dict[str, Any]:
        limit = current_app.config["SETTINGS"].rate_limit_socket
        body = error_body(429, f"too many Socket.IO events (limit: {limit}); retry later", "rate_limited",
                          {"retry_after": retry_after, "event": event})
        socketio.emit(rooms.EVENT_ERROR, body, to=request.sid, ignore_queue=True)
        return body


rate_limit = SocketRateLimit()


def _event(fn: EventHandler, event: str) -> Callable[[JSON | None], JSON]:
    """Every event acts with the rights the user has now, counts against the user's rate
    limit, and answers through the ack with the API's error shape instead of raising."""

    def wrapper(data: JSON | None = None) -> JSON:
        sid = request.sid
        try:
            g.socket_principal = _current(sid)
            conn = _connections.get(sid)
            g.socket_version = conn.version if conn else None
        except ApiError as exc:
            if exc.status == 401:  # the token is no longer good: answer, then hang up
                socketio.start_background_task(_drop_later, current_app._get_current_object(), sid, exc)
            return error_body(exc.status, exc.message, exc.code, exc.details)
        retry_after = rate_limit.retry_after(g.socket_principal)
        if retry_after is not None:
            return rate_limit.error(event, retry_after)
        try:
            return fn(data or {})
        except ApiError as exc:
            return error_body(exc.status, exc.message, exc.code, exc.details)

    wrapper.__name__ = fn.__name__
    return wrapper


#: Every client event the server handles (connect and disconnect aside).
EVENTS: list[str] = []


def _on(event: str) -> Callable[[EventHandler], Callable[[JSON | None], JSON]]:
    """Register a client event handler behind ``_event``'s checks."""

    def register(fn: EventHandler) -> Callable[[JSON | None], JSON]:
        EVENTS.append(event)
        return socketio.on(event)(_event(fn, event))

    return register


@socketio.on("connect")
def on_connect(auth: object = None) -> None:
    token = auth.get("token") if isinstance(auth, dict) else None
    try:
        claims = decode_token(token)
        version = rights_version(claims["sub"])  # read first: a change after the check moves it
        with _session() as session:
            user = principal_for_claims(session, claims)
    except ApiError as exc:
        # The client gets ``{"message", "data": <the error shape>}`` as the connect error.
        raise ConnectionRefusedError(exc.message, error_body(exc.status, exc.message, exc.code)) from None
    _connections[request.sid] = Connection(claims, user, version)
    socketio.emit(rooms.CONNECTION_STATUS, {"status": "connected", "sid": request.sid,
                                        "user": {"id": str(user.id), "username": user.username, "role": user.role}},
                  to=request.sid)


@socketio.on("disconnect")
def on_disconnect(*_args: object) -> None:
    _connections.pop(request.sid, None)
    for session_id in list(_joined.pop(request.sid, ())):
        _leave(request.sid, session_id)


# ------------------------------------------------------------------------------ loss of rights


def _may_stay(db: Session, user: Principal, room: str) -> bool:
    """Whether the user may still be in one of the resource rooms."""
    parsed = rooms.parse_room(room)
    if parsed is None:
        return True  # not a resource room (a socket's own room)
    kind, resource_id = parsed
    if kind == rooms.JOB:
        job = db.get(Job, resource_id)
        return job is not None and can_see_job(db, user, job)
    if kind == rooms.PROJECT:
        return project_role(db, user, resource_id) is not None
    owner = {rooms.DETECTION_STREAM: TestSession, rooms.ANNOTATION: AnnotationSession,
             rooms.VALIDATION_RUN: ValidationRun}[kind]
    row = db.get(owner, resource_id)
    return row is not None and project_role(db, user, row.project_id) is not None


def _drop(sid: str, exc: ApiError) -> None:
    """Tell the socket why, then disconnect it (its token is no longer good)."""
    if _connections.pop(sid, None) is None:
        return
    socketio.emit(rooms.CONNECTION_STATUS, {"status": "revoked", **error_body(exc.status, exc.message, exc.code)},
                  to=sid, namespace=NAMESPACE, ignore_queue=True)
    socketio.server.disconnect(sid, namespace=NAMESPACE)


def _drop_later(app: Flask, sid: str, exc: ApiError) -> None:
    socketio.sleep(0.2)  # let the refused event's ack go out first
    with app.app_context():
        _drop(sid, exc)


def recheck_socket(sid: str) -> None:
    """Reload the socket's user; leave every room it may no longer be in, or disconnect it."""
    conn = _connections.get(sid)
    if conn is None:
        return
    version = rights_version(conn.principal.id)
    with _session() as db:
        try:
            user = principal_for_claims(db, conn.claims)
        except ApiError as exc:
            _drop(sid, exc)
            return
        conn.principal, conn.version = user, version
        for room in socketio.server.rooms(sid, namespace=NAMESPACE):
            if room == sid or _may_stay(db, user, room):
                continue
            socketio.server.leave_room(sid, room, namespace=NAMESPACE)
            parsed = rooms.parse_room(room)
            if parsed is not None and parsed[0] == rooms.ANNOTATION:
                _leave(sid, str(parsed[1]))
            socketio.emit(rooms.ROOM_LEFT, {"room": room, "reason": "access_revoked"}, to=sid, namespace=NAMESPACE,
                          ignore_queue=True)


def recheck_user(user_id: str) -> None:
    """What the rights listener calls for a notice: re-check this user's local sockets."""
    for sid, conn in list(_connections.items()):
        if user_id == EVERYONE or str(conn.principal.id) == user_id:
            recheck_socket(sid)


def _joined_room(room: str) -> None:
    """Join, then make sure no change of rights slipped in between the check and the join."""
    join_room(room)
    checked_at = g.get("socket_version")
    if checked_at is None or rights_version(_user().id) != checked_at:
        recheck_socket(request.sid)
        if request.sid not in _connections:
            raise ApiError(401, "token no longer valid", code="invalid_token")
        if room not in socketio.server.rooms(request.sid, namespace=NAMESPACE):
            raise ApiError(403, "access to this room was revoked while joining")


@_on("subscribe_job")
def subscribe_job(data: JSON) -> JSON:
    user, job_id = _user(), _uuid(data, "job_id")
    with _session() as session:
        job = get_or_404(Job, job_id, "job", session=session, user=user)
        _joined_room(rooms.job_room(job_id))
        session.refresh(job)  # read after joining: nothing falls between snapshot and live events
        snapshot = job_snapshot(job)
    socketio.emit(rooms.JOB_SNAPSHOT, snapshot, to=request.sid)
    return {"ok": True, "job": snapshot}


@_on("unsubscribe_job")
def unsubscribe_job(data: JSON) -> JSON:
    leave_room(rooms.job_room(_uuid(data, "job_id")))
    return {"ok": True}


@_on("detection_stream_subscribe")
def detection_stream_subscribe(data: JSON) -> JSON:
    """Join ``detection_stream_{id}``; the snapshot says how far the stored results go."""
    user, test_session_id = _user(), _uuid(data, "test_session_id")
    with _session() as session:
        ts = get_or_404(TestSession, test_session_id, "test session", session=session, user=user)
        _joined_room(rooms.detection_stream_room(test_session_id))
        count, last = session.execute(
            select(func.count(DetectionEvent.id), func.max(DetectionEvent.frame_number))
            .where(DetectionEvent.test_session_id == test_session_id)).one()
        job = session.get(Job, ts.job_id) if ts.job_id else None
        snapshot = {"test_session_id": str(test_session_id), "status": ts.status,
                    "detections_stored": int(count), "last_frame_number": last,
                    "job": job_snapshot(job) if job is not None else None}
    socketio.emit(rooms.DETECTION_STREAM_SNAPSHOT, snapshot, to=request.sid)
    return {"ok": True, **snapshot}


@_on("detection_stream_unsubscribe")
def detection_stream_unsubscribe(data: JSON) -> JSON:
    leave_room(rooms.detection_stream_room(_uuid(data, "test_session_id")))
    return {"ok": True}


@_on("join_project")
def join_project(data: JSON) -> JSON:
    user, project_id = _user(), _uuid(data, "project_id")
    with _session() as session:
        get_project_for(session, user, project_id)
        _joined_room(rooms.project_room(project_id))
        active = session.scalars(
            select(Job).where(Job.project_id == project_id, Job.status.notin_(TERMINAL_STATUSES))
            .order_by(Job.created_at)
        ).all()
        snapshot = {"project_id": str(project_id), "jobs": [job_snapshot(j) for j in active]}
    socketio.emit(rooms.PROJECT_SNAPSHOT, snapshot, to=request.sid)
    return {"ok": True, **snapshot}


@_on("leave_project")
def leave_project(data: JSON) -> JSON:
    leave_room(rooms.project_room(_uuid(data, "project_id")))
    return {"ok": True}


# ------------------------------------------------------------------------------ collaboration

_joined: dict[str, set[str]] = {}  # sid -> annotation sessions it joined on this node


def _presence_key(session_id: str) -> str:
    return f"presence:annotation:{session_id}"


def _presence(session_id: str) -> list[dict]:
    """Who is in the session, across every web process (kept in Redis)."""
    try:
        values = current_app.extensions["redis"].hvals(_presence_key(session_id))
    except Exception:  # noqa: BLE001 - presence is best effort
        return []
    return sorted((json.loads(v) for v in values), key=lambda p: p["joined_at"])


def _leave(sid: str, session_id: str) -> None:
    entry = None
    try:
        r = current_app.extensions["redis"]
        raw = r.hget(_presence_key(session_id), sid)
        entry = json.loads(raw) if raw else None
        r.hdel(_presence_key(session_id), sid)
    except Exception:  # noqa: BLE001
        pass
    _joined.get(sid, set()).discard(session_id)
    socketio.emit(rooms.USER_LEFT, {"session_id": session_id, "user": entry, "presence": _presence(session_id)},
                  to=rooms.annotation_room(session_id), skip_sid=sid)


@_on("join_annotation_session")
def join_annotation_session(data: JSON) -> JSON:
    user, session_id = _user(), _uuid(data, "session_id")
    with _session() as db:
        load_session(db, user, session_id)  # read permission: any member
        role = project_role(db, user, db.get(AnnotationSession, session_id).project_id)
        _joined_room(rooms.annotation_room(session_id))
        annotations = db.scalars(select(VideoAnnotation)
                                 .where(VideoAnnotation.annotation_session_id == session_id)
                                 .order_by(VideoAnnotation.start_timestamp, VideoAnnotation.id)).all()
        snapshot = [annotation_dict(a) for a in annotations]
    me = {"sid": request.sid, "user_id": str(user.id), "username": user.username, "role": role,
          "joined_at": time.time()}
    key = str(session_id)
    try:
        r = current_app.extensions["redis"]
        r.hset(_presence_key(key), request.sid, json.dumps(me))
        r.expire(_presence_key(key), 24 * 3600)
    except Exception:  # noqa: BLE001
        pass
    _joined.setdefault(request.sid, set()).add(key)
    presence = _presence(key)
    socketio.emit(rooms.USER_JOINED, {"session_id": key, "user": me, "presence": presence},
                  to=rooms.annotation_room(session_id), skip_sid=request.sid)
    answer = {"ok": True, "session_id": key, "annotations": snapshot, "presence": presence,
              "can_edit": role in WRITE_ROLES}
    socketio.emit(rooms.ANNOTATION_SESSION_SNAPSHOT, answer, to=request.sid)
    return answer


@_on("leave_annotation_session")
def leave_annotation_session(data: JSON) -> JSON:
    session_id = str(_uuid(data, "session_id"))
    leave_room(rooms.annotation_room(session_id))
    _leave(request.sid, session_id)
    return {"ok": True}


@_on("annotation_focus")
def annotation_focus(data: JSON) -> JSON:
    """Say which frame (and track) this socket is on; everyone in the session sees it in ``presence``."""
    user, session_id = _user(), _uuid(data, "session_id")
    frame, track = data.get("frame_number"), data.get("annotation_id")
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise validation_error({"frame_number": "Invalid."}, "data", "frame_number must be a frame number")
    track = str(_uuid(data, "annotation_id")) if track is not None else None
    with _session() as db:
        load_session(db, user, session_id)  # read permission: any member
    key = str(session_id)
    try:  # a socket that has not joined has no entry to move
        r = current_app.extensions["redis"]
        raw = r.hget(_presence_key(key), request.sid)
        if raw:
            r.hset(_presence_key(key), request.sid,
                   json.dumps(json.loads(raw) | {"frame_number": frame, "annotation_id": track}))
    except Exception:  # noqa: BLE001 - presence is best effort
        pass
    presence = _presence(key)
    socketio.emit(rooms.PRESENCE_UPDATE, {"session_id": key, "presence": presence}, to=rooms.annotation_room(key))
    return {"ok": True, "presence": presence}


@_on("real_time_annotation")
def real_time_annotation(data: JSON) -> JSON:
    """Persist one edit with optimistic concurrency, then relay it to the other collaborators."""
    user, session_id = _user(), _uuid(data, "session_id")
    op = data.get("op")
    if op not in ("create", "update", "delete", "split", "merge"):
        raise validation_error({"op": "Invalid op."}, "data", "op must be create, update, delete, split or merge")
    body = data.get("annotation") or {}
    if not isinstance(body, dict):
        raise validation_error({"annotation": "Not an object."}, "data", "annotation must be an object")
    base_version = data.get("base_version")
    if base_version is not None and (not isinstance(base_version, int) or isinstance(base_version, bool)):
        raise validation_error({"base_version": "Not an int."}, "data", "base_version must be an integer")
    g.principal = user
    body = dict(body)
    raw_id = body.pop("id", None)
    annotation_id = _uuid({"id": raw_id}, "id") if raw_id is not None or op != "create" else None
    set_keyframes, delete_keyframes = keyframe_edits(body)
    also: list[tuple[str, dict]] = []  # more annotations a split or a merge changed
    with _session() as db:
        ann_session, _, video = load_session(db, user, session_id, write=True)
        try:
            if op == "create":
                existing = db.get(VideoAnnotation, annotation_id) if annotation_id else None
                if existing is not None:  # a retried create: answer with what exists, write nothing
                    if existing.annotation_session_id != session_id:
                        raise ApiError(409, "that annotation id belongs to another session")
                    return {"ok": True, "op": op, "annotation": annotation_dict(existing),
                            "version": existing.version, "duplicate": True}
                fields = AnnotationCreate().load({"annotation_session_id": str(session_id),
                                                  "video_id": str(ann_session.video_id), **body})
                fields["id"] = annotation_id
                annotation = create_annotation(db, user, fields)
                apply_keyframes(db, annotation, video, set_keyframes, [])
                payload = annotation_dict(annotation)
            else:
                current = db.get(VideoAnnotation, annotation_id)
                if current is None or current.annotation_session_id != session_id:
                    raise ApiError(404, "annotation not found in this session")
                if op == "update":
                    fields = AnnotationPatch().load(body)
                    fields.pop("base_version", None)
                    annotation = update_annotation(db, user, annotation_id, fields, base_version)
                    apply_keyframes(db, annotation, video, set_keyframes, delete_keyframes)
                    payload = annotation_dict(annotation)
                elif op == "split":
                    fields = SplitIn().load(body)
                    before, after = split_annotation(db, user, annotation_id, fields["frame_number"], base_version,
                                                     fields.get("new_id"))
                    payload, also = annotation_dict(before), [("create", annotation_dict(after))]
                elif op == "merge":
                    fields = MergeIn().load(body)
                    kept, gone = merge_annotations(db, user, annotation_id, fields["other_id"], base_version,
                                                   fields.get("other_base_version"))
                    payload, also = annotation_dict(kept), [("delete", gone)]
                else:
                    payload = delete_annotation(db, user, annotation_id, base_version)
        except ValidationError as exc:
            raise validation_error({"annotation": exc.messages}, "data") from None
        except EditConflict as exc:
            conflict = {"session_id": str(session_id), "annotation_id": str(annotation_id),
                        "base_version": base_version, "current": exc.current}
            socketio.emit(rooms.ANNOTATION_CONFLICT, conflict, to=request.sid)
            return {"ok": False, **error_body(409, "stale base_version", "annotation_conflict",
                                              {"current": exc.current})}
        audit(db, op, "annotation", payload["id"], {"via": "socket"})
        db.commit()
    for change, annotation in [("update" if op in ("split", "merge") else op, payload), *also]:
        broadcast(session_id, change, annotation, user, skip_sid=request.sid)
    return {"ok": True, "op": op, "annotation": payload, "version": payload.get("version"),
            "also": [{"op": change, "annotation": a} for change, a in also]}
