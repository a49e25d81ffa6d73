"""Tokens, passwords and the permission checks shared by HTTP routes and Socket.IO rooms."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from flask import current_app, g, request
from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from models import Job, Project, ProjectMember, User, Video

from .db import db_session, parse_uuid
from .errors import ApiError

T = TypeVar("T")

ALGORITHM = "HS256"
WRITE_ROLES = ("admin", "annotator")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def verify_password(hashed: str, password: str) -> bool:
    return check_password_hash(hashed, password)


def issue_token(user: User) -> dict[str, Any]:
    settings = current_app.config["SETTINGS"]
    now = int(time.time())
    claims = {
        "sub": str(user.id), "role": user.role, "tv": user.token_version, "iat": now,
        "exp": now + settings.jwt_ttl_seconds, "jti": uuid.uuid4().hex, "typ": "access",
    }
    token = jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "Bearer", "expires_in": settings.jwt_ttl_seconds}


@dataclass(frozen=True)
class Principal:
    id: uuid.UUID
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def decode_token(token: str | None) -> dict[str, Any]:
    """Check a bearer token's signature and expiry; raise 401 with a reason a client can act on."""
    if not token:
        raise ApiError(401, "missing bearer token")
    try:
        claims = jwt.decode(token, current_app.config["SETTINGS"].secret_key, algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub", "iat", "jti"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token expired", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid token", code="invalid_token") from None
    try:
        uuid.UUID(claims["sub"])
    except (ValueError, TypeError):
        raise ApiError(401, "invalid token", code="invalid_token") from None
    if not isinstance(claims["jti"], str) or not claims["jti"]:  # logout and refresh revoke by jti
        raise ApiError(401, "invalid token", code="invalid_token")
    return claims


def principal_for_claims(session: Session, claims: dict[str, Any]) -> Principal:
    """The user a decoded token speaks for, as the database and the denylist say *now*."""
    if claims["exp"] < time.time():
        raise ApiError(401, "token expired", code="token_expired")
    user_id = uuid.UUID(claims["sub"])
    # Columns only: every authenticated request runs this, so skip the ORM identity map.
    row = session.execute(select(User.username, User.role, User.is_active, User.token_version)
                          .where(User.id == user_id)).first()
    if row is None or not row.is_active or claims.get("tv") != row.token_version:
        raise ApiError(401, "token no longer valid", code="invalid_token")
    if is_revoked(claims.get("jti")):
        raise ApiError(401, "token has been revoked (logged out)", code="invalid_token")
    return Principal(user_id, row.username, row.role)


def principal_from_token(session: Session, token: str | None) -> Principal:
    """Decode and check a bearer token; raise 401 with a reason a client can act on."""
    return principal_for_claims(session, decode_token(token))


def _denylist_key(jti: str) -> str:
    return f"denylist:{current_app.config['SETTINGS'].socketio_channel}:{jti}"


def revoke(claims: dict) -> None:
    """Deny this token until it would have expired anyway."""
    ttl = max(1, int(claims["exp"] - time.time()))
    current_app.extensions["redis"].set(_denylist_key(claims["jti"]), "1", ex=ttl)


def is_revoked(jti: str | None) -> bool:
    if not jti:
        return False
    try:
        return bool(current_app.extensions["redis"].exists(_denylist_key(jti)))
    except Exception:  # noqa: BLE001 - Redis down: tokens stay valid until they expire (fail open)
        return False


def token_claims(token: str) -> dict:
    return jwt.decode(token, current_app.config["SETTINGS"].secret_key, algorithms=[ALGORITHM])


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_user() -> Principal:
    user = g.get("principal")
    if user is None:  # pragma: no cover - routes are guarded by the before_request hook
        raise ApiError(401, "missing bearer token")
    return user


def require_admin() -> Principal:
    user = current_user()
    if not user.is_admin:
        raise ApiError(403, "administrator role required")
    return user


def require_writer() -> Principal:
    user = current_user()
    if user.role not in WRITE_ROLES:
        raise ApiError(403, "annotator or administrator role required")
    return user


def project_role(session: Session, user: Principal, project_id: uuid.UUID) -> str | None:
    """The user's effective role in a project: admins have ``admin`` everywhere."""
    if user.is_admin:
        return "admin"
    return session.scalar(
        select(ProjectMember.role).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user.id)
    )


def member_projects(user: Principal) -> Select[uuid.UUID]:
    """The ids of the projects the user is a member of, as a subquery for list filters."""
    return select(ProjectMember.project_id).where(ProjectMember.user_id == user.id)


def get_project_for(session: Session, user: Principal, project_id: uuid.UUID, write: bool = False,
                    manage: bool = False) -> Project:
    """Load a project the user may see (404 if absent, 403 if not a member or role too low)."""
    project = session.get(Project, project_id)
    if project is None:
        raise ApiError(404, "project not found")
    role = project_role(session, user, project_id)
    if role is None:
        raise ApiError(403, "not a member of this project")
    if manage and role != "admin":
        raise ApiError(403, "project administrator role required")
    if write and role not in WRITE_ROLES:
        raise ApiError(403, "annotator or administrator role required in this project")
    return project


#: The column naming who owns a row of no project (for rows that are not jobs).
_OWNER = {Video: "uploaded_by"}


def get_or_404(model: type[T], row_id: uuid.UUID | str, what: str, write: bool = False,
               session: Session | None = None, user: Principal | None = None) -> T:
    """Load a row the user may see (or, with ``write``, change): 404 when absent, 403 when not allowed.

    A job is its creator's and its project's members'; a row of a project follows the user's role
    in the project; any other row (an export, an import, a video in no project) is its owner's.
    Admins may see everything. ``session`` and ``user`` default to the request's.
    """
    session = session if session is not None else db_session()
    user = user if user is not None else current_user()
    if not isinstance(row_id, uuid.UUID):
        row_id = parse_uuid(row_id, what)
    row = session.get(model, row_id)
    if row is None:
        raise ApiError(404, f"{what} not found")
    if isinstance(row, Job):
        allowed = (can_change_job if write else can_see_job)(session, user, row)
    elif getattr(row, "project_id", None) is not None:
        get_project_for(session, user, row.project_id, write=write)
        allowed = True
    else:
        allowed = user.is_admin or str(getattr(row, _OWNER.get(model, "created_by"))) == str(user.id)
    if not allowed:
        raise ApiError(403, f"not allowed to {'change' if write else 'see'} this {what}")
    return row


def can_see_job(session: Session, user: Principal, job: Job) -> bool:
    if user.is_admin or job.created_by == user.id:
        return True
    return job.project_id is not None and project_role(session, user, job.project_id) is not None


def can_change_job(session: Session, user: Principal, job: Job) -> bool:
    if user.is_admin or job.created_by == user.id:
        return True
    return job.project_id is not None and project_role(session, user, job.project_id) in WRITE_ROLES
