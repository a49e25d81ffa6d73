"""Tokens and health: the only routes that need no token."""
from __future__ import annotations

import redis as redis_lib
from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import select, text

from models import User, current_revision, head_revision

from ..auth import issue_token, verify_password
from ..db import audit, database, db_session
from ..errors import ApiError
from ..schemas import TokenIn, TokenOut

bp = Blueprint("auth", __name__, url_prefix="/api", description="Authentication and health")

# Compared against when the user does not exist, so both paths cost one slow hash.
_DUMMY_HASH = "scrypt:32768:8:1$0000000000000000$" + "0" * 128


@bp.route("/auth/token", methods=["POST"])
@bp.arguments(TokenIn)
@bp.response(200, TokenOut)
def token(data):
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


@bp.route("/health", methods=["GET"])
def health():
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
