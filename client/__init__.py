"""The platform's Python client: ``Client(base_url, token=...)`` and its typed errors.

It speaks HTTP and Socket.IO only and imports nothing else of the platform, so it can be
installed and used on any machine that reaches the web front.
"""
from .api import Client
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PlatformError,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

__all__ = [
    "BadRequest", "Client", "Conflict", "Forbidden", "Gone", "JobFailed", "NotFound", "PayloadTooLarge",
    "PlatformError", "RateLimited", "Unauthorized", "Unavailable", "UnsupportedMediaType", "ValidationFailed",
]
