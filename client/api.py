"""``Client``: the platform's resources as methods.

Each method is one documented endpoint; answers are the API's JSON objects (dicts), lists
are iterated page by page, and every error is one of the typed exceptions of ``errors``.
"""
from __future__ import annotations

import json as jsonlib
import mimetypes
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .live import JOBS, RUNS, JobUpdate, Watcher
from .transport import Progress, Transport, iter_pages

Json = dict[str, Any]


class _Resource:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._t = client.transport

    def _list(self, path: str, params: dict[str, Any] | None = None, per_page: int = 100) -> Iterator[Json]:
        base = dict(params or {})
        return iter_pages(lambda page: self._t.json("GET", path, params={**base, "page": page, "per_page": per_page}))


class Projects(_Resource):
    def create(self, name: str, labels: list[str] | None = None, description: str = "",
               camera_metadata: dict[str, Any] | None = None, **extra: Any) -> Json:
        body = {"name": name, "description": description, **extra}
        if labels is not None:
            body["labels"] = labels
        if camera_metadata is not None:
            body["camera_metadata"] = camera_metadata
        return self._t.json("POST", "/api/projects", json=body)

    def list(self) -> Iterator[Json]:
        return self._list("/api/projects")

    def get(self, project_id: str) -> Json:
        return self._t.json("GET", f"/api/projects/{project_id}")

    def update(self, project_id: str, **fields: Any) -> Json:
        return self._t.json("PATCH", f"/api/projects/{project_id}", json=fields)

    def delete(self, project_id: str) -> None:
        self._t.json("DELETE", f"/api/projects/{project_id}")

    def add_member(self, project_id: str, role: str, *, user_id: str | None = None,
                   username: str | None = None) -> Json:
        body: Json = {"role": role}
        if user_id:
            body["user_id"] = user_id
        if username:
            body["username"] = username
        return self._t.json("POST", f"/api/projects/{project_id}/members", json=body)

    def members(self, project_id: str) -> Iterator[Json]:
        return self._list(f"/api/projects/{project_id}/members")

    def remove_member(self, project_id: str, user_id: str) -> None:
        self._t.json("DELETE", f"/api/projects/{project_id}/members/{user_id}")


class Videos(_Resource):
    def upload(self, path: str | Path, project_id: str | None = None, progress: Progress | None = None) -> Json:
        """Upload a video file, streamed from disk; ``progress(done, total)`` follows the bytes."""
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return self._t.upload("/api/videos", path, {"project_id": project_id}, content_type=content_type,
                              progress=progress)

    def list(self, project_id: str | None = None) -> Iterator[Json]:
        return self._list("/api/videos", {"project_id": project_id})

    def get(self, video_id: str) -> Json:
        return self._t.json("GET", f"/api/videos/{video_id}")

    def frame(self, video_id: str, frame_number: int, destination: str | Path) -> Path:
        return self._t.download(f"/api/videos/{video_id}/frames/{int(frame_number)}.jpg", Path(destination))


class AnnotationSessions(_Resource):
    def create(self, project_id: str, video_id: str, session_name: str, annotation_type: str = "spatial",
               metadata: dict[str, Any] | None = None) -> Json:
        return self._t.json("POST", "/api/annotations/sessions", json={
            "project_id": project_id, "video_id": video_id, "session_name": session_name,
            "annotation_type": annotation_type, "metadata": metadata or {}})

    def list(self, **filters: Any) -> Iterator[Json]:
        return self._list("/api/annotations/sessions", filters)

    def get(self, session_id: str) -> Json:
        return self._t.json("GET", f"/api/annotations/sessions/{session_id}")

    def update(self, session_id: str, **fields: Any) -> Json:
        return self._t.json("PATCH", f"/api/annotations/sessions/{session_id}", json=fields)

    def annotations(self, **filters: Any) -> Iterator[Json]:
        """Temporal annotations, filtered as the API allows (``session_id``, ``video_id``, ``class_label``...)."""
        return self._list("/api/annotations/temporal", filters)

    def validate(self, annotation_id: str, status: str = "validated", reason: str | None = None,
                 force: bool = False) -> Json:
        return self._t.json("POST", f"/api/annotations/{annotation_id}/validate",
                            json={"status": status, "reason": reason, "force": force})


