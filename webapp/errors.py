"""One error shape for every API error: ``{"error": {"code", "message", "details"}}``."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from storage import StorageUnavailable

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 410: "gone", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "validation_error", 429: "rate_limited", 500: "internal_error", 503: "service_unavailable",
}


class ApiError(Exception):
    """Raise anywhere in a request to answer with the error shape."""

    def __init__(self, status: int, message: str, code: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or CODES.get(status, "error")
        self.details = details or {}


def _plain(value: object) -> object:
    """Validation messages key list positions by int; JSON keys must all be strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def error_body(status: int, message: str, code: str | None = None, details: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code or CODES.get(status, "error"), "message": message,
                      "details": _plain(details or {})}}


def validation_error(fields: dict[str, Any], location: str = "json",
                     message: str = "request validation failed") -> ApiError:
    """The one 422: messages per field under the location the field came from, as webargs nests them.

    ``location`` is webargs' name (``json``, ``query``, ``form``, ``files``) or, for a Socket.IO
    event, ``data`` (the event's argument). A message may be a string, a list of strings or, for a
    nested field, marshmallow's dict of messages.
    """
    messages = {name: [value] if isinstance(value, str) else value for name, value in fields.items()}
    return ApiError(422, message, details={"fields": {location: messages}})


def error_response(status: int, message: str, code: str | None = None, details: dict | None = None) -> Response:
    response = jsonify(error_body(status, message, code, details))
    response.status_code = status
    return response


def from_http_exception(exc: HTTPException) -> Response:
    """Werkzeug and webargs errors, reshaped; webargs puts field messages in ``data``."""
    status = exc.code or 500
    details: dict[str, Any] = {}
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if messages:
        # webargs nests by location: {"json": {"field": ["msg"]}}; keep it, it names the field.
        details["fields"] = messages
        message = "malformed JSON body" if status == 400 else "request validation failed"
    elif status == 429:
        message = f"too many requests (limit: {exc.description}); retry later"
    else:
        message = exc.description or CODES.get(status, "error")
    response = error_response(status, message, details=details)
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.code, exc.details)

    @app.errorhandler(OperationalError)
    def _db_down(exc: OperationalError) -> Response:
        log.error("database unavailable: %s", exc)
        return error_response(503, "database unavailable, try again shortly", details={"retry": True})

    @app.errorhandler(StorageUnavailable)
    def _store_down(exc: StorageUnavailable) -> Response:
        log.error("storage unavailable: %s", exc)
        return error_response(503, "storage unavailable, try again shortly", details={"retry": True})

    @app.errorhandler(DBAPIError)
    def _db_error(exc: DBAPIError) -> Response:
        if exc.connection_invalidated:
            return error_response(503, "database connection lost, try again shortly", details={"retry": True})
        log.exception("database error")
        return error_response(500, "internal error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return from_http_exception(exc)
        log.exception("unhandled error")
        return error_response(500, "internal error")
