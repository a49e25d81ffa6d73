"""HTTP blueprints, one per resource."""
from . import (
    annotations,
    assisted,
    audit,
    auth,
    compatibility,
    dashboard,
    evaluation,
    frames,
    jobs,
    model_registry,
    projects,
    review,
    test_sessions,
    transfer,
    users,
    validation_runs,
    videos,
)

BLUEPRINTS = (
    auth.bp, users.bp, projects.bp, videos.bp, jobs.bp, annotations.bp, compatibility.bp, test_sessions.bp,
    evaluation.bp, validation_runs.bp, model_registry.bp, transfer.bp, audit.bp, frames.bp, dashboard.bp, review.bp,
    assisted.bp,
)
