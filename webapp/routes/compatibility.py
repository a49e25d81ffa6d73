"""Video compatibility, project requirements and video-to-project assignment.

Requirement scoring: each requirement scores in [0, 1] — 1 inside its bounds, falling
linearly to 0 one soft margin outside them (the margin is a quarter of the ``min``–``max``
range, or of the bound's magnitude when only one bound is given); ``equals`` on a number is a
zero-width range; categorical ``equals``/``in`` score 1 or 0; an unmeasured feature scores 0.
A video's score for a project is the weighted mean over the project's requirements.
"""
from __future__ import annotations

import statistics
import uuid
from collections.abc import Sequence
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from compatibility import RequirementError, parse_requirement, score_matrix
from compatibility.scoring import requirement_scores
from models import Job, ProjectRequirement, ProjectVideoAssignment, Video, VideoCompatibilityCache, utcnow
from tasks.compatibility import ALGORITHM_VERSION
from tasks.dispatch import create_job

from ..auth import current_user, get_or_404, get_project_for
from ..db import audit, db_session, parse_uuid
from ..errors import ApiError, validation_error
from ..realtime import submit
from ..schemas import (
    AssignmentOut,
    AssignmentsIn,
    IntelligentIn,
    JobOut,
    RequirementIn,
    RequirementOut,
    RequirementPatch,
)

bp = Blueprint("compatibility", __name__, url_prefix="/api", description="Compatibility and assignment")


def _video_for(video_id: uuid.UUID | str, write: bool = False) -> Video:
    return get_or_404(Video, video_id, "video", write=write)


def _checked(requirement_type: str, value: object, weight: object) -> None:
    try:
        parse_requirement(requirement_type, value, weight)
    except RequirementError as exc:
        raise validation_error({exc.field: str(exc)}) from None


# ------------------------------------------------------------------------------ features


@bp.route("/videos/<video_id>/compatibility/analyze", methods=["POST"])
@bp.response(202, JobOut)
def analyze_video(video_id: str) -> tuple[Job, int, dict[str, str]]:
    """Measure the video's features on the CPU pool (reused while the video is unchanged)."""
    db, user = db_session(), current_user()
    video = _video_for(video_id, write=True)
    job = create_job(db, "compatibility", {"video_id": str(video.id)}, project_id=video.project_id,
                     created_by=user.id)
    audit(db, "create", "job", job.id, {"kind": "compatibility", "video_id": str(video.id)})
    return submit(db, job)


@bp.route("/videos/<video_id>/compatibility", methods=["GET"])
def video_compatibility(video_id: str) -> dict[str, Any]:
    video = _video_for(video_id)
    cache = db_session().scalar(select(VideoCompatibilityCache).where(VideoCompatibilityCache.video_id == video.id))
    if cache is None:
        raise ApiError(404, "not analyzed yet: POST /api/videos/{id}/compatibility/analyze")
    return {"video_id": str(video.id), "features": cache.compatibility_vector,
            "extractor_version": cache.extractor_version, "current": cache.video_checksum == video.checksum,
            "last_updated": cache.last_updated.isoformat()}


# ------------------------------------------------------------------------------ requirements


@bp.route("/projects/<project_id>/requirements", methods=["POST"])
@bp.arguments(RequirementIn)
@bp.response(201, RequirementOut)
def create_requirement(data: dict[str, Any], project_id: str) -> ProjectRequirement:
    db, user = db_session(), current_user()
    project = get_project_for(db, user, parse_uuid(project_id, "project"), write=True)
    _checked(data["requirement_type"], data["requirement_value"], data["weight"])
    req = ProjectRequirement(project_id=project.id, requirement_type=data["requirement_type"],
                             requirement_value=data["requirement_value"], weight=float(data["weight"]))
    db.add(req)
    db.flush()
    audit(db, "create", "requirement", req.id, {"project_id": str(project.id)})
    db.commit()
    return req


@bp.route("/projects/<project_id>/requirements", methods=["GET"])
@bp.response(200, RequirementOut(many=True))
def list_requirements(project_id: str) -> Sequence[ProjectRequirement]:
    db, user = db_session(), current_user()
    project = get_project_for(db, user, parse_uuid(project_id, "project"))
    return db.scalars(select(ProjectRequirement).where(ProjectRequirement.project_id == project.id)
                      .order_by(ProjectRequirement.created_at)).all()


