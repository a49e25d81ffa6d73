"""HTTP blueprints, one per resource."""
from . import annotations, auth, jobs, projects, users, videos

BLUEPRINTS = (auth.bp, users.bp, projects.bp, videos.bp, jobs.bp, annotations.bp)
