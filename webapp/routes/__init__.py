"""HTTP blueprints, one per resource."""
from . import auth, jobs, projects, users, videos

BLUEPRINTS = (auth.bp, users.bp, projects.bp, videos.bp, jobs.bp)