class Imports(_Resource):
    def create(self, path: str | Path, *, import_type: str, source_format: str, job_name: str | None = None,
               project_id: str | None = None, video_id: str | None = None, session_id: str | None = None,
               test_session_id: str | None = None, label_map: dict[str, str] | None = None,
               on_error: str = "abort", progress: Progress | None = None, **form: Any) -> Json:
        """Start an import of a file another tool wrote (or the platform exported); streamed upload."""
        path = Path(path)
        fields: dict[str, Any] = {
            "job_name": job_name or f"import {path.name}", "import_type": import_type,
            "source_format": source_format, "project_id": project_id, "video_id": video_id,
            "session_id": session_id, "test_session_id": test_session_id, "on_error": on_error, **form}
        if label_map:
            fields["label_map"] = jsonlib.dumps(label_map)
        fields = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in fields.items()}
        return self._t.upload("/api/import/jobs", path, fields, progress=progress)

    def get(self, import_id: str) -> Json:
        return self._t.json("GET", f"/api/import/jobs/{import_id}")

    def list(self) -> Iterator[Json]:
        return self._list("/api/import/jobs")


class Exports(_Resource):
    def create(self, export_type: str, format: str, *, job_name: str | None = None,  # noqa: A002 - the API's name
               **scope: Any) -> Json:
        """Start an export job; ``scope`` is the API's ``scope_filter`` (project_ids, video_ids...)."""
        return self._t.json("POST", "/api/export/jobs", json={
            "job_name": job_name or f"{export_type} as {format}", "export_type": export_type, "format": format,
            "scope_filter": scope})

    def get(self, export_id: str) -> Json:
        return self._t.json("GET", f"/api/export/jobs/{export_id}")

    def list(self) -> Iterator[Json]:
        return self._list("/api/export/jobs")

    def download(self, export_id: str, destination: str | Path, progress: Progress | None = None) -> Path:
        """The export's file, streamed to ``destination`` (written whole or not at all)."""
        return self._t.download(f"/api/export/jobs/{export_id}/download", Path(destination), progress=progress)


class Models(_Resource):
    def list(self) -> list[Json] | Json:
        return self._t.json("GET", "/api/models")


class TestSessions(_Resource):
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def create(self, project_id: str, video_id: str, model: dict[str, Any] | str, name: str | None = None,
               **options: Any) -> Json:
        """Start detection of ``model`` (a spec, or just its name) on one video."""
        spec = {"name": model} if isinstance(model, str) else model
        body = {"project_id": project_id, "video_id": video_id, "model": spec, **options}
        if name:
            body["name"] = name
        return self._t.json("POST", "/api/test-sessions", json=body)

    def get(self, test_session_id: str) -> Json:
        return self._t.json("GET", f"/api/test-sessions/{test_session_id}")

    def list(self, **filters: Any) -> Iterator[Json]:
        return self._list("/api/test-sessions", filters)

    def detections(self, test_session_id: str, **filters: Any) -> Iterator[Json]:
        return self._list(f"/api/test-sessions/{test_session_id}/detections", filters, per_page=5000)

    def evaluate(self, test_session_id: str, **params: Any) -> Json:
        return self._t.json("POST", f"/api/test-sessions/{test_session_id}/evaluate", json=params)

    def metrics(self, test_session_id: str) -> Json:
        return self._t.json("GET", f"/api/test-sessions/{test_session_id}/metrics")

    def report(self, test_session_id: str, embed: bool = True) -> Json:
        return self._t.json("GET", f"/api/test-sessions/{test_session_id}/report",
                            params={"embed": str(embed).lower()})

    def compare(self, test_session_ids: Iterable[str]) -> Json:
        return self._t.json("GET", "/api/test-sessions/compare", params={"ids": ",".join(test_session_ids)})


class Jobs(_Resource):
    def get(self, job_id: str) -> Json:
        return self._t.json("GET", f"/api/jobs/{job_id}")

    def list(self, **filters: Any) -> Iterator[Json]:
        return self._list("/api/jobs", filters)

    def cancel(self, job_id: str) -> Json:
        return self._t.json("POST", f"/api/jobs/{job_id}/cancel")

    def wait(self, job_ids: str | Iterable[str], on_update: JobUpdate | None = None, timeout: float | None = None,
             live: bool | None = None, raise_on_failure: bool = True) -> dict[str, Json]:
        """Wait until every job is terminal: live over Socket.IO, or by polling when the socket is refused.

        Returns each job's final row; raises ``JobFailed`` for the first that did not complete
        unless ``raise_on_failure`` is false.
        """
        from .errors import JobFailed

        ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        final = self._client.follow(JOBS, ids, on_update, timeout, live)
        if raise_on_failure:
            for job in final.values():
                if job.get("status") != "completed":
                    raise JobFailed(job)
        return final