def _requirement(project_id: str, requirement_id: str, write: bool) -> ProjectRequirement:
    db, user = db_session(), current_user()
    project = get_project_for(db, user, parse_uuid(project_id, "project"), write=write)
    req = db.get(ProjectRequirement, parse_uuid(requirement_id, "requirement"))
    if req is None or req.project_id != project.id:
        raise ApiError(404, "requirement not found")
    return req


@bp.route("/projects/<project_id>/requirements/<requirement_id>", methods=["GET"])
@bp.response(200, RequirementOut)
def get_requirement(project_id: str, requirement_id: str) -> ProjectRequirement:
    return _requirement(project_id, requirement_id, write=False)


@bp.route("/projects/<project_id>/requirements/<requirement_id>", methods=["PATCH"])
@bp.arguments(RequirementPatch)
@bp.response(200, RequirementOut)
def patch_requirement(data: dict[str, Any], project_id: str, requirement_id: str) -> ProjectRequirement:
    req = _requirement(project_id, requirement_id, write=True)
    merged = {"requirement_type": req.requirement_type, "requirement_value": req.requirement_value,
              "weight": req.weight} | data
    _checked(merged["requirement_type"], merged["requirement_value"], merged["weight"])
    req.requirement_type, req.requirement_value = merged["requirement_type"], merged["requirement_value"]
    req.weight = float(merged["weight"])
    audit(db_session(), "update", "requirement", req.id)
    db_session().commit()
    return req


@bp.route("/projects/<project_id>/requirements/<requirement_id>", methods=["DELETE"])
@bp.response(204)
def delete_requirement(project_id: str, requirement_id: str) -> None:
    req = _requirement(project_id, requirement_id, write=True)
    audit(db_session(), "delete", "requirement", req.id)
    db_session().delete(req)
    db_session().commit()


# ------------------------------------------------------------------------------ assignment


@bp.route("/projects/<project_id>/assignments/intelligent", methods=["POST"])
@bp.arguments(IntelligentIn)
@bp.response(202, JobOut)
def intelligent_assignment(data: dict[str, Any], project_id: str) -> tuple[Job, int, dict[str, str]]:
    """Propose assignments (a job): candidates are the unassigned videos you can see, or ``candidate_videos``.

    Every video goes to at most one project and every project gets at most its
    ``wanted_videos`` (minus those it has), maximising the total score over the projects in
    ``project_ids`` (default: this one). Proposals are in the job's result.
    """
    db, user = db_session(), current_user()
    project = get_project_for(db, user, parse_uuid(project_id, "project"), write=True)
    project_ids = [project.id] + [p for p in data.get("project_ids", []) if p != project.id]
    for pid in project_ids[1:]:
        get_project_for(db, user, pid)
    if "candidate_videos" in data:
        candidates = [str(_video_for(str(v)).id) for v in data["candidate_videos"]]
    else:
        stmt = select(Video.id).where(Video.project_id.is_(None))
        if not user.is_admin:
            stmt = stmt.where(Video.uploaded_by == user.id)
        candidates = [str(v) for v in db.scalars(stmt.order_by(Video.created_at))]
    job = create_job(db, "assignment", {"project_ids": [str(p) for p in project_ids], "candidate_videos": candidates,
                                        "threshold": data["threshold"]}, project_id=project.id, created_by=user.id)
    audit(db, "create", "job", job.id, {"kind": "assignment", "candidates": len(candidates)})
    return submit(db, job)


