"""Authentication and permissions over HTTP and Socket.IO room joins."""
from __future__ import annotations

import time

import jwt
import pytest
import socketio


def _error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def test_health_needs_no_token_and_reports_dependencies(stack):
    r = stack.api("GET", "/api/health", token=None)
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.parametrize("path", ["/api/projects", "/api/jobs", "/api/videos", "/api/users"])
def test_api_refuses_requests_without_a_valid_token(stack, path):
    _error(stack.api("GET", path, token=None), 401, "unauthorized")
    _error(stack.api("GET", path, token="not-a-jwt"), 401, "invalid_token")
    good = stack.token()
    header, payload, sig = good.split(".")
    tampered = ".".join([header, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"), sig])
    _error(stack.api("GET", path, token=tampered), 401, "invalid_token")
    now = int(time.time())
    expired = jwt.encode({"sub": "x", "iat": now - 100, "exp": now - 10}, "another-secret-of-enough-length-0123",
                         algorithm="HS256")
    _error(stack.api("GET", path, token=expired), 401)


def test_login_errors_do_not_reveal_which_part_was_wrong(stack):
    a = _error(stack.api("POST", "/api/auth/token", token=None, json={"username": "admin", "password": "nope"}), 401)
    b = _error(stack.api("POST", "/api/auth/token", token=None, json={"username": "ghost", "password": "nope"}), 401)
    assert a == b


def test_roles_and_membership(stack):
    suffix = str(time.time_ns())
    _, viewer = stack.create_user(f"viewer{suffix}", "viewer")
    annotator_id, annotator = stack.create_user(f"annotator{suffix}", "annotator")
    _, outsider = stack.create_user(f"outsider{suffix}", "annotator")

    # Only admins manage users and run probes.
    _error(stack.api("POST", "/api/users", token=annotator, json={"username": "x1", "password": "password-1",
                                                                  "role": "admin"}), 403, "forbidden")
    _error(stack.api("GET", "/api/users", token=viewer), 403)
    _error(stack.probe("cpu", token=annotator), 403)
    # Viewers cannot create projects; annotators can and become the project's admin.
    _error(stack.api("POST", "/api/projects", token=viewer, json={"name": "v"}), 403)
    project = stack.api("POST", "/api/projects", token=annotator, json={"name": "mine"}).json()
    assert project["my_role"] == "admin"
    assert project["labels"] == ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]
    # A non-member sees nothing of it.
    _error(stack.api("GET", f"/api/projects/{project['id']}", token=outsider), 403)
    _error(stack.api("GET", "/api/jobs", token=outsider, params={"project_id": project["id"]}), 403)
    assert project["id"] not in [p["id"] for p in stack.api("GET", "/api/projects", token=outsider).json()["items"]]
    # Membership grants read; a viewer member cannot change the project.
    r = stack.api("POST", f"/api/projects/{project['id']}/members", token=annotator,
                  json={"username": f"viewer{suffix}", "role": "viewer"})
    assert r.status_code == 201, r.text
    assert stack.api("GET", f"/api/projects/{project['id']}", token=viewer).status_code == 200
    _error(stack.api("PATCH", f"/api/projects/{project['id']}", token=viewer, json={"name": "x"}), 403)
    # The project's jobs follow the project's permissions, also for room joins.
    job = stack.probe("cpu", steps=1, step_seconds=0, project_id=project["id"]).json()
    assert stack.api("GET", f"/api/jobs/{job['id']}", token=viewer).status_code == 200
    _error(stack.api("GET", f"/api/jobs/{job['id']}", token=outsider), 403)
    _error(stack.api("POST", f"/api/jobs/{job['id']}/cancel", token=viewer), 403)

    member = stack.socket(viewer)
    stranger = stack.socket(outsider)
    try:
        assert member.call("subscribe_job", {"job_id": job["id"]})["ok"] is True
        assert member.call("join_project", {"project_id": project["id"]})["ok"] is True
        denied = stranger.call("subscribe_job", {"job_id": job["id"]})
        assert denied["error"]["code"] == "forbidden"
        assert stranger.call("join_project", {"project_id": project["id"]})["error"]["code"] == "forbidden"
        assert stranger.call("subscribe_job", {"job_id": "nope"})["error"]["code"] == "validation_error"
    finally:
        member.close()
        stranger.close()
    assert annotator_id


def test_socket_connection_refused_without_valid_token(stack):
    for token in (None, "garbage"):
        client = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(stack.base, auth={"token": token} if token else None, transports=["websocket"],
                           wait_timeout=5)
        client.disconnect()


def test_password_change_revokes_older_tokens(stack):
    user_id, token = stack.create_user(f"rotating{time.time_ns()}", "viewer")
    assert stack.api("GET", "/api/users/me", token=token).status_code == 200
    r = stack.api("PATCH", f"/api/users/{user_id}", json={"password": "another-password"})
    assert r.status_code == 200, r.text
    _error(stack.api("GET", "/api/users/me", token=token), 401, "invalid_token")