class ValidationRuns(_Resource):
    """A model against a whole test set: one test session per video, then one aggregation."""

    def create(self, project_id: str, model: dict[str, Any] | str, *, name: str | None = None,
               videos: list[str] | dict[str, Any] | None = None, test_session_ids: list[str] | None = None,
               ground_truth: str | dict[str, str] = "validated", evaluation: dict[str, Any] | None = None,
               baseline_run_id: str | None = None, gates: list[dict[str, Any]] | None = None,
               **detection: Any) -> Json:
        """Start a run; ``videos`` is a list of ids or ``{"filter": {...}}`` (default: every video)."""
        body: Json = {"project_id": project_id, "model": {"name": model} if isinstance(model, str) else model,
                      "ground_truth": ground_truth, "gates": gates or [], **detection}
        for key, value in (("name", name), ("videos", videos), ("test_session_ids", test_session_ids),
                           ("evaluation", evaluation), ("baseline_run_id", baseline_run_id)):
            if value is not None:
                body[key] = value
        return self._t.json("POST", "/api/validation-runs", json=body)

    def get(self, run_id: str) -> Json:
        return self._t.json("GET", f"/api/validation-runs/{run_id}")

    def list(self, **filters: Any) -> Iterator[Json]:
        return self._list("/api/validation-runs", filters)

    def metrics(self, run_id: str) -> Json:
        return self._t.json("GET", f"/api/validation-runs/{run_id}/metrics")

    def cancel(self, run_id: str) -> Json:
        return self._t.json("POST", f"/api/validation-runs/{run_id}/cancel")

    def compare(self, run_a: str, run_b: str) -> Json:
        """Paired comparison: ``run_b`` against ``run_a`` on the same videos and ground truth."""
        return self._t.json("GET", "/api/validation-runs/compare", params={"ids": f"{run_a},{run_b}"})

    def report(self, run_id: str, destination: str | Path) -> Path:
        """The self-contained HTML report, downloaded."""
        return self._t.download(f"/api/validation-runs/{run_id}/report.html", Path(destination))

    def wait(self, run_id: str, on_update: JobUpdate | None = None, timeout: float | None = None,
             live: bool | None = None) -> Json:
        """Wait until the run ends (completed, partial, failed or cancelled); returns the run."""
        return self._client.follow(RUNS, [run_id], on_update, timeout, live)[run_id]


class Client:
    """The platform over HTTP and Socket.IO.

    >>> c = Client("http://127.0.0.1:5000")
    >>> c.login("admin", "secret")                            # doctest: +SKIP
    >>> project = c.projects.create("night cyclists", labels=["pedestrian", "cyclist"])  # doctest: +SKIP
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0, retries: int = 4,
                 backoff: float = 0.5, live: bool = True, poll_interval: float = 1.0,
                 socketio_url: str | None = None) -> None:
        self.transport = Transport(base_url, token, timeout=timeout, retries=retries, backoff=backoff)
        self.live, self.poll_interval = live, poll_interval
        self.socketio_url = socketio_url  # when Socket.IO is served elsewhere than the API (a proxy)
        self.last_wait_mode: str | None = None
        self.projects = Projects(self)
        self.videos = Videos(self)
        self.annotation_sessions = AnnotationSessions(self)
        self.imports = Imports(self)
        self.exports = Exports(self)
        self.models = Models(self)
        self.test_sessions = TestSessions(self)
        self.jobs = Jobs(self)
        self.validation_runs = ValidationRuns(self)

    def follow(self, followed: Any, ids: list[str], on_update: JobUpdate | None, timeout: float | None,
               live: bool | None) -> dict[str, Json]:
        watcher = Watcher(self.transport, followed, live=self.live if live is None else live,
                          poll_interval=self.poll_interval, socketio_url=self.socketio_url)
        try:
            return watcher.wait(ids, on_update, timeout)
        finally:
            self.last_wait_mode = watcher.mode

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    @property
    def token(self) -> str | None:
        return self.transport.token

    def login(self, username: str, password: str) -> str:
        """Exchange a password for a token, kept for the calls that follow, and returned."""
        body = self.transport.json("POST", "/api/auth/token", json={"username": username, "password": password})
        self.transport.token = body["access_token"]
        return self.transport.token

    def logout(self) -> None:
        self.transport.json("POST", "/api/auth/logout")
        self.transport.token = None

    def me(self) -> Json:
        return self.transport.json("GET", "/api/users/me")

    def health(self) -> Json:
        return self.transport.json("GET", "/api/health")

    def openapi(self) -> Json:
        return self.transport.json("GET", "/openapi.json")
