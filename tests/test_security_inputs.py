"""Hostile input on the live stack: lists across projects, oversized and nested bodies, formulas in
CSV cells, exports that would stall the web process, forged tokens, leaked paths, Flower's metrics,
file names with hidden characters, multipart and content-type tricks.

Tests that wait for jobs, read the web process's log, send a chunked body or start Flower run on
the ``stack`` of real processes; refusals and answer shapes run in-process (``app_stack``)."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import uuid
from pathlib import Path

import jwt
import requests
from harness import ROOT, make_clip, project_with_video, start_flower, wait_until
from sqlalchemy import create_engine, select, update

import formats
from formats import VideoInfo
from formats.csvfile import neutralise, restore
from models import AnnotationSession, Video, VideoAnnotation
from settings import DEFAULT_SECRET

ERROR_KEYS = {"code", "message", "details"}


def _shaped(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    return body["error"]


def _session(stack, project, video, token="admin", name="s") -> dict:
    r = stack.api("POST", "/api/annotations/sessions", token=token, json={
        "project_id": project["id"], "video_id": video["id"], "session_name": name, "annotation_type": "temporal"})
    assert r.status_code == 201, r.text
    return r.json()


def _annotate(stack, session, video, label="pedestrian", start=0.0, end=1.0, box=(1, 1, 20, 20),
              token="admin") -> dict:
    r = stack.api("POST", "/api/annotations/temporal", token=token, json={
        "annotation_session_id": session["id"], "video_id": video["id"], "start_timestamp": start,
        "end_timestamp": end, "annotation_type": "temporal", "class_label": label,
        "bounding_box": dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))})
    assert r.status_code == 201, r.text
    return r.json()


def _wait_export(stack, export_id: str, token="admin") -> dict:
    return wait_until(lambda: (e := stack.api("GET", f"/api/export/jobs/{export_id}", token=token).json())
                      ["status"] in ("completed", "failed", "cancelled") and e, 120, 0.2, "export")


def _import(stack, project, video, fmt: str, name: str, content: bytes) -> dict:
    """Upload an annotations file and wait for its import to end."""
    r = stack.api("POST", "/api/import/jobs", data={
        "job_name": name, "import_type": "annotations", "source_format": fmt, "project_id": project["id"],
        "video_id": video["id"]}, files={"file": (name, content)})
    assert r.status_code == 202, r.text
    return wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                      ["status"] in ("completed", "failed", "cancelled") and i, 120, 0.2, "import")


# ------------------------------------------------------------------------------ lists across projects


def test_annotations_of_another_projects_session_on_my_video_stay_hidden(stack, tmp_path):
    """A session of project B may annotate a video of project A (a project import refers to videos
    it finds by checksum); a member of A alone sees A's annotations only, and can export A's video."""
    uid, token = stack.create_user(f"member-a-{uuid.uuid4().hex[:6]}", "annotator")
    project_a, video_a = project_with_video(stack, tmp_path)
    r = stack.api("POST", f"/api/projects/{project_a['id']}/members", json={"user_id": uid, "role": "annotator"})
    assert r.status_code in (200, 201), r.text
    mine = _annotate(stack, _session(stack, project_a, video_a, token=token), video_a, token=token)
    project_b, video_b = project_with_video(stack, tmp_path)
    session_b = _session(stack, project_b, video_b, name="b")
    theirs = _annotate(stack, session_b, video_b, label="cyclist", box=(5, 5, 30, 30))
    engine = create_engine(stack.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(AnnotationSession).where(AnnotationSession.id == uuid.UUID(session_b["id"]))
                         .values(video_id=uuid.UUID(video_a["id"])))
            conn.execute(update(VideoAnnotation).where(VideoAnnotation.id == uuid.UUID(theirs["id"]))
                         .values(video_id=uuid.UUID(video_a["id"])))
    finally:
        engine.dispose()

    listed = stack.api("GET", "/api/annotations/temporal", token=token, params={"video_id": video_a["id"]}).json()
    assert [a["id"] for a in listed["items"]] == [mine["id"]] and listed["total"] == 1
    both = stack.api("GET", "/api/annotations/temporal", params={"video_id": video_a["id"]}).json()
    assert {a["id"] for a in both["items"]} == {mine["id"], theirs["id"]}  # the administrator sees both
    sessions = stack.api("GET", "/api/annotations/sessions", token=token, params={"video_id": video_a["id"]}).json()
    assert session_b["id"] not in {s["id"] for s in sessions["items"]}

    r = stack.api("POST", "/api/export/jobs", token=token, json={
        "job_name": "mine", "export_type": "annotations", "format": "csv",
        "scope_filter": {"video_ids": [video_a["id"]]}})
    assert r.status_code == 202, r.text
    export = _wait_export(stack, r.json()["id"], token)
    assert export["status"] == "completed", export
    data = stack.api("GET", f"/api/export/jobs/{export['id']}/download", token=token)
    assert data.status_code == 200, data.text
    labels = {row["label"] for row in csv.DictReader(io.StringIO(data.text))}
    assert labels == {"pedestrian"}  # project B's cyclist is not in it


# ------------------------------------------------------------------------------ direct exports


def test_a_direct_export_too_large_for_a_request_becomes_an_export_job(stack, tmp_path):
    """150 annotations over 18,000 frames once took the web process half a minute; the rows the
    file would hold decide, and the answer is the export job that writes it on the CPU pool."""
    project = stack.api("POST", "/api/projects", json={"name": f"long-{uuid.uuid4().hex[:6]}"}).json()
    clip = make_clip(tmp_path / "long.avi", frames=18000, fps=25.0, size=(32, 32))
    with open(clip, "rb") as fh:
        r = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                      files={"file": ("long.avi", fh, "video/x-msvideo")}, timeout=300)
    assert r.status_code == 201, r.text
    video = r.json()
    session = _session(stack, project, video)
    for i in range(10):
        _annotate(stack, session, video, start=0.0, end=video["duration"], box=(i, 1, i + 10, 20))
    r = stack.api("GET", f"/api/annotations/sessions/{session['id']}/export/csv")
    assert r.status_code == 202, (r.status_code, r.text[:300])
    assert r.headers["Location"].endswith(f"/api/export/jobs/{r.json()['id']}")
    export = _wait_export(stack, r.json()["id"])
    assert export["status"] == "completed", export
    rows = stack.api("GET", f"/api/export/jobs/{export['id']}/download").text.count("\r\n") - 1
    assert rows == 10 * 18000

    small = _session(stack, project, video, name="small")
    _annotate(stack, small, video, start=1.0, end=2.0)
    r = stack.api("GET", f"/api/annotations/sessions/{small['id']}/export/csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    # a header, frames 25-50, and the outside row that ends the track at frame 51
    assert int(r.headers["Content-Length"]) == len(r.content) and r.content.count(b"\r\n") == 1 + 26 + 1
    assert 'filename=small.csv' in r.headers["Content-Disposition"]


# ------------------------------------------------------------------------------ CSV injection

FORMULAS = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", '=HYPERLINK("http://x","y")',
            "'=already quoted", "plain"]


def test_csv_cells_that_start_a_formula_are_neutralised_and_read_back_exactly(stack, tmp_path):
    r = stack.api("POST", "/api/projects", json={"name": f"csv-{uuid.uuid4().hex[:6]}", "labels": FORMULAS})
    assert r.status_code == 201, r.text
    project = r.json()
    clip = make_clip(tmp_path / "f.avi", 40, 10.0)
    with open(clip, "rb") as fh:
        video = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                          files={"file": ("f.avi", fh, "video/x-msvideo")}).json()
    session = _session(stack, project, video)
    for i, label in enumerate(FORMULAS):
        _annotate(stack, session, video, label=label, start=0.1 * i, end=0.1 * i, box=(-5, 10 + i, 20, 40))
    r = stack.api("GET", f"/api/annotations/sessions/{session['id']}/export/csv")
    assert r.status_code == 200, r.text
    rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["outside"] == "0"]  # not the track ends
    assert sorted(row["label"] for row in rows) == sorted(neutralise(f) for f in FORMULAS)
    for row in rows:
        assert not row["label"].startswith(("=", "+", "-", "@", "\t", "\r"))
        assert row["x1"] == "-5.0"  # a number stays a number
    assert "'=cmd|' /C calc'!A0" in {row["label"] for row in rows}

    imp = _import(stack, project, video, "csv", "formulas.csv", r.content)
    assert imp["status"] == "completed", imp
    back = stack.api("GET", "/api/annotations/temporal",
                     params={"session_id": imp["annotation_session_id"]}).json()["items"]
    assert sorted(a["class_label"] for a in back) == sorted(FORMULAS)
    assert {a["bounding_box"]["x1"] for a in back} == {-5.0}


def test_the_csv_engine_round_trips_formula_like_text():
    labels = [*FORMULAS, "\tx", "\rx"]
    records = [formats.Annotation(i, label, (-1.5, 2.0, 10.0, 12.0), track_id=i, video_id="=video")
               for i, label in enumerate(labels)]
    buf = io.StringIO()
    formats.csvfile.write(buf, records)
    text = buf.getvalue()
    for cell in (c for row in csv.reader(io.StringIO(text)) for c in row):
        assert not cell.startswith(("=", "+", "@", "\t", "\r")) and (not cell.startswith("-") or float(cell) < 0)
    assert restore(neutralise("''=x")) == "''=x" and restore("'plain") == "'plain"
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"round-{uuid.uuid4().hex}.csv"
    try:
        path.write_text(text, newline="")
        got = list(formats.csvfile.read(path, video=VideoInfo(320, 240, 100, 10.0), classes=labels))
    finally:
        path.unlink(missing_ok=True)
    assert [(r.label, r.video_id, r.box) for r in got] == [(r.label, r.video_id, r.box) for r in records]


# ------------------------------------------------------------------------------ JSON bodies


def test_json_bodies_and_free_form_fields_are_bounded(stack, tmp_path):
    big = {"blob": "x" * (2 * 1024 * 1024)}
    error = _shaped(stack.api("POST", "/api/projects", json={"name": "huge", "camera_metadata": big}), 413)
    assert error["code"] == "payload_too_large" and "MAX_JSON_BODY_BYTES" in error["message"]
    # Without a length the body is bounded while read (or, where the server does not frame it, not read).
    name = f"chunked-{uuid.uuid4().hex[:6]}"
    chunked = stack.api("POST", "/api/projects", data=iter([json.dumps({"name": name, "camera_metadata": big})
                                                            .encode()]),
                        headers={"Content-Type": "application/json"})
    assert _shaped(chunked, chunked.status_code)["code"] in ("payload_too_large", "bad_request")
    assert name not in stack.api("GET", "/api/projects", params={"per_page": 500}).text
    field = {"blob": "x" * (100 * 1024)}
    error = _shaped(stack.api("POST", "/api/projects", json={"name": "wide", "camera_metadata": field}), 422)
    assert "MAX_JSON_FIELD_BYTES" in error["details"]["fields"]["json"]["camera_metadata"][0]
    project, video = project_with_video(stack, tmp_path)
    session = _session(stack, project, video)
    r = stack.api("POST", "/api/annotations/temporal", json={
        "annotation_session_id": session["id"], "video_id": video["id"], "start_timestamp": 0.0,
        "end_timestamp": 1.0, "annotation_type": "temporal", "class_label": "pedestrian", "keyframe_data": field})
    assert "keyframe_data" in _shaped(r, 422)["details"]["fields"]["json"]
    r = stack.api("PATCH", f"/api/projects/{project['id']}", json={"camera_metadata": field})
    assert "camera_metadata" in _shaped(r, 422)["details"]["fields"]["json"]
    page = stack.api("GET", "/api/projects", params={"per_page": 500})
    assert len(page.content) < 4 * 1024 * 1024


def test_deeply_nested_json_is_400_on_every_json_route(stack, tmp_path):
    deep = "[" * 100_000
    for path, token in (("/api/auth/token", None), ("/api/projects", "admin"), ("/api/annotations/temporal", "admin")):
        r = stack.api("POST", path, token=token, data=deep, headers={"Content-Type": "application/json"})
        assert "nests deeper" in _shaped(r, 400)["message"]
    nested: dict = {}
    for _ in range(100):
        nested = {"a": nested}
    r = stack.api("POST", "/api/projects", json={"name": "nested", "camera_metadata": nested})
    _shaped(r, 400)
    assert stack.api("GET", "/api/health", token=None).status_code == 200
    assert "Traceback" not in stack.log("web")[-20000:]


def test_a_deeply_nested_coco_file_fails_its_import_with_a_located_error(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    deep = '{"images": [\n' + "[" * 100_000 + "]" * 100_000 + '\n], "annotations": [], "categories": []}'
    imp = _import(stack, project, video, "coco", "deep.json", deep.encode())
    assert imp["status"] == "failed", imp
    located = [e for e in imp["validation_errors"] if "deep" in e["message"]]
    assert located and located[0]["file"] and located[0]["line"] == 2, imp["validation_errors"]
    assert "RecursionError" not in (imp["error_message"] or "")


# ------------------------------------------------------------------------------ development defaults


def test_the_secret_is_generated_per_var_dir_and_the_public_default_is_refused(stack):
    secret_file = Path(stack.env["VAR_DIR"]) / "secret_key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32 and secret != DEFAULT_SECRET
    real = jwt.decode(stack.token(), options={"verify_signature": False})
    forged = jwt.encode({**real, "jti": uuid.uuid4().hex}, DEFAULT_SECRET, algorithm="HS256")
    assert _shaped(stack.api("GET", "/api/users/me", token=forged), 401)["code"] == "invalid_token"
    resigned = jwt.encode({**real, "jti": uuid.uuid4().hex}, secret, algorithm="HS256")
    assert stack.api("GET", "/api/users/me", token=resigned).status_code == 200  # the web process uses this file


def test_a_token_without_jti_is_401_on_logout_and_refresh(app_stack):
    secret = (Path(app_stack.env["VAR_DIR"]) / "secret_key").read_text().strip()
    claims = jwt.decode(app_stack.token(), options={"verify_signature": False})
    claims.pop("jti")
    token = jwt.encode(claims, secret, algorithm="HS256")
    for path in ("/api/auth/logout", "/api/auth/refresh"):
        assert _shaped(app_stack.api("POST", path, token=token), 401)["code"] == "invalid_token"
    assert app_stack.api("GET", "/api/users/me").status_code == 200  # the real token is untouched


def test_job_errors_do_not_reveal_the_workers_paths(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    model_dir = Path(stack.env["VAR_DIR"]) / "models"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "damaged.pt").write_bytes(b"not a torch file")
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "name": "broken",
        "model": {"name": "torchvision/fasterrcnn_mobilenet_v3_large_320_fpn", "weights": "damaged.pt"}})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["job_id"], timeout=180)
    assert job["status"] == "failed" and "damaged.pt" in job["error"], job
    for secret in (str(model_dir), stack.env["VAR_DIR"], str(ROOT)):
        assert secret not in job["error"], job["error"]
    session = stack.api("GET", f"/api/test-sessions/{r.json()['id']}").json()
    assert stack.env["VAR_DIR"] not in json.dumps(session)


def test_flower_metrics_need_the_basic_auth(stack):
    flower, base = start_flower(stack, "ops:metrics-pass")
    try:
        assert requests.get(base + "/metrics", timeout=10).status_code == 401
        assert requests.get(base + "/metrics", auth=("ops", "wrong"), timeout=10).status_code == 401
        ok = requests.get(base + "/metrics", auth=("ops", "metrics-pass"), timeout=10)
        assert ok.status_code == 200 and "flower_" in ok.text
        assert requests.get(base + "/api/workers", timeout=10).status_code == 401
    finally:
        flower.terminate()
        flower.wait(20)


# ------------------------------------------------------------------------------ smaller


def _multipart(parts: list[tuple[str, bytes, bytes | None]]) -> tuple[bytes, str]:
    """A multipart body built by hand, so names reach the server byte for byte."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value, filename in parts:
        out.write(f"--{boundary}\r\n".encode())
        disposition = b'Content-Disposition: form-data; name="' + name.encode() + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        out.write(disposition + b"\r\n")
        if filename is not None:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n" + value + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def test_two_file_parts_are_400(app_stack, tmp_path):
    project, video = project_with_video(app_stack, tmp_path)
    clip = make_clip(tmp_path / "two.avi", 10).read_bytes()
    body, ctype = _multipart([("project_id", project["id"].encode(), None), ("file", clip, b"a.avi"),
                              ("file", clip, b"b.avi")])
    before = app_stack.api("GET", "/api/videos", params={"project_id": project["id"]}).json()["total"]
    assert "2 'file' parts" in _shaped(app_stack.api("POST", "/api/videos", data=body,
                                                 headers={"Content-Type": ctype}), 400)["message"]
    assert app_stack.api("GET", "/api/videos", params={"project_id": project["id"]}).json()["total"] == before
    body, ctype = _multipart([("job_name", b"two", None), ("import_type", b"annotations", None),
                              ("source_format", b"csv", None), ("project_id", project["id"].encode(), None),
                              ("video_id", video["id"].encode(), None), ("file", b"x", b"a.csv"),
                              ("file", b"y", b"b.csv")])
    _shaped(app_stack.api("POST", "/api/import/jobs", data=body, headers={"Content-Type": ctype}), 400)


