"""Per-process resources of a worker: one database engine and one Socket.IO emitter.

Created lazily and recreated after fork, so a prefork child never shares its parent's
connections.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from models import Database
from settings import Settings, cached_settings, redis_url

if TYPE_CHECKING:
    from redis import Redis
    from socketio import RedisManager

    from .lifecycle import HeartbeatService

log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict = {}


def _fresh() -> dict:
    if _state.get("pid") != os.getpid():
        with _lock:
            if _state.get("pid") != os.getpid():
                _state.clear()
                _state["pid"] = os.getpid()
    return _state


def settings() -> Settings:
    """Settings read once per process (workers are started with their environment)."""
    return cached_settings()


def database() -> Database:
    state = _fresh()
    if "db" not in state:
        state["db"] = Database(settings().database_url)
    return state["db"]


def heartbeats(service_class: type[HeartbeatService]) -> HeartbeatService:
    """The process's heartbeat thread, started on first use (after fork, a new one)."""
    state = _fresh()
    if "heartbeats" not in state:
        service = service_class(database(), settings().heartbeat_seconds)
        service.start()
        state["heartbeats"] = service
    return state["heartbeats"]


def redis_client() -> Redis:
    """The process's Redis client (the broker's server), for short best-effort reads."""
    state = _fresh()
    if "redis" not in state:
        import redis

        state["redis"] = redis.Redis.from_url(redis_url(), socket_timeout=2, socket_connect_timeout=2)
    return state["redis"]


def emitter() -> RedisManager:
    """A write-only Socket.IO client manager: emits reach the web app through Redis."""
    state = _fresh()
    if "emitter" not in state:
        import socketio

        state["emitter"] = socketio.RedisManager(
            redis_url(), channel=settings().socketio_channel, write_only=True, logger=False
        )
    return state["emitter"]


def emit(event: str, data: dict, room: str) -> bool:
    """Best effort: the database is the source of truth, so a lost event is tolerable."""
    try:
        emitter().emit(event, data, room=room, namespace="/")
        return True
    except Exception as exc:  # noqa: BLE001 - Redis down must not fail the job
        log.warning("could not emit %s to %s: %s", event, room, exc)
        return False


def reset() -> None:
    """Forget resources (after fork, or in tests that change the environment)."""
    db = _state.get("db")
    if db is not None and _state.get("pid") == os.getpid():
        db.dispose()
    _state.clear()
