"""Request bodies are checked before anything reads them.

JSON routes take ``application/json`` only (415 otherwise), at most ``MAX_JSON_BODY_BYTES``
(413) and at most ``MAX_JSON_DEPTH`` levels of nesting (400); the upload routes take multipart
bodies up to ``MAX_UPLOAD_BYTES`` with exactly one ``file`` part. The check runs before the rate
limiter, whose login key reads the body.
"""
from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError, validation_error

#: Multipart routes; every other POST, PUT and PATCH under /api/ is a JSON route.
UPLOAD_ENDPOINTS = frozenset({"videos.upload_video", "transfer.create_import", "model_registry.upload"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def json_depth(value: object, limit: int) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0); stops counting past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def check_json_body() -> None:
    """``before_request``: refuse a JSON body of the wrong type, size or depth."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/") or request.endpoint is None:
        return
    if request.endpoint in UPLOAD_ENDPOINTS:
        return
    settings = current_app.config["SETTINGS"]
    length = request.content_length
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    has_body = bool(length) or chunked
    if (request.mimetype or has_body) and not request.is_json:
        raise ApiError(415, "this route takes a JSON body: send it with Content-Type: application/json",
                       details={"content_type": request.mimetype or None})
    if not has_body:
        return
    cap = settings.max_json_body_bytes
    too_large = ApiError(413, f"a JSON body may hold at most {cap} bytes (MAX_JSON_BODY_BYTES)",
                         details={"max_bytes": cap})
    if length is not None and length > cap:
        raise too_large
    request.max_content_length = cap  # bounds a chunked body while it is read
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    try:
        value = json.loads(data)
    except RecursionError:
        value = None
        depth = settings.max_json_depth + 1
    except ValueError:
        return  # malformed: the argument parser answers 400 with its own message
    else:
        depth = json_depth(value, settings.max_json_depth)
    if depth > settings.max_json_depth:
        raise ApiError(400, f"the JSON body nests deeper than {settings.max_json_depth} levels",
                       code="bad_request", details={"max_depth": settings.max_json_depth})


def single_file(field: str = "file") -> FileStorage:
    """The one multipart file part named ``field``: 400 for two, 422 for none or other names."""
    parts = request.files.getlist(field)
    if len(parts) > 1:
        raise ApiError(400, f"the multipart body holds {len(parts)} '{field}' parts; send exactly one",
                       details={"field": field, "parts": len(parts)})
    others = sorted(k for k in request.files if k != field)
    if not parts or others:
        raise validation_error({field: "Missing data for required field." if not parts
                                else f"unexpected file fields: {', '.join(others)}"},
                               "files", f"exactly one multipart file field named '{field}' is required")
    return parts[0]
