"""HTTP blueprints, one per resource."""
from . import annotations, audit, auth, compatibility, jobs, projects, users, videos

BLUEPRINTS = (auth.bp, users.bp, projects.bp, videos.bp, jobs.bp, annotations.bp, compatibility.bp, audit.bp)
