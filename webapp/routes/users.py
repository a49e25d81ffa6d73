"""User administration (admins) and the caller's own record."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import User

from ..auth import current_user, hash_password, require_admin
from ..db import audit, db_session, paginate, parse_uuid
from ..errors import ApiError
from ..rights import rights_changed
from ..schemas import PageArgs, UserCreate, UserOut, UserPage, UserPatch

bp = Blueprint("users", __name__, url_prefix="/api/users", description="Users and roles")


@bp.route("", methods=["POST"])
@bp.arguments(UserCreate)
@bp.response(201, UserOut)
def create_user(data: dict[str, Any]) -> User:
    require_admin()
    session = db_session()
    user = User(username=data["username"], password_hash=hash_password(data["password"]), role=data["role"])
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, "username already taken", details={"field": "username"}) from None
    audit(session, "create", "user", user.id, {"username": user.username, "role": user.role})
    session.commit()
    return user


@bp.route("", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, UserPage)
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    require_admin()
    return paginate(db_session(), select(User).order_by(User.created_at, User.id), args["page"], args["per_page"])


@bp.route("/me", methods=["GET"])
@bp.response(200, UserOut)
def me() -> User | None:
    return db_session().get(User, current_user().id)


@bp.route("/<user_id>", methods=["PATCH"])
@bp.arguments(UserPatch)
@bp.response(200, UserOut)
def patch_user(data: dict[str, Any], user_id: str) -> User:
    require_admin()
    session = db_session()
    user = session.get(User, parse_uuid(user_id, "user"))
    if user is None:
        raise ApiError(404, "user not found")
    if "password" in data:
        user.password_hash = hash_password(data.pop("password"))
        user.token_version += 1  # tokens issued before the change stop working
    if data.get("is_active") is False or ("role" in data and data["role"] != user.role):
        user.token_version += 1
    for key, value in data.items():
        setattr(user, key, value)
    audit(session, "update", "user", user.id, {k: v for k, v in data.items()})
    session.commit()
    rights_changed(user.id)  # open sockets re-check at once, on every web process
    return user
