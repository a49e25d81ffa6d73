"""Malformed input gets the error shape and writes nothing.

In-process on the Flask test client (``app_stack``): refusals and error shapes are not about
processes. The upload size limit keeps a web process of its own (the server refuses the body).
"""
from __future__ import annotations

import io

import pytest
from sqlalchemy import create_engine, func, select

from models import AuditLog, Job, Project, Video


def _counts(stack) -> tuple[int, ...]:
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            return tuple(conn.scalar(select(func.count()).select_from(t)) for t in (Project, Job, Video, AuditLog))
    finally:
        engine.dispose()


def _files(stack) -> list[str]:
    root = stack.workdir / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


BAD_BODIES = [
    ("/api/projects", b'{"name": "x",', 400, "bad_request"),
    ("/api/projects", b'{"name": "x", "colour": "red"}', 422, "validation_error"),
    ("/api/projects", b'{"name": 5}', 422, "validation_error"),
    ("/api/projects", b'{"name": ""}', 422, "validation_error"),
    ("/api/projects", b'{"name": "x", "labels": ["a", "a"]}', 422, "validation_error"),
    ("/api/projects", b'[1, 2]', 422, "validation_error"),
    # Messages keyed by list position (int keys) once made the error response itself fail.
    ("/api/projects", b'{"name": "x", "labels": ["a", 5]}', 422, "validation_error"),
    ("/api/jobs/probe", b'{"queue": "tpu"}', 422, "validation_error"),
    ("/api/jobs/probe", b'{"queue": "cpu", "steps": "many"}', 422, "validation_error"),
    ("/api/jobs/probe", b'{"queue": "cpu", "step_seconds": NaN}', 422, "validation_error"),  # a finite float
    ("/api/jobs/probe", b'{"queue": "cpu", "steps": -1}', 422, "validation_error"),
]


@pytest.mark.parametrize(("path", "body", "status", "code"), BAD_BODIES)
def test_bad_json_is_refused_and_nothing_is_written(app_stack, path, body, status, code):
    app_stack.token()  # log in first: a login is an audited change of its own
    before = _counts(app_stack)
    r = app_stack.api("POST", path, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    if r.status_code == 422:
        assert error["details"]["fields"], error  # names the offending field
    assert _counts(app_stack) == before


def test_unknown_ids_are_404_with_the_error_shape(app_stack):
    for path in ("/api/jobs/00000000-0000-0000-0000-000000000000", "/api/jobs/not-a-uuid",
                 "/api/projects/00000000-0000-0000-0000-000000000000", "/api/videos/xyz", "/api/nothing-here"):
        r = app_stack.api("GET", path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)


def test_non_video_upload_is_415_and_leaves_nothing(app_stack):
    before, files = _counts(app_stack), _files(app_stack)
    for name, payload in (("clip.mp4", b"this is not a video at all" * 100),
                          ("frame.avi", open(__file__, "rb").read())):
        r = app_stack.api("POST", "/api/videos", files={"file": (name, io.BytesIO(payload), "video/mp4")})
        assert r.status_code == 415, r.text
        assert r.json()["error"]["code"] == "unsupported_media_type"
    assert _counts(app_stack) == before
    assert _files(app_stack) == files


def test_upload_without_file_or_with_bad_form_is_422(app_stack):
    before = _counts(app_stack)
    r = app_stack.api("POST", "/api/videos", data={"project_id": "x"})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"]
    r = app_stack.api("POST", "/api/videos", files={"other": ("a", b"x")})
    assert r.status_code == 422
    assert _counts(app_stack) == before


def test_real_video_upload_is_probed_and_stored_under_a_generated_name(app_stack, shared_data):
    project = app_stack.api("POST", "/api/projects", json={"name": "upload"}).json()
    path = shared_data / "video" / "vtest.avi"
    with open(path, "rb") as fh:
        r = app_stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                      files={"file": ("../../etc/evil name.avi", fh, "video/x-msvideo")}, timeout=120)
    assert r.status_code == 201, r.text
    video = r.json()
    assert (video["width"], video["height"], video["frame_count"]) == (768, 576, 795)
    assert video["fps"] == pytest.approx(10.0) and video["duration"] == pytest.approx(79.5)
    assert video["codec"] == "MP43" and video["variable_frame_rate"] is False
    assert video["size_bytes"] == path.stat().st_size and len(video["checksum"]) == 64
    assert video["filename"] == "../../etc/evil name.avi"
    stored = [f for f in _files(app_stack) if f.startswith("videos/")]
    assert f"videos/{video['id']}.avi" in stored
    assert not [f for f in _files(app_stack) if f.startswith("tmp/")]
    listed = app_stack.api("GET", "/api/videos", params={"project_id": project["id"]}).json()
    assert [v["id"] for v in listed["items"]] == [video["id"]]
    assert app_stack.api("GET", f"/api/videos/{video['id']}").json()["checksum"] == video["checksum"]


def test_upload_over_the_size_limit_is_413(tmp_path, pg_database):
    """A separate web process with a small limit; the body is refused before it is stored."""
    from harness import own_stack

    with own_stack(tmp_path, MAX_UPLOAD_BYTES="100000") as st:
        r = st.api("POST", "/api/videos", files={"file": ("big.avi", io.BytesIO(b"\0" * 300000))})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert not [f for f in _files(st) if f.startswith(("videos/", "tmp/"))]


def test_huge_page_numbers_are_refused_not_a_server_error(app_stack):
    r = app_stack.api("GET", "/api/jobs", params={"page": 10**27})
    assert r.status_code == 422 and "page" in r.json()["error"]["details"]["fields"]["query"]
