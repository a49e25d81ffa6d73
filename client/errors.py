"""The platform's error shape as typed exceptions.

Every API error answers ``{"error": {"code", "message", "details"}}``; the client raises the
exception class that matches the status, carrying the same four facts, so a script can catch
``NotFound`` or ``RateLimited`` instead of reading status codes.
"""
from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    """An error answered by the platform (or the failure to reach it)."""

    status: int
    code: str
    message: str
    details: dict[str, Any]

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        fields = self.field_errors()
        super().__init__(f"{status} {code}: {message}" + (f" {fields}" if fields else ""))

    def field_errors(self) -> dict[str, Any]:
        """The per-field messages of a validation error, whatever location level they sit under."""
        return self.details.get("fields", {}) if isinstance(self.details, dict) else {}


class BadRequest(PlatformError):
    """400: the body could not be read (malformed JSON, too deep)."""


class Unauthorized(PlatformError):
    """401: no token, or an expired, revoked or tampered one: log in again."""


class Forbidden(PlatformError):
    """403: the token's user may not do this (role or project membership)."""


class NotFound(PlatformError):
    """404."""


class Conflict(PlatformError):
    """409: a stale version, a duplicate, or a resource not in the state the call needs."""


class Gone(PlatformError):
    """410: for example an export whose file expired."""


class PayloadTooLarge(PlatformError):
    """413."""


class UnsupportedMediaType(PlatformError):
    """415: for example an upload that is not a decodable video."""


class ValidationFailed(PlatformError):
    """422: the request was read but a field is wrong; ``field_errors()`` names it."""


class RateLimited(PlatformError):
    """429 after the client's own retries ran out; ``retry_after`` is the server's advice in seconds."""

    retry_after: float | None = None


class Unavailable(PlatformError):
    """503 after retries, or the platform could not be reached at all (status 0)."""


class JobFailed(PlatformError):
    """A job the client waited for ended ``failed`` or ``cancelled``."""

    def __init__(self, job: dict[str, Any]) -> None:
        status = job.get("status", "failed")
        message = job.get("error_message") or job.get("error") or f"job {job.get('job_id') or job.get('id')} {status}"
        super().__init__(0, f"job_{status}", str(message), {"job": job})
        self.job = job


_BY_STATUS: dict[int, type[PlatformError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone,
    413: PayloadTooLarge, 415: UnsupportedMediaType, 422: ValidationFailed, 429: RateLimited, 503: Unavailable,
}


def error_from_response(status: int, body: Any, fallback_text: str = "") -> PlatformError:
    """Build the typed exception from a response's status and decoded body (the error shape, or not)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "error")
        message = str(error.get("message") or fallback_text or code)
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    else:  # a proxy's page or an empty body: keep what there is
        code, message, details = "error", (fallback_text or f"HTTP {status}")[:500], {}
    cls = _BY_STATUS.get(status, PlatformError)
    return cls(status, code, message, details)
