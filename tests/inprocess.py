"""The web app in the test process, on the Flask test client, with the surface of :class:`harness.Stack`.

For behaviour that is not about processes (permissions, validation, error shapes): a request is a
function call instead of a round trip to a web subprocess. Workers, where a test needs finished
jobs, are still real Celery processes (:meth:`AppStack.start_workers`), on the same database and
Redis database as the app.
"""
from __future__ import annotations

import io
import json
import os
from types import SimpleNamespace
from typing import Any

from harness import Stack


class Answer:
    """A test-client response read the way tests read a ``requests`` response."""

    def __init__(self, method: str, url: str, response: Any) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = response.get_data()
        self.request = SimpleNamespace(method=method, url=url)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def _file_part(spec: tuple) -> tuple:
    """``requests``' ``(filename, content[, content_type])`` as werkzeug's ``(stream, filename[, content_type])``."""
    filename, content, *content_type = spec
    if isinstance(content, str):
        content = content.encode()
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    return (stream, filename, *content_type)


def settings_for(env: dict[str, str]):
    """The settings a web process started with ``env`` would read (its secret file included)."""
    from settings import load_settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


class AppStack(Stack):
    """A :class:`Stack` whose web front is the app created in this process (``async_mode="threading"``).

    The Celery app, the Socket.IO server and the rate limiter are process-wide objects; the app's
    own are put back before every request, and every job the app dispatches goes to this stack's
    Redis database (checked before every request)."""

    def start_web(self, name: str = "web") -> str:
        if name != "web":
            raise NotImplementedError("one in-process web front per AppStack")
        from tasks.app import app as celery_app
        from webapp.extensions import limiter, socketio
        from webapp.factory import create_app

        self._celery = celery_app
        self._broker_before = celery_app.conf.broker_url
        self._point_broker(self.redis_url)
        self.settings = settings_for(self.env)
        assert self.settings.redis_url == self.redis_url and self.settings.database_url == self.database_url
        self.app = create_app(self.settings, redis_url=self.redis_url, async_mode="threading")
        self.client = self.app.test_client()
        self._extensions = [(ext, dict(vars(ext))) for ext in (socketio, limiter)]
        return self.base

    def _point_broker(self, url: str) -> None:
        """Send the process's Celery messages to ``url``: set the broker and drop pools made for another."""
        self._celery.conf.broker_url = url
        self._celery._pool = None
        self._celery.amqp._producer_pool = None
        uri = self._celery.connection_for_write().as_uri(include_password=True)
        assert uri == url, uri

    def close(self) -> None:
        super().close()
        if getattr(self, "_celery", None) is not None:
            self._point_broker(self._broker_before)

    def start_workers(self) -> None:
        """The GPU-queue and CPU workers of the ``stack`` fixture, once, for tests that wait for jobs."""
        if "gpu0" not in self.procs:
            self.start_worker("gpu", "gpu0")
            self.start_worker("cpu", "cpu1", concurrency=2)

    def api(self, method: str, path: str, token: str | None = "admin", **kwargs: Any) -> Answer:
        headers = dict(kwargs.pop("headers", None) or {})
        kwargs.pop("timeout", None)
        if token == "admin":
            token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        options: dict[str, Any] = {"headers": headers}
        if "params" in kwargs:
            options["query_string"] = kwargs.pop("params")
        if "json" in kwargs:
            options["json"] = kwargs.pop("json")
        data, files = kwargs.pop("data", None), kwargs.pop("files", None)
        if files:
            options["data"] = {**(data or {}), **{field: _file_part(spec) for field, spec in files.items()}}
        elif data is not None:
            options["data"] = data
        if kwargs:
            raise TypeError(f"AppStack.api does not translate {sorted(kwargs)}")
        self._bind()
        return Answer(method, self.base + path, self.client.open(path, method=method, **options))

    def _bind(self) -> None:
        """Put this app's Socket.IO server and limiter back (another app made in this process replaces
        them) and check that jobs still go to this stack's Redis."""
        for ext, state in self._extensions:
            vars(ext).update(state)
        assert self._celery.conf.broker_url == self.redis_url, self._celery.conf.broker_url

    def socket(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("sockets need a web process: use the stack fixture")

    refused_connection = socket

    def log(self, name: str) -> str:
        if name == "web":
            raise NotImplementedError("no web log in-process: use the stack fixture")
        return super().log(name)
