"""Compatibility jobs: measure a video (cached), and propose video-to-project assignments."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from compatibility import EXTRACTOR_VERSION, assign, content_features, explain, parse_requirement, score_matrix
from compatibility.scoring import requirement_scores
from models import Project, ProjectRequirement, ProjectVideoAssignment, Video, VideoCompatibilityCache, utcnow
from storage import video_file

from . import runtime
from .app import app
from .lifecycle import JobContext, run_job

ALGORITHM_VERSION = "1"


def metadata_features(video: Video) -> dict[str, Any]:
    return {"width": video.width, "height": video.height, "pixels": video.width * video.height,
            "resolution": f"{video.width}x{video.height}", "fps": video.fps, "duration": video.duration,
            "frame_count": video.frame_count, "codec": video.codec, "variable_frame_rate": video.variable_frame_rate}


def video_features(db: Session, video: Video, progress: Callable[[float], None] | None = None
                   ) -> tuple[dict[str, Any], bool]:
    """The video's features from the cache while extractor version and checksum match, else measured."""
    cache = db.scalar(select(VideoCompatibilityCache).where(VideoCompatibilityCache.video_id == video.id))
    if cache is not None and cache.extractor_version == EXTRACTOR_VERSION and cache.video_checksum == video.checksum:
        return cache.compatibility_vector, True
    path = video_file(video)
    vector = {**metadata_features(video),
              **content_features(path, video.frame_count, video.duration, progress=progress),
              "extractor_version": EXTRACTOR_VERSION}
    if cache is None:
        cache = VideoCompatibilityCache(video_id=video.id)
        db.add(cache)
    cache.compatibility_vector = vector
    cache.extractor_version = EXTRACTOR_VERSION
    cache.video_checksum = video.checksum
    cache.last_updated = utcnow()
    try:
        db.commit()
    except IntegrityError:  # measured concurrently by another job: theirs is as good
        db.rollback()
    return vector, False


def analyze_body(ctx: JobContext) -> dict[str, Any]:
    with runtime.database().Session() as db:
        video = db.get(Video, uuid.UUID(ctx.params["video_id"]))
        if video is None:
            raise ValueError(f"video {ctx.params['video_id']} no longer exists")
        ctx.progress(0, "measuring frames")
        features, cached = video_features(db, video, lambda f: ctx.progress(95 * f, "measuring frames"))
    ctx.progress(100, "stored")
    return {"video_id": str(video.id), "cached": cached, "features": features}


def assignment_body(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    threshold = float(params.get("threshold", 0.6))
    with runtime.database().Session() as db:
        project_ids = [uuid.UUID(p) for p in params["project_ids"]]
        projects = [db.get(Project, p) for p in project_ids]
        projects = [p for p in projects if p is not None]
        videos = [db.get(Video, uuid.UUID(v)) for v in params["candidate_videos"]]
        videos = [v for v in videos if v is not None]
        ctx.progress(0, f"measuring {len(videos)} candidate videos")
        features = []
        for i, video in enumerate(videos):
            vector, _ = video_features(db, video)
            features.append(vector)
            ctx.progress(80 * (i + 1) / max(1, len(videos)), f"measured {i + 1}/{len(videos)} videos")
        requirements = [[parse_requirement(r.requirement_type, r.requirement_value, r.weight)
                         for r in db.scalars(select(ProjectRequirement)
                                             .where(ProjectRequirement.project_id == p.id)
                                             .order_by(ProjectRequirement.created_at))] for p in projects]
        assigned = dict(db.execute(select(ProjectVideoAssignment.project_id, func.count())
                                   .where(ProjectVideoAssignment.status == "active",
                                          ProjectVideoAssignment.project_id.in_(project_ids))
                                   .group_by(ProjectVideoAssignment.project_id)).all())
    ctx.progress(85, "scoring")
    total, _ = score_matrix(features, requirements)
    capacities = [None if p.wanted_videos is None else max(0, p.wanted_videos - assigned.get(p.id, 0))
                  for p in projects]
    ctx.progress(90, "solving the assignment")
    proposals = []
    for prop in assign(total, capacities, threshold):
        reqs = requirements[prop.project]
        breakdown, reason = explain(features[prop.video], reqs, requirement_scores([features[prop.video]], reqs)[0])
        proposals.append({"video_id": str(videos[prop.video].id), "project_id": str(projects[prop.project].id),
                          "compatibility_score": round(prop.score, 4), "assignment_reason": reason,
                          "confidence": prop.confidence, "breakdown": breakdown})
    return {"proposals": proposals, "candidates": len(videos), "projects": len(projects), "threshold": threshold,
            "capacities": {str(p.id): c for p, c in zip(projects, capacities, strict=True)},
            "algorithm_version": ALGORITHM_VERSION}


@app.task(name="jobs.compatibility", bind=True)
def compatibility(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, analyze_body)


@app.task(name="jobs.assignment", bind=True)
def assignment(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, assignment_body)
