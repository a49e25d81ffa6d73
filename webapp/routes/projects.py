"""Projects, their label sets and their members."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from models import DEFAULT_LABELS, Project, ProjectMember, User

from ..auth import current_user, get_project_for, project_role, require_writer
from ..db import audit, db_session, paginate, parse_uuid, row_view
from ..errors import ApiError, validation_error
from ..rights import rights_changed
from ..schemas import MemberIn, MemberOut, MemberPage, PageArgs, ProjectCreate, ProjectOut, ProjectPage, ProjectPatch

bp = Blueprint("projects", __name__, url_prefix="/api/projects", description="Projects and membership")


def _with_role(project: Project, role: str | None) -> dict:
    return row_view(project, my_role=role)


@bp.route("", methods=["POST"])
@bp.arguments(ProjectCreate)
@bp.response(201, ProjectOut)
def create_project(data: dict[str, Any]) -> dict[str, Any]:
    """Create a project; its creator becomes its administrator."""
    user = require_writer()
    session = db_session()
    project = Project(name=data["name"], description=data["description"],
                      camera_metadata=data["camera_metadata"], labels=data.get("labels") or list(DEFAULT_LABELS),
                      wanted_videos=data.get("wanted_videos"), created_by=user.id)
    session.add(project)
    session.flush()
    session.add(ProjectMember(project_id=project.id, user_id=user.id, role="admin"))
    audit(session, "create", "project", project.id, {"name": project.name})
    session.commit()
    return _with_role(project, "admin")


@bp.route("", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, ProjectPage)
def list_projects(args: dict[str, Any]) -> dict[str, Any]:
    user = current_user()
    session = db_session()
    stmt = select(Project).order_by(Project.created_at, Project.id)
    if not user.is_admin:
        stmt = stmt.join(ProjectMember, ProjectMember.project_id == Project.id).where(ProjectMember.user_id == user.id)
    page = paginate(session, stmt, args["page"], args["per_page"])
    roles = {} if user.is_admin else dict(session.execute(
        select(ProjectMember.project_id, ProjectMember.role)
        .where(ProjectMember.user_id == user.id, ProjectMember.project_id.in_([p.id for p in page["items"]]))).all())
    page["items"] = [_with_role(p, "admin" if user.is_admin else roles.get(p.id)) for p in page["items"]]
    return page


@bp.route("/<project_id>", methods=["GET"])
@bp.response(200, ProjectOut)
def get_project(project_id: str) -> dict[str, Any]:
    session, user = db_session(), current_user()
    project = get_project_for(session, user, parse_uuid(project_id, "project"))
    return _with_role(project, project_role(session, user, project.id))


@bp.route("/<project_id>", methods=["PATCH"])
@bp.arguments(ProjectPatch)
@bp.response(200, ProjectOut)
def patch_project(data: dict[str, Any], project_id: str) -> dict[str, Any]:
    session, user = db_session(), current_user()
    project = get_project_for(session, user, parse_uuid(project_id, "project"), manage=True)
    for key, value in data.items():
        setattr(project, key, value)
    audit(session, "update", "project", project.id, {"fields": sorted(data)})
    session.commit()
    return _with_role(project, project_role(session, user, project.id))


@bp.route("/<project_id>", methods=["DELETE"])
@bp.response(204)
def delete_project(project_id: str) -> None:
    session, user = db_session(), current_user()
    project = get_project_for(session, user, parse_uuid(project_id, "project"), manage=True)
    audit(session, "delete", "project", project.id, {"name": project.name})
    members = session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)).all()
    session.delete(project)
    session.commit()
    rights_changed(*members)


@bp.route("/<project_id>/members", methods=["POST"])
@bp.arguments(MemberIn)
@bp.response(201, MemberOut)
def add_member(data: dict[str, Any], project_id: str) -> dict[str, Any]:
    """Add a member or change a member's role (project administrators and admins)."""
    session, user = db_session(), current_user()
    project = get_project_for(session, user, parse_uuid(project_id, "project"), manage=True)
    if ("user_id" in data) == ("username" in data):
        raise validation_error({"user_id": "exactly one of user_id or username is required"},
                               message="give exactly one of user_id or username")
    if "user_id" in data:
        member_user = session.get(User, data["user_id"])
    else:
        member_user = session.scalar(select(User).where(User.username == data["username"]))
    if member_user is None:
        raise ApiError(404, "user not found")
    member = session.get(ProjectMember, (project.id, member_user.id))
    if member is None:
        member = ProjectMember(project_id=project.id, user_id=member_user.id, role=data["role"])
        session.add(member)
    else:
        member.role = data["role"]
    audit(session, "membership", "project", project.id, {"user_id": str(member_user.id), "role": data["role"]})
    session.commit()
    rights_changed(member_user.id)
    return {"project_id": project.id, "user_id": member_user.id, "username": member_user.username,
            "role": member.role}


@bp.route("/<project_id>/members", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, MemberPage)
def list_members(args: dict[str, Any], project_id: str) -> dict[str, Any]:
    session, user = db_session(), current_user()
    project = get_project_for(session, user, parse_uuid(project_id, "project"))
    stmt = (select(ProjectMember).where(ProjectMember.project_id == project.id)
            .order_by(ProjectMember.created_at, ProjectMember.user_id))
    page = paginate(session, stmt, args["page"], args["per_page"])
    page["items"] = [{"project_id": m.project_id, "user_id": m.user_id, "username": m.user.username,
                      "role": m.role} for m in page["items"]]
    return page


@bp.route("/<project_id>/members/<user_id>", methods=["DELETE"])
@bp.response(204)
def remove_member(project_id: str, user_id: str) -> None:
    session, user = db_session(), current_user()
    project = get_project_for(session, user, parse_uuid(project_id, "project"), manage=True)
    member = session.get(ProjectMember, (project.id, parse_uuid(user_id, "member")))
    if member is None:
        raise ApiError(404, "member not found")
    audit(session, "membership", "project", project.id, {"user_id": user_id, "removed": True})
    member_id = member.user_id
    session.delete(member)
    session.commit()
    rights_changed(member_id)  # its sockets leave the project's rooms