def test_a_json_route_refuses_other_content_types_with_415(app_stack):
    for ctype, data in (("text/plain", '{"name": "x"}'), ("application/x-www-form-urlencoded", "name=x"),
                        (None, b'{"name": "x"}')):
        headers = {"Content-Type": ctype} if ctype else {}
        r = app_stack.api("POST", "/api/projects", data=data, headers=headers)  # bytes alone: no Content-Type
        assert _shaped(r, 415)["code"] == "unsupported_media_type"
    assert app_stack.api("POST", "/api/projects", json={"name": "typed"}).status_code == 201


def test_hidden_characters_in_file_names_are_kept_but_not_shown(stack, tmp_path):
    project = stack.api("POST", "/api/projects", json={"name": f"names-{uuid.uuid4().hex[:6]}"}).json()
    raw = "clip\u202egpj.\x1b[31m\u2066evil.avi".encode()
    body, ctype = _multipart([("project_id", project["id"].encode(), None),
                              ("file", make_clip(tmp_path / "n.avi", 10).read_bytes(), raw)])
    r = stack.api("POST", "/api/videos", data=body, headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "clipgpj.[31mevil.avi"
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            stored = conn.scalar(select(Video.filename).where(Video.id == uuid.UUID(r.json()["id"])))
    finally:
        engine.dispose()
    assert stored == raw.decode()  # kept as uploaded
    listed = stack.api("GET", "/api/videos", params={"project_id": project["id"]}).json()["items"]
    assert [v["filename"] for v in listed] == ["clipgpj.[31mevil.avi"]

    session = _session(stack, project, r.json(), name="gt\u202etxt.exe\r\nX-Injected: 1")
    _annotate(stack, session, r.json(), start=0.0, end=0.5)
    export = stack.api("GET", f"/api/annotations/sessions/{session['id']}/export/csv")
    disposition = export.headers["Content-Disposition"]
    assert "X-Injected" not in export.headers and "\u202e" not in disposition and "\r" not in disposition
    assert "gttxt.exeX-Injected_ 1.csv" in disposition
    r = stack.api("POST", "/api/export/jobs", json={"job_name": "r\u00e9sum\u00e9\u202e", "export_type": "annotations",
                                                    "format": "csv",
                                                    "scope_filter": {"annotation_session_ids": [session["id"]]}})
    done = _wait_export(stack, r.json()["id"])
    disposition = stack.api("GET", f"/api/export/jobs/{done['id']}/download").headers["Content-Disposition"]
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.csv" in disposition and "%E2%80%AE" not in disposition


def test_every_route_answers_times_in_iso_8601(app_stack, tmp_path):
    """The session export that turns into a job and the import upload answered ``created_at`` as
    ``Fri, 04 Dec 2026 01:02:03 GMT``; every other route as ISO 8601."""
    import re
    from datetime import datetime

    project, video = project_with_video(app_stack, tmp_path)
    session = _session(app_stack, project, video)
    ann = _annotate(app_stack, session, video)
    answers = [app_stack.api("POST", f"/api/annotations/{ann['id']}/validate", json={"status": "validated"}),
               app_stack.api("GET", f"/api/annotations/sessions/{session['id']}/export/csv", params={"async": "1"}),
               app_stack.api("POST", "/api/import/jobs", data={
                   "job_name": "t", "import_type": "annotations", "source_format": "csv",
                   "project_id": project["id"], "video_id": video["id"]},
                   files={"file": ("t.csv", ",".join(formats.csvfile.ANNOTATION_COLUMNS) + "\r\n")})]
    assert [r.status_code for r in answers] == [200, 202, 202], [r.text for r in answers]
    for r in answers[1:]:
        datetime.fromisoformat(r.json()["created_at"])
    for path in (f"/api/projects/{project['id']}", f"/api/videos/{video['id']}", f"/api/annotations/{ann['id']}",
                 f"/api/annotations/sessions/{session['id']}", "/api/users/me", "/api/jobs", "/api/audit",
                 "/api/export/jobs", "/api/import/jobs"):
        got = app_stack.api("GET", path)
        assert got.status_code == 200, (path, got.text)
        answers.append(got)
    rfc1123 = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT")
    for r in answers:
        assert not rfc1123.search(r.text), (r.request.method, r.request.url, r.text[:500])
