"""What the dashboard needs from the server besides the API it shares with every client: the page
itself (with its content security policy), the vendored Socket.IO client, frames as images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import requests
from harness import project_with_video


@pytest.fixture(scope="module")
def clip(stack, tmp_path_factory):
    project, video = project_with_video(stack, tmp_path_factory.mktemp("frames"), frames=40)
    return project, video


def _image(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_page_and_scripts_are_served_by_the_app(stack):
    page = requests.get(stack.base + "/", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "blob:" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in page.text  # external scripts only
    for path in ("/static/vendor/socket.io.min.js", "/static/js/main.js", "/static/dashboard.css"):
        r = requests.get(stack.base + path, timeout=30)
        assert r.status_code == 200, path
    assert "Socket.IO v4" in requests.get(stack.base + "/static/vendor/socket.io.min.js", timeout=30).text[:200]
    assert stack.api("GET", "/api/config").json()["flower_port"] > 0
    assert stack.api("GET", "/api/config", token=None).status_code == 401


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_frames_by_number(stack, clip):
    _, video = clip
    base = f"/api/videos/{video['id']}/frames"
    first = _image(stack.api("GET", f"{base}/0.jpg"))
    assert first.shape[:2] == (240, 320)
    last = stack.api("GET", f"{base}/39.jpg")
    assert float(last.headers["X-Frame-Timestamp"]) == pytest.approx(3.9, abs=1e-3)
    # the test clip's square moves 5 px a frame: frame 39 differs from frame 0
    assert np.abs(_image(last).astype(int) - first.astype(int)).mean() > 1
    assert _image(stack.api("GET", f"{base}/5.jpg?width=160")).shape[:2] == (120, 160)
    beyond = stack.api("GET", f"{base}/40.jpg")
    assert beyond.status_code == 404 and beyond.json()["error"]["code"] == "not_found"
    assert stack.api("GET", f"{base}/0.jpg?width=5000").status_code == 422
    assert stack.api("GET", f"{base}/0.jpg", token=None).status_code == 401


def test_videos_in_no_project_are_listed_for_who_may_see_them(stack, clip, tmp_path):
    """``?unassigned=true``: the caller's videos in no project (an admin's: all of them), never a
    project's video and never another user's."""
    import uuid

    from harness import make_clip

    _, owner = stack.create_user(f"own-{uuid.uuid4().hex[:6]}", "annotator")
    _, other = stack.create_user(f"oth-{uuid.uuid4().hex[:6]}", "annotator")
    path = make_clip(tmp_path / "loose.avi", 12)
    with open(path, "rb") as fh:
        up = stack.api("POST", "/api/videos", token=owner, files={"file": (path.name, fh, "video/x-msvideo")})
    assert up.status_code == 201, up.text
    loose = up.json()
    assert loose["project_id"] is None

    def ids(token: str) -> set[str]:
        r = stack.api("GET", "/api/videos", token=token, params={"unassigned": "true", "per_page": 100})
        assert r.status_code == 200, r.text
        return {v["id"] for v in r.json()["items"]}

    _, project_video = clip
    assert loose["id"] in ids(owner) and project_video["id"] not in ids(owner)
    assert loose["id"] not in ids(other)
    assert loose["id"] in ids("admin") and project_video["id"] not in ids("admin")
