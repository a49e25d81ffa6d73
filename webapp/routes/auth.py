"""Tokens and health: the only routes that need no token."""
from __future__ import annotations

from typing import Any

import redis as redis_lib
from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import select, text

from models import User, current_revision, head_revision

from ..auth import bearer_token, current_user, issue_token, revoke, token_claims, verify_password
from ..db import audit, database, db_session
from ..errors import ApiError
from ..extensions import limiter
from ..rights import rights_changed
from ..schemas import TokenIn, TokenOut

bp = Blueprint("auth", __name__, url_prefix="/api", description="Authentication and health")

# Compared against when the user does not exist, so both paths cost one slow hash.
_DUMMY_HASH = "scrypt:32768:8:1$0000000000000000$" + "0" * 128


def _login_key() -> str:
    """Per client address and username, so one attacker cannot lock everybody out."""
    from flask import request

    body = request.get_json(silent=True) or {}
    name = body.get("username") if isinstance(body, dict) else None
    return f"login:{request.remote_addr}:{name if isinstance(name, str) else ''}"


@bp.route("/auth/token", methods=["POST"])
@limiter.limit(lambda: current_app.config["SETTINGS"].rate_limit_login, key_func=_login_key)
@bp.arguments(TokenIn)
@bp.response(200, TokenOut)
def token(data: dict[str, Any]) -> dict[str, Any]:
    """Exchange a username and password for a bearer token."""
    session = db_session()
    user = session.scalar(select(User).where(User.username == data["username"]))
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, data["password"])
    if user is None or not ok or not user.is_active:
        raise ApiError(401, "invalid username or password", code="invalid_credentials")
    from flask import g

    from ..auth import Principal

    g.principal = Principal(user.id, user.username, user.role)
    audit(session, "login", "user", user.id)
    session.commit()
    return issue_token(user)


@bp.route("/auth/refresh", methods=["POST"])
@bp.response(200, TokenOut)
def refresh() -> dict[str, Any]:
    """A fresh token for the caller; the presented one is revoked."""
    user = current_user()
    session = db_session()
    revoke(token_claims(bearer_token()))
    rights_changed(user.id)  # sockets opened with the old token are disconnected
    return issue_token(session.get(User, user.id))


@bp.route("/auth/logout", methods=["POST"])
@bp.response(204)
def logout() -> None:
    """Revoke the presented token (kept in a Redis denylist until it would expire)."""
    revoke(token_claims(bearer_token()))
    audit(db_session(), "logout", "user", current_user().id)
    db_session().commit()
    rights_changed(current_user().id)  # sockets opened with this token are disconnected


@bp.route("/health", methods=["GET"])
@limiter.exempt
def health() -> tuple[dict[str, Any], int]:
    """Database and Redis reachability; 503 when the database is down."""
    checks: dict[str, str] = {}
    status = 200
    try:
        with database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            rev = current_revision(conn.engine)
        checks["database"] = "ok" if rev == head_revision() else f"schema at {rev}, expected {head_revision()}"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"unavailable: {type(exc).__name__}"
        status = 503
    try:
        redis_lib.Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=1,
                                 socket_connect_timeout=1).ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - jobs still queue in the outbox
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    return {"status": "ok" if status == 200 else "degraded", "checks": checks}, status
