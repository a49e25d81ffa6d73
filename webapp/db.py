"""The request's database session and the small helpers routes share."""
from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, g, request
from sqlalchemy import Select, event, func, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from models import AuditLog, Database


class UnauditedWrite(RuntimeError):
    """A request tried to commit a change to data without recording it in the audit log."""


def _changed_tables(session: Session) -> set[str]:
    changed = set()
    for obj in (*session.new, *session.deleted):
        if not isinstance(obj, AuditLog):
            changed.add(type(obj).__tablename__)
    for obj in session.dirty:
        if not isinstance(obj, AuditLog) and session.is_modified(obj, include_collections=False):
            changed.add(type(obj).__tablename__)
    return changed


@event.listens_for(Session, "before_flush")
def _note_changes(session: Session, _context: UOWTransaction, _instances: object) -> None:
    if not session.info.get("audited_request"):
        return
    session.info.setdefault("changed", set()).update(_changed_tables(session))
    if any(isinstance(obj, AuditLog) for obj in session.new):
        session.info["audit_recorded"] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_changes(state: ORMExecuteState) -> None:
    session = state.session
    if session.info.get("audited_request") and (state.is_update or state.is_delete or state.is_insert):
        table = getattr(state.statement, "table", None)
        name = getattr(table, "name", "?")
        if name == AuditLog.__tablename__:
            session.info["audit_recorded"] = True
        else:
            session.info.setdefault("changed", set()).add(name)


@event.listens_for(Session, "before_commit")
def _require_audit(session: Session) -> None:
    """Every commit of a request that changed data must carry its audit record: no path skips it."""
    if not session.info.get("audited_request"):
        return
    session.flush()
    changed = session.info.get("changed") or set()
    if changed and not session.info.get("audit_recorded"):
        raise UnauditedWrite(f"request changed {sorted(changed)} without an audit record")


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _reset_audit(session: Session) -> None:
    session.info.pop("changed", None)
    session.info.pop("audit_recorded", None)


def database() -> Database:
    return current_app.extensions["database"]


def db_session() -> Session:
    """One session per request, closed (and rolled back if uncommitted) at teardown."""
    if "db_session" not in g:
        g.db_session = database().Session()
        g.db_session.info["audited_request"] = True
    return g.db_session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def paginate(session: Session, stmt: Select, page: int, per_page: int) -> dict[str, Any]:
    """``{"items", "total", "page", "per_page"}`` for any select of ORM entities."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def row_view(row: object, **computed: object) -> dict[str, Any]:
    """A row's mapped columns plus values computed for the response, for a response schema to
    dump: computed values never become attributes of the ORM object."""
    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs} | computed


def audit(session: Session, action: str, resource_type: str, resource_id: object = None,
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
