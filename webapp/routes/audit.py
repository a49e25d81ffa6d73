"""The audit log: who changed what, when, from where (administrators)."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from models import AuditLog

from ..auth import require_admin
from ..db import db_session, paginate
from ..schemas import AuditArgs, AuditPage

bp = Blueprint("audit", __name__, url_prefix="/api/audit", description="Audit log")


@bp.route("", methods=["GET"])
@bp.arguments(AuditArgs, location="query")
@bp.response(200, AuditPage)
def list_audit(args: dict[str, Any]) -> dict[str, Any]:
    """Newest first; filter by user, action, resource and time."""
    require_admin()
    stmt = select(AuditLog)
    for key in ("user_id", "action", "resource_type", "resource_id"):
        if key in args:
            stmt = stmt.where(getattr(AuditLog, key) == (str(args[key]) if key == "resource_id" else args[key]))
    if "since" in args:
        stmt = stmt.where(AuditLog.at >= args["since"])
    if "until" in args:
        stmt = stmt.where(AuditLog.at <= args["until"])
    return paginate(db_session(), stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc()), args["page"],
                    args["per_page"])