@bp.route("/projects/<project_id>/assignments", methods=["POST"])
@bp.arguments(AssignmentsIn)
@bp.response(200, AssignmentOut(many=True))
def execute_assignments(data: dict[str, Any], project_id: str) -> list[ProjectVideoAssignment]:
    """Assign videos to this project in one transaction (manually, or from a job's proposals).

    A video already assigned here is left as it is (executing twice changes nothing); a video
    assigned to another project is a conflict (409) and nothing is written.
    """
    db, user = db_session(), current_user()
    project = get_project_for(db, user, parse_uuid(project_id, "project"), write=True)
    items = data.get("assignments")
    assignment_type = data["assignment_type"]
    if "from_job" in data:
        job = db.get(Job, data["from_job"])
        if job is None or job.kind != "assignment" or job.status != "completed":
            raise validation_error({"from_job": "Not a completed assignment job."},
                                   message="from_job must be a completed assignment job")
        items = [{"video_id": parse_uuid(p["video_id"], "video"), "compatibility_score": p["compatibility_score"],
                  "assignment_reason": p["assignment_reason"], "confidence": p["confidence"]}
                 for p in job.result["proposals"] if p["project_id"] == str(project.id)]
        assignment_type = "intelligent"
    if not items:
        raise validation_error({"assignments": "Empty."}, message="nothing to assign")
    rows, conflicts = [], []
    for item in items:
        video = _video_for(str(item["video_id"]))
        existing = db.scalar(select(ProjectVideoAssignment).where(
            ProjectVideoAssignment.video_id == video.id, ProjectVideoAssignment.status == "active"))
        if existing is not None and existing.project_id == project.id:
            rows.append(existing)
            continue
        if existing is not None or (video.project_id not in (None, project.id)):
            conflicts.append({"video_id": str(video.id),
                              "project_id": str(existing.project_id if existing else video.project_id)})
            continue
        row = ProjectVideoAssignment(
            project_id=project.id, video_id=video.id, assignment_type=assignment_type,
            compatibility_score=item["compatibility_score"], assignment_reason=item["assignment_reason"],
            assigned_by=str(user.id), assigned_at=utcnow(), status="active",
            meta={"algorithm_version": ALGORITHM_VERSION, "confidence": item.get("confidence"),
                  "from_job": str(data["from_job"]) if "from_job" in data else None})
        db.add(row)
        video.project_id = project.id
        rows.append(row)
    if conflicts:
        db.rollback()
        raise ApiError(409, "some videos are assigned to another project", details={"conflicts": conflicts})
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise ApiError(409, "a video was assigned concurrently; retry") from None
    audit(db, "assign", "project", project.id, {"videos": [str(r.video_id) for r in rows], "type": assignment_type})
    db.commit()
    return rows


@bp.route("/projects/<project_id>/assignments", methods=["GET"])
@bp.response(200, AssignmentOut(many=True))
def list_assignments(project_id: str) -> Sequence[ProjectVideoAssignment]:
    db, user = db_session(), current_user()
    project = get_project_for(db, user, parse_uuid(project_id, "project"))
    return db.scalars(select(ProjectVideoAssignment).where(ProjectVideoAssignment.project_id == project.id)
                      .order_by(ProjectVideoAssignment.assigned_at)).all()


@bp.route("/projects/<project_id>/assignments/analysis", methods=["GET"])
def assignment_analysis(project_id: str) -> dict[str, Any]:
    """How well the assigned videos cover the project's requirements."""
    db, user = db_session(), current_user()
    project = get_project_for(db, user, parse_uuid(project_id, "project"))
    reqs = db.scalars(select(ProjectRequirement).where(ProjectRequirement.project_id == project.id)
                      .order_by(ProjectRequirement.created_at)).all()
    video_ids = db.scalars(select(ProjectVideoAssignment.video_id).where(
        ProjectVideoAssignment.project_id == project.id, ProjectVideoAssignment.status == "active")).all()
    vectors = dict(db.execute(select(VideoCompatibilityCache.video_id, VideoCompatibilityCache.compatibility_vector)
                              .where(VideoCompatibilityCache.video_id.in_(video_ids))).all())
    measured = [vectors[v] for v in video_ids if v in vectors]
    parsed = [parse_requirement(r.requirement_type, r.requirement_value, r.weight) for r in reqs]
    per_req = requirement_scores(measured, parsed) if measured else None
    total = score_matrix(measured, [parsed])[0] if measured else None
    coverage = []
    for i, r in enumerate(reqs):
        met = int((per_req[:, i] >= 1.0).sum()) if measured else 0
        coverage.append({"requirement_id": str(r.id), "requirement_type": r.requirement_type,
                         "requirement_value": r.requirement_value, "videos_meeting": met,
                         "share_meeting": round(met / len(measured), 4) if measured else 0.0,
                         "mean_score": round(float(per_req[:, i].mean()), 4) if measured else None})
    scores = sorted(float(s) for s in total[:, 0]) if measured else []
    distribution = {"count": len(scores)}
    if scores:
        distribution.update(min=round(scores[0], 4), median=round(statistics.median(scores), 4),
                            mean=round(statistics.fmean(scores), 4), max=round(scores[-1], 4),
                            histogram=[sum(1 for s in scores if lo <= s < lo + 0.1 or (lo >= 0.9 and s == 1.0))
                                       for lo in (i / 10 for i in range(10))])
    return {"project_id": str(project.id), "assigned_videos": len(video_ids), "measured_videos": len(measured),
            "wanted_videos": project.wanted_videos, "coverage": coverage, "score_distribution": distribution,
            "unmet_requirements": [c for c in coverage if c["videos_meeting"] == 0]}

