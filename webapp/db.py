"""The request's database session and the small helpers routes share."""
from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, g, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import AuditLog, Database


def database() -> Database:
    return current_app.extensions["database"]


def db_session() -> Session:
    """One session per request, closed (and rolled back if uncommitted) at teardown."""
    if "db_session" not in g:
        g.db_session = database().Session()
    return g.db_session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def paginate(session: Session, stmt, page: int, per_page: int) -> dict[str, Any]:
    """``{"items", "total", "page", "per_page"}`` for any select of ORM entities."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def audit(session: Session, action: str, resource_type: str, resource_id: Any = None,
          details: dict | None = None) -> None:
    """Record who changed what, in the same transaction as the change itself."""
    principal = g.get("principal")
    session.add(AuditLog(
        user_id=principal.id if principal else None,
        username=principal.username if principal else None,
        action=action, resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else None,
        details=details or {}, ip=request.remote_addr,
    ))


def parse_uuid(value: str, what: str) -> uuid.UUID:
    from .errors import ApiError

    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        raise ApiError(404, f"{what} not found") from None
