"""Changes of a user's rights, made known to every web process while its sockets stay open.

Every change that can shrink what a user may do (logout or refresh, password change,
deactivation, role change, a membership added, changed or removed, a project deleted)
calls :func:`rights_changed` after its commit. That bumps a per-user version in Redis, which
Socket.IO handlers compare on every event (reloading the user from the database only when
it moved), and publishes a notice that every web process's :func:`listen` loop turns into a
re-check of that user's local sockets (leave the rooms it lost, disconnect a revoked token).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import redis as redis_lib
from flask import Flask, current_app

log = logging.getLogger(__name__)

#: Passed to the listener's callback when notices may have been missed (Redis came back):
#: every local socket is re-checked.
EVERYONE = "*"


def _version_key(user_id: uuid.UUID | str) -> str:
    return f"rights:{current_app.config['SETTINGS'].socketio_channel}:{user_id}"


def notice_channel(app: Flask) -> str:
    return f"{app.config['SETTINGS'].socketio_channel}:rights"


def bump_versions(*user_ids: uuid.UUID | str) -> None:
    """Move the users' rights versions: their sockets reload them on their next event."""
    pipe = current_app.extensions["redis"].pipeline(transaction=False)
    for user_id in user_ids:
        pipe.incr(_version_key(user_id))
    pipe.execute()


def rights_changed(*user_ids: uuid.UUID | str) -> None:
    """Call after committing a change of these users' rights: bump their versions and tell
    every web process to re-check their sockets now."""
    if not user_ids:
        return
    try:
        bump_versions(*user_ids)
        r = current_app.extensions["redis"]
        for user_id in user_ids:
            r.publish(notice_channel(current_app), str(user_id))
    except redis_lib.RedisError as exc:  # sockets then re-check on every event (no version readable)
        log.warning("could not announce a change of rights: %s", exc)


def rights_version(user_id: uuid.UUID | str) -> int | None:
    """The user's rights version; ``None`` when Redis cannot say (then callers reload every time)."""
    try:
        return int(current_app.extensions["redis"].get(_version_key(user_id)) or 0)
    except redis_lib.RedisError:
        return None


def listen(app: Flask, recheck: Callable[[str], None], sleep: Callable[[float], None]) -> None:
    """Background loop of a web process: call ``recheck(user_id)`` for every notice.

    After a lost connection to Redis, notices may have been missed: ``recheck(EVERYONE)``.
    """
    client = redis_lib.Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5,
                                      health_check_interval=30)
    channel = notice_channel(app)
    missed = False
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            if missed:
                _run(app, recheck, EVERYONE)
                missed = False
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "message":
                    _run(app, recheck, message["data"].decode())
        except redis_lib.RedisError as exc:
            if not missed:  # once per outage
                log.warning("rights notices unavailable (%s); sockets re-check on every event", exc)
            missed = True
            sleep(1.0)
        finally:
            try:
                pubsub.close()
            except redis_lib.RedisError:
                pass


def _run(app: Flask, recheck: Callable[[str], None], user_id: str) -> None:
    with app.app_context():
        try:
            recheck(user_id)
        except Exception:  # noqa: BLE001 - one bad re-check must not stop the listener
            log.exception("re-checking the sockets of %s failed", user_id)
