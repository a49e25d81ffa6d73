"""Export and import jobs over the API, on the live stack: every format read back, round trips,
validation with locations, results into a test session, permissions, expiry and cancellation."""
from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from harness import project_with_video, wait_until
from sqlalchemy import create_engine, func, select, update

import formats
from formats import VideoInfo
from models import AnnotationSession, DetectionEvent, ExportJob, Job, TestSession, VideoAnnotation

# Imports write through COPY on PostgreSQL and through the ORM on SQLite.
pytestmark = pytest.mark.both_backends

FORMATS = ("csv", "coco", "yolo", "cvat_video", "mot", "json")


def _annotate(stack, project, video) -> tuple[dict, list[dict]]:
    session = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "gt",
        "annotation_type": "temporal"}).json()
    anns = []
    for label, (start, end), keys in (("pedestrian", (0.5, 2.0), [(5, (10, 20, 50, 100)), (20, (40, 30, 90, 120))]),
                                      ("cyclist", (1.0, 1.5), [(10, (200, 100, 260, 200))]),
                                      ("pedestrian", (3.0, 3.0), [])):
        ann = stack.api("POST", "/api/annotations/temporal", json={
            "annotation_session_id": session["id"], "video_id": video["id"], "start_timestamp": start,
            "end_timestamp": end, "annotation_type": "temporal", "class_label": label,
            "bounding_box": {"x1": 100, "y1": 100, "x2": 130, "y2": 180}})
        assert ann.status_code == 201, ann.text
        for frame, box in keys:
            r = stack.api("POST", f"/api/annotations/{ann.json()['id']}/keyframes", json={
                "frame_number": frame, "frame_data": {"bounding_box": dict(zip(("x1", "y1", "x2", "y2"), box,
                                                                               strict=True))}})
            assert r.status_code == 201, r.text
        anns.append(ann.json())
    return session, anns


def _expected_boxes(stack, anns) -> set[tuple]:
    out = set()
    for ann in anns:
        for b in stack.api("GET", f"/api/annotations/{ann['id']}/boxes").json()["boxes"]:
            bb = b["bounding_box"]
            out.add((ann["class_label"], b["frame_number"], bb["x1"], bb["y1"], bb["x2"], bb["y2"]))
    return out


def _export(stack, body: dict, token="admin") -> dict:
    r = stack.api("POST", "/api/export/jobs", token=token, json=body)
    assert r.status_code == 202, r.text
    assert r.headers["Location"].endswith(f"/api/export/jobs/{r.json()['id']}")
    return wait_until(lambda: (e := stack.api("GET", f"/api/export/jobs/{r.json()['id']}", token=token).json())
                      ["status"] in ("completed", "failed", "cancelled") and e, 90, 0.2, "export")


def _download(stack, export: dict, path: Path, token="admin") -> Path:
    r = stack.api("GET", f"/api/export/jobs/{export['id']}/download", token=token)
    assert r.status_code == 200, r.text
    path.write_bytes(r.content)
    return path


def _records_as_boxes(records) -> set[tuple]:
    return {(r.label, r.frame_number, *(round(v, 3) for v in r.box)) for r in records
            if not getattr(r, "outside", False)}


def _info(video) -> VideoInfo:
    return VideoInfo(video["width"], video["height"], video["frame_count"], video["fps"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_each_format_reads_back(stack, tmp_path, fmt):
    project, video = project_with_video(stack, tmp_path)
    session, anns = _annotate(stack, project, video)
    expected = _expected_boxes(stack, anns)
    export = _export(stack, {"job_name": f"gt {fmt}", "export_type": "annotations", "format": fmt,
                             "scope_filter": {"annotation_session_ids": [session["id"]]}})
    assert export["status"] == "completed", export
    assert export["file_size"] > 0 and len(export["sha256"]) == 64
    path = _download(stack, export, tmp_path / f"out{formats.EXTENSIONS[fmt]}")
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == export["sha256"]
    assert stack.api("GET", f"/api/export/jobs/{export['id']}").json()["download_count"] == 1
    if fmt == "json":
        rows = list(formats.read_document(path))
        assert {r.section for r in rows} >= {"videos", "annotation_sessions", "annotations", "keyframes"}
        assert sum(r.section == "annotations" for r in rows) == 3
        assert sum(r.section == "keyframes" for r in rows) == 3
        return
    reader = formats.open_reader(fmt, path, video=_info(video), classes=project["labels"])
    report = formats.open_reader(fmt, path, video=_info(video), classes=project["labels"]).validate()
    assert report.valid, report.to_dict()
    assert _records_as_boxes(reader) == expected


@pytest.mark.parametrize("fmt", ("csv", "cvat_video", "mot", "coco", "yolo"))
def test_import_round_trip_into_another_project(stack, tmp_path, fmt):
    project, video = project_with_video(stack, tmp_path)
    session, anns = _annotate(stack, project, video)
    first = _export(stack, {"job_name": "a", "export_type": "annotations", "format": fmt,
                            "scope_filter": {"annotation_session_ids": [session["id"]]}})
    path = _download(stack, first, tmp_path / f"first{formats.EXTENSIONS[fmt]}")
    other, other_video = project_with_video(stack, tmp_path)
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "round trip", "import_type": "annotations", "source_format": fmt,
            "project_id": other["id"], "video_id": other_video["id"]}, files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    imp = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}/status").json())
                     ["status"] in ("completed", "failed", "cancelled") and i, 90, 0.2, "import")
    assert imp["status"] == "completed", imp
    assert imp["validation_status"] == "valid" and imp["records_total"] > 0
    assert imp["records_processed"] == imp["records_total"]
    new_session = imp["annotation_session_id"]
    got = stack.api("GET", f"/api/annotations/sessions/{new_session}").json()
    assert got["project_id"] == other["id"] and got["video_id"] == other_video["id"]
    second = _export(stack, {"job_name": "b", "export_type": "annotations", "format": fmt,
                             "scope_filter": {"annotation_session_ids": [new_session]}})
    again = _download(stack, second, tmp_path / f"second{formats.EXTENSIONS[fmt]}")
    read = [formats.open_reader(fmt, p, video=_info(video), classes=project["labels"]) for p in (path, again)]
    assert _records_as_boxes(read[0]) == _records_as_boxes(read[1]) == _expected_boxes(stack, anns)
    if fmt in ("csv", "cvat_video"):  # keyframe flags travel: the same keyframes come back
        new_anns = stack.api("GET", f"/api/annotations/temporal?session_id={new_session}").json()["items"]
        rows = [stack.api("GET", f"/api/annotations/{a['id']}/keyframes").json() for a in new_anns]
        # every box is kept; those the source did not mark as keyframes say so
        assert sorted(sum(k["frame_data"].get("keyframe", True) for k in r) for r in rows) == [1, 1, 2]


def test_invalid_file_lists_every_problem_and_imports_nothing(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    header = ",".join(formats.csvfile.ANNOTATION_COLUMNS)
    lines = [header,
             ",1,,1,pedestrian,10,10,50,50,1,1,0,0,,",
             ",2,,1,pedestrian,500,500,600,600,1,1,0,0,,",   # wholly outside the 320x240 frame
             ",3,,2,dragon,10,10,20,20,1,1,0,0,,",           # unknown class
             ",4,,3,cyclist,nan,10,20,20,1,1,0,0,,",          # not finite
             ",5,,4,cyclist,-5,10,20,20,1,1,0,0,,"]           # partly outside: a warning, kept
    path = tmp_path / "bad.csv"
    path.write_text("\r\n".join(lines) + "\r\n")
    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        sessions_before = conn.scalar(select(func.count()).select_from(AnnotationSession))
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "bad", "import_type": "annotations", "source_format": "csv", "project_id": project["id"],
            "video_id": video["id"]}, files={"file": ("bad.csv", fh)})
    assert r.status_code == 202, r.text
    imp = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                     ["status"] in ("completed", "failed") and i, 90, 0.2, "import")
    assert imp["status"] == "failed" and imp["validation_status"] == "invalid", imp
    errors = [e for e in imp["validation_errors"] if e["severity"] == "error"]
    assert {(e["code"], e["line"]) for e in errors} == {("box_outside", 3), ("unknown_class", 4),
                                                        ("non_finite", 5)}, errors
    assert all(e["file"] for e in errors)
    assert any(w["code"] == "box_partly_outside" and w["line"] == 6 for w in imp["validation_errors"])
    assert "validation failed" in imp["error_message"]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AnnotationSession)) == sessions_before
    # The same file with on_error=skip imports the good rows and lists the skipped ones.
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "skip", "import_type": "annotations", "source_format": "csv", "project_id": project["id"],
            "video_id": video["id"], "on_error": "skip"}, files={"file": ("bad.csv", fh)})
    imp = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                     ["status"] in ("completed", "failed") and i, 90, 0.2, "import")
    assert imp["status"] == "completed", imp
    assert {e["line"] for e in imp["import_errors"]} == {3, 4, 5}
    anns = stack.api("GET", f"/api/annotations/temporal?session_id={imp['annotation_session_id']}").json()
    assert anns["total"] == 2
    engine.dispose()


def test_bad_requests_enqueue_nothing(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    engine = create_engine(stack.database_url)

    def jobs() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Job).where(Job.kind.in_(("export", "import"))))

    before = jobs()
    for body, field in (({"job_name": "x", "export_type": "annotations", "format": "pdf"}, "format"),
                        ({"job_name": "x", "export_type": "project", "format": "csv",
                          "scope_filter": {"project_ids": [project["id"]]}}, "format"),
                        ({"job_name": "x", "export_type": "annotations", "format": "csv"}, "scope_filter"),
                        ({"job_name": "x", "export_type": "annotations", "format": "csv",
                          "scope_filter": {"time_from": 5, "time_to": 1, "project_ids": [project["id"]]}},
                         "scope_filter")):
        r = stack.api("POST", "/api/export/jobs", json=body)
        assert r.status_code == 422, r.text
        assert field in json.dumps(r.json()["error"]["details"]), r.text
    r = stack.api("POST", "/api/export/jobs", json={"job_name": "x", "export_type": "annotations", "format": "csv",
                                                    "scope_filter": {"project_ids": [str(uuid.uuid4())]}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = stack.api("POST", "/api/import/jobs", data={"job_name": "x", "import_type": "annotations",
                                                    "source_format": "csv", "project_id": project["id"]},
                  files={"file": ("a.csv", b"x")})
    assert r.status_code == 422 and "video_id" in r.json()["error"]["details"]["fields"]["form"]
    r = stack.api("POST", "/api/import/jobs", data={"job_name": "x", "import_type": "results",
                                                    "source_format": "csv", "project_id": project["id"]},
                  files={"file": ("a.csv", b"x")})
    assert r.status_code == 422 and "test_session_id" in r.json()["error"]["details"]["fields"]["form"]
    r = stack.api("POST", "/api/import/jobs", data={"job_name": "x", "import_type": "annotations",
                                                    "source_format": "csv", "project_id": project["id"],
                                                    "video_id": video["id"]})
    assert r.status_code == 422
    assert jobs() == before
    engine.dispose()


def _test_session(stack, project, video) -> str:
    engine = create_engine(stack.database_url)
    ts_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(TestSession.__table__.insert().values(
            id=ts_id, project_id=uuid.UUID(project["id"]), video_id=uuid.UUID(video["id"]), name="imported",
            source="import", model={}, config={}, status="pending"))
    engine.dispose()
    return str(ts_id)


@pytest.mark.parametrize("fmt", ("csv", "mot", "coco", "yolo", "label_studio", "kitti_tracking"))
def test_results_import_into_a_test_session_and_export(stack, tmp_path, fmt):
    project, video = project_with_video(stack, tmp_path)
    ts = _test_session(stack, project, video)
    dets = [formats.Detection(f, "pedestrian" if i % 2 else "cyclist", (10.0 + f, 20.0, 60.0 + f, 90.0 + i),
                              round(0.3 + 0.1 * i, 2), None, None, None)
            for f in (0, 3, 7, 39) for i in range(3)]
    if fmt in formats.BY_TRACK:  # tracks, each in frame order
        dets = [formats.Detection(d.frame_number, d.label, d.box, d.score, n % 3 + 1) for n, d in enumerate(dets)]
        dets.sort(key=lambda d: (d.track_id, d.frame_number))
    src = tmp_path / f"results{formats.EXTENSIONS[fmt]}"
    info = VideoInfo(video["width"], video["height"], video["frame_count"], video["fps"], "clip")
    formats.write(fmt, src, dets, video=info, videos=[info], classes=project["labels"], kind="results")

    def run_import():
        with open(src, "rb") as fh:
            r = stack.api("POST", "/api/import/jobs", data={
                "job_name": "res", "import_type": "results", "source_format": fmt, "project_id": project["id"],
                "test_session_id": ts}, files={"file": (src.name, fh)})
        assert r.status_code == 202, r.text
        return wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                          ["status"] in ("completed", "failed") and i, 90, 0.2, "import")

    imp = run_import()
    assert imp["status"] == "completed", imp
    assert imp["test_session_id"] == ts and imp["result"]["detections"] == len(dets)
    engine = create_engine(stack.database_url)

    def stored():
        with engine.connect() as conn:
            return sorted((r.frame_number, r.class_label, round(r.x1, 3), round(r.y2, 3), round(r.confidence, 3))
                          for r in conn.execute(select(DetectionEvent)
                                                .where(DetectionEvent.test_session_id == uuid.UUID(ts))))

    want = sorted((d.frame_number, d.label, d.box[0], d.box[3], d.score) for d in dets)
    assert stored() == want
    assert run_import()["status"] == "completed"
    assert stored() == want  # the same import again duplicates nothing
    export = _export(stack, {"job_name": "r", "export_type": "results", "format": "csv",
                             "scope_filter": {"test_session_ids": [ts]}})
    out = _download(stack, export, tmp_path / "r.csv")
    back = list(formats.open_reader("csv", out, video=info, classes=project["labels"],
                                    options=formats.ReadOptions(kind="results")))
    assert sorted((d.frame_number, d.label, round(d.box[0], 3), round(d.box[3], 3), round(d.score, 3))
                  for d in back) == want  # (YOLO keeps 6 decimals of normalized coordinates)
    if fmt in formats.BY_TRACK:  # and out in the same format, grouped by track as it needs
        same = _export(stack, {"job_name": "r2", "export_type": "results", "format": fmt,
                               "scope_filter": {"test_session_ids": [ts]}})
        path = _download(stack, same, tmp_path / f"r2{formats.EXTENSIONS[fmt]}")
        again = list(formats.open_reader(fmt, path, video=info, classes=project["labels"],
                                         options=formats.ReadOptions(kind="results")))
        assert sorted((d.track_id, d.frame_number, d.label, round(d.box[0], 3), round(d.score, 3)) for d in again) \
            == sorted((d.track_id, d.frame_number, d.label, round(d.box[0], 3), round(d.score, 3)) for d in dets)
    engine.dispose()


def test_json_export_of_a_whole_project(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    _annotate(stack, project, video)
    stack.api("POST", f"/api/projects/{project['id']}/requirements",
              json={"requirement_type": "fps", "requirement_value": {"min": 5}})
    export = _export(stack, {"job_name": "all", "export_type": "project", "format": "json",
                             "scope_filter": {"project_ids": [project["id"]]}})
    assert export["status"] == "completed", export
    path = _download(stack, export, tmp_path / "p.json")
    rows = list(formats.read_document(path))
    sections = {}
    for r in rows:
        sections.setdefault(r.section, []).append(r.data)
    assert [p["id"] for p in sections["projects"]] == [uuid.UUID(project["id"])]
    assert sections["videos"][0]["checksum"] == video["checksum"]
    assert len(sections["requirements"]) == 1 and len(sections["annotations"]) == 3


def test_permissions_conflicts_and_expiry(stack, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    _, outsider = stack.create_user(f"x-out-{suffix}", "annotator")
    _, viewer = stack.create_user(f"x-view-{suffix}", "viewer")
    project, video = project_with_video(stack, tmp_path)
    stack.api("POST", f"/api/projects/{project['id']}/members", json={"username": f"x-view-{suffix}",
                                                                      "role": "viewer"})
    session, _ = _annotate(stack, project, video)
    body = {"job_name": "p", "export_type": "annotations", "format": "csv",
            "scope_filter": {"project_ids": [project["id"]]}}
    r = stack.api("POST", "/api/export/jobs", token=outsider, json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    export = _export(stack, body, token=viewer)  # members may export what they may read
    assert export["status"] == "completed", export
    assert stack.api("GET", f"/api/export/jobs/{export['id']}", token=outsider).status_code == 403
    assert stack.api("GET", f"/api/export/jobs/{export['id']}/download", token=outsider).status_code == 403
    listed = stack.api("GET", "/api/export/jobs?per_page=5", token=viewer).json()
    assert set(listed) == {"items", "total", "page", "per_page"} and listed["items"][0]["id"] == export["id"]
    assert stack.api("GET", "/api/export/jobs", token=outsider).json()["total"] == 0
    with open(__file__, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", token=viewer, data={
            "job_name": "v", "import_type": "annotations", "source_format": "csv", "project_id": project["id"],
            "video_id": video["id"]}, files={"file": ("a.csv", fh)})
    assert r.status_code == 403
    engine = create_engine(stack.database_url)
    with engine.begin() as conn:  # an export still running answers 409
        conn.execute(ExportJob.__table__.insert().values(
            id=(pending := uuid.uuid4()), job_name="p", export_type="annotations", format="csv",
            scope_filter={"project_ids": [project["id"]]}, status="processing", created_by=export["created_by"]))
    r = stack.api("GET", f"/api/export/jobs/{pending}/download", token=viewer)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    with engine.begin() as conn:  # expired: 410, and the beat task deletes the file
        conn.execute(update(ExportJob).where(ExportJob.id == uuid.UUID(export["id"]))
                     .values(expires_at=ExportJob.created_at))
    r = stack.api("GET", f"/api/export/jobs/{export['id']}/download", token=viewer)
    assert r.status_code == 410 and r.json()["error"]["code"] == "gone"
    from celery import Celery

    files = list((Path(stack.workdir) / "storage" / "exports").glob(f"{export['id']}*"))
    assert files
    Celery(broker=stack.redis_url).send_task("maintenance.expire_exports", queue="cpu", routing_key="cpu",
                                             exchange="cpu")
    wait_until(lambda: stack.api("GET", f"/api/export/jobs/{export['id']}", token=viewer).json()["status"]
               == "expired", 60, 0.2, "expiry")
    assert not any(f.exists() for f in files)
    # the blueprint's per-session export: small sessions answered directly
    r = stack.api("GET", f"/api/annotations/sessions/{session['id']}/export/csv", token=viewer)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert len(list(formats.open_reader("csv", _save(tmp_path / "d.csv", r.content), video=_info(video),
                                        classes=project["labels"]))) > 0
    assert stack.api("GET", f"/api/annotations/sessions/{session['id']}/export/csv",
                     token=outsider).status_code == 403
    r = stack.api("GET", f"/api/annotations/sessions/{session['id']}/export/csv?async=1", token=viewer)
    assert r.status_code == 202 and r.json()["format"] == "csv"
    engine.dispose()


def _save(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------ cancellation, in the job bodies


class _CancelAfter:
    """A job context that asks to stop after ``n`` progress points (the rows and files are real)."""

    def __init__(self, params: dict, n: int) -> None:
        self.params, self.n, self.calls = params, n, 0
        self.job_id = uuid.uuid4()

    def progress(self, *_args, **_kwargs) -> None:
        self.check_cancel()

    def check_cancel(self) -> None:
        from tasks.lifecycle import JobCancelled

        self.calls += 1
        if self.calls > self.n:
            raise JobCancelled("asked")


@pytest.fixture()
def worker_env(stack, monkeypatch):
    from tasks import runtime

    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    monkeypatch.setenv("STORAGE_DIR", str(Path(stack.workdir) / "storage"))
    monkeypatch.setenv("REDIS_URL", stack.redis_url)
    import settings

    monkeypatch.setattr(settings, "_cached", None)
    runtime.reset()
    yield
    runtime.reset()
    monkeypatch.setattr(settings, "_cached", None)


def test_cancelled_export_and_import_leave_nothing(stack, tmp_path, worker_env):
    from tasks.lifecycle import JobCancelled
    from tasks.transfer import export_body, exports_dir, import_body

    project, video = project_with_video(stack, tmp_path, frames=200)
    session = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "big",
        "annotation_type": "temporal"}).json()
    rows = [formats.Annotation(f, "pedestrian", (1.0 + t, 2.0, 30.0 + t, 40.0), t) for f in range(200)
            for t in range(30)]
    src = tmp_path / "big.csv"
    formats.write("csv", src, rows)
    engine = create_engine(stack.database_url)
    with open(src, "rb") as fh:  # queued for real; the body is also run here, cancelled part way
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "big", "import_type": "annotations", "source_format": "csv", "project_id": project["id"],
            "video_id": video["id"], "session_id": session["id"]}, files={"file": ("big.csv", fh)})
    done = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                      ["status"] in ("completed", "failed") and i, 90, 0.2, "import")
    assert done["status"] == "completed" and done["records_processed"] == 6000
    with engine.connect() as conn:
        params = conn.scalar(select(Job.params).where(Job.id == uuid.UUID(done["job_id"])))
        count = conn.scalar(select(func.count()).select_from(VideoAnnotation)
                            .where(VideoAnnotation.annotation_session_id == uuid.UUID(session["id"])))
    assert count == 30
    # A second import of the same file, cancelled after validation while writing: nothing of it stays.
    from models import ImportJob

    second = uuid.uuid4()
    from tasks.transfer import imports_dir

    stack.wait_job(done["job_id"])  # the job ends after its import, once the file is released
    assert not (imports_dir() / done["id"]).exists()  # the completed import's file is gone
    (imports_dir() / str(second)).mkdir()
    (imports_dir() / str(second) / "big.csv").write_bytes(src.read_bytes())
    with engine.begin() as conn:
        conn.execute(ImportJob.__table__.insert().values(
            id=second, job_name="again", import_type="annotations", source_format="csv",
            file_path=f"{second}/big.csv", created_by="test"))
    # Posted again, the same file into the same session is recognized and adds nothing.
    with open(src, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "big", "import_type": "annotations", "source_format": "csv", "project_id": project["id"],
            "video_id": video["id"], "session_id": session["id"]}, files={"file": ("big.csv", fh)})
    again = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                       ["status"] in ("completed", "failed") and i, 90, 0.2, "import")
    assert again["status"] == "completed" and again["result"]["duplicate_of"] == done["job_id"], again
    ctx = _CancelAfter({**params, "import_id": str(second), "sha256": None}, n=3)
    with pytest.raises(JobCancelled):
        import_body(ctx)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(VideoAnnotation)
                           .where(VideoAnnotation.annotation_session_id == uuid.UUID(session["id"]))) == 30
        # the body writes no job state: run outside the lifecycle, the row stays as it was
        # (the lifecycle records the cancel: test_job_state)
        assert conn.scalar(select(ImportJob.import_status).where(ImportJob.id == second)) == "pending"
    # An export cancelled while writing leaves no file, partial or complete.
    export_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(ExportJob.__table__.insert().values(
            id=export_id, job_name="c", export_type="annotations", format="coco",
            scope_filter={"annotation_session_ids": [session["id"]]}, status="pending", created_by="test"))
    before = set(exports_dir().iterdir())
    with pytest.raises(JobCancelled):
        export_body(_CancelAfter({"export_id": str(export_id)}, n=2))
    assert set(exports_dir().iterdir()) == before
    with engine.connect() as conn:
        assert conn.scalar(select(ExportJob.status).where(ExportJob.id == export_id)) == "pending"
    # and the same export run to its end produces a complete, readable file
    result = export_body(_CancelAfter({"export_id": str(export_id)}, n=10**9))
    final = exports_dir() / result["file_name"]
    assert len(list(formats.open_reader("coco", final, video=_info(video), classes=project["labels"]))) == 6000
    engine.dispose()


def test_yolo_export_of_several_videos_is_one_zip(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    _annotate(stack, project, video)
    clip = tmp_path / "second.avi"
    from harness import make_clip

    make_clip(clip)
    with open(clip, "rb") as fh:
        second = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                           files={"file": (clip.name, fh)}).json()
    _annotate(stack, project, second)
    export = _export(stack, {"job_name": "two", "export_type": "annotations", "format": "cvat_video",
                             "scope_filter": {"project_ids": [project["id"]]}})
    assert export["status"] == "completed", export
    r = stack.api("GET", f"/api/export/jobs/{export['id']}/download")
    assert r.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert len(zf.namelist()) == 2 and all(n.endswith(".xml") for n in zf.namelist())


# ------------------------------------------------------------------------------ whole projects from json


def _canonical(path: Path) -> dict[str, list]:
    """The document's sections with every id replaced by the order it first appears in (meta left out).

    Equal canonical forms mean: the same rows in the same order, with the same values, and every
    reference pointing at the corresponding row. Detection ids (a counter of the database) are left
    out; their rows' order is compared.
    """
    names: dict = {}

    def canon(value):
        if isinstance(value, uuid.UUID):
            return names.setdefault(value, f"#{len(names)}")
        if isinstance(value, dict):
            return {k: canon(v) for k, v in value.items()}
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value

    sections: dict[str, list] = {}
    for row in formats.read_document(path):
        data = dict(row.data)
        if row.section == "detections":
            data.pop("id")
        sections.setdefault(row.section, []).append(canon(data))
    return sections


def _whole_project(stack, tmp_path, token="admin") -> tuple[dict, dict, Path]:
    """A project with a requirement, an assignment, annotations, a test session with detections; exported."""
    from models import ProjectVideoAssignment

    project, video = project_with_video(stack, tmp_path, token=token)
    session, _ = _annotate(stack, project, video)
    r = stack.api("POST", f"/api/projects/{project['id']}/requirements", token=token,
                  json={"requirement_type": "fps", "requirement_value": {"min": 5}})
    assert r.status_code == 201, r.text
    ts = _test_session(stack, project, video)
    engine = create_engine(stack.database_url)
    with engine.begin() as conn:
        conn.execute(update(TestSession).where(TestSession.id == uuid.UUID(ts)).values(
            ground_truth_session_id=uuid.UUID(session["id"]), status="completed", metrics={"f1": 0.5}))
        conn.execute(DetectionEvent.__table__.insert(), [
            {"test_session_id": uuid.UUID(ts), "frame_number": f, "detection_index": i, "timestamp": f / 10,
             "class_label": "pedestrian", "confidence": 0.25 + i / 10, "x1": 10.5 + f, "y1": 20.0, "x2": 50.0 + f,
             "y2": 90.25, "track_id": i or None} for f in (0, 1, 7) for i in range(3)])
        conn.execute(ProjectVideoAssignment.__table__.insert().values(
            id=uuid.uuid4(), project_id=uuid.UUID(project["id"]), video_id=uuid.UUID(video["id"]),
            assignment_type="manual", compatibility_score=0.75, assigned_by="someone", status="active",
            metadata={"why": "test"}))
    engine.dispose()
    export = _export(stack, {"job_name": "whole", "export_type": "project", "format": "json",
                             "scope_filter": {"project_ids": [project["id"]]}}, token=token)
    assert export["status"] == "completed", export
    return project, video, _download(stack, export, tmp_path / f"project-{uuid.uuid4().hex[:6]}.json", token=token)


def _import_project(stack, path: Path, token="admin", **form) -> dict:
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", token=token, data={
            "job_name": "restore", "import_type": "project", "source_format": "json", **form},
            files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    return wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}", token=token).json())
                      ["status"] in ("completed", "failed", "cancelled") and i, 90, 0.2, "project import")


def test_json_project_round_trip_is_exact(stack, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    _, annotator = stack.create_user(f"x-proj-{suffix}", "annotator")
    project, video, first = _whole_project(stack, tmp_path, token=annotator)
    imp = _import_project(stack, first, token=annotator)
    assert imp["status"] == "completed", imp
    assert imp["validation_status"] == "valid" and imp["records_processed"] == imp["records_total"] > 20
    (new_id,) = imp["project_ids"]
    assert new_id != project["id"]
    got = stack.api("GET", f"/api/projects/{new_id}", token=annotator)
    assert got.status_code == 200 and got.json()["my_role"] == "admin"  # the importer administers it
    again = _export(stack, {"job_name": "again", "export_type": "project", "format": "json",
                            "scope_filter": {"project_ids": [new_id]}}, token=annotator)
    second = _download(stack, again, tmp_path / "second.json", token=annotator)
    a, b = _canonical(first), _canonical(second)
    from formats.project import SECTIONS

    assert set(a) == set(SECTIONS)
    assert {k: len(v) for k, v in a.items()} == {k: len(v) for k, v in b.items()}
    assert a == b
    rows = {s: [r.data for r in formats.read_document(second) if r.section == s] for s in ("projects", "videos")}
    assert rows["projects"][0]["id"] == uuid.UUID(new_id)
    new_video = rows["videos"][0]
    assert new_video["id"] != uuid.UUID(video["id"]) and new_video["project_id"] == uuid.UUID(new_id)
    assert new_video["checksum"] == video["checksum"]  # the same file, shared
    # the new project is usable: its video streams boxes through the ordinary routes
    sessions = stack.api("GET", f"/api/annotations/sessions?project_id={new_id}", token=annotator).json()
    assert sessions["total"] == 1
    anns = stack.api("GET", f"/api/annotations/temporal?session_id={sessions['items'][0]['id']}",
                     token=annotator).json()
    assert anns["total"] == 3
    # and the source project is untouched
    assert _canonical(_download(stack, _export(stack, {
        "job_name": "src", "export_type": "project", "format": "json",
        "scope_filter": {"project_ids": [project["id"]]}}, token=annotator), tmp_path / "src.json",
        token=annotator)) == a


def test_invalid_project_document_lists_located_errors_and_writes_nothing(stack, tmp_path):
    from models import Project

    _, _, path = _whole_project(stack, tmp_path)
    doc = json.loads(path.read_text())
    sections = doc["sections"]
    sections["annotations"][0]["end_timestamp"] = -1.0                       # ends before it starts
    sections["annotations"][1]["class_label"] = 7                              # wrong type
    sections["keyframes"][0]["annotation_id"] = {"$uuid": str(uuid.uuid4())}  # refers to nothing
    sections["detections"][1]["detection_index"] = 0                          # (frame, index) twice
    sections["videos"][0]["checksum"] = uuid.uuid4().hex * 2                   # a video this platform lacks
    del sections["requirements"][0]["weight"]                                  # missing
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    engine = create_engine(stack.database_url)

    def counts():
        with engine.connect() as conn:
            return [conn.scalar(select(func.count()).select_from(t)) for t in
                    (Project, AnnotationSession, VideoAnnotation, TestSession, DetectionEvent)]

    before = counts()
    imp = _import_project(stack, bad)
    assert imp["status"] == "failed" and imp["validation_status"] == "invalid", imp
    assert "nothing was imported" in imp["error_message"]
    errors = {(e["code"], e["pointer"], e.get("field")) for e in imp["validation_errors"] if e["severity"] == "error"}
    assert errors == {("end_before_start", "/sections/annotations/0", "end_timestamp"),
                      ("type", "/sections/annotations/1", "class_label"),
                      ("reference", "/sections/keyframes/0", "annotation_id"),
                      ("duplicate", "/sections/detections/1", "detection_index"),
                      ("reference", "/sections/videos/0", "checksum"),
                      ("structure", "/sections/requirements/0", "weight")}, imp["validation_errors"]
    assert all(e["file"] == "bad.json" for e in imp["validation_errors"])
    assert counts() == before
    # wrong content for the declared format is refused before anything else
    csv = tmp_path / "not-a-project.json"
    csv.write_text("frame,label\n1,x\n")
    imp = _import_project(stack, csv)
    assert imp["status"] == "failed" and imp["validation_errors"][0]["code"] == "wrong_format", imp
    assert counts() == before
    engine.dispose()


def test_project_import_permissions_and_bad_requests(stack, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    _, viewer = stack.create_user(f"x-pv-{suffix}", "viewer")
    _, outsider = stack.create_user(f"x-po-{suffix}", "annotator")
    project, _, path = _whole_project(stack, tmp_path)
    with open(path, "rb") as fh:  # viewers create no projects
        r = stack.api("POST", "/api/import/jobs", token=viewer, data={
            "job_name": "v", "import_type": "project", "source_format": "json"}, files={"file": (path.name, fh)})
    assert r.status_code == 403
    for extra, field in (({"source_format": "csv"}, "source_format"), ({"on_error": "skip"}, "on_error"),
                         ({"project_id": project["id"]}, "project_id")):
        with open(path, "rb") as fh:
            r = stack.api("POST", "/api/import/jobs", data={
                "job_name": "x", "import_type": "project", "source_format": "json", **extra},
                files={"file": (path.name, fh)})
        assert r.status_code == 422 and field in r.json()["error"]["details"]["fields"]["form"], r.text
    # an annotator outside the project cannot reach its video through a document naming its checksum
    imp = _import_project(stack, path, token=outsider)
    assert imp["status"] == "failed", imp
    assert [(e["code"], e["pointer"], e["field"]) for e in imp["validation_errors"] if e["severity"] == "error"] \
        == [("reference", "/sections/videos/0", "checksum")]
    assert stack.api("GET", "/api/projects", token=outsider).json()["total"] == 0
    # the import job is its creator's: others do not see it
    assert stack.api("GET", f"/api/import/jobs/{imp['id']}", token=viewer).status_code == 403


def test_an_import_delivered_again_after_its_commit_writes_nothing_and_reports_its_session(stack, tmp_path):
    """The worker died after the import's transaction committed but before the job was marked done:
    the next delivery finds the import complete, writes nothing and still answers where it went."""
    from datetime import timedelta

    from models import utcnow

    project, video = project_with_video(stack, tmp_path)
    session, _ = _annotate(stack, project, video)
    export = _export(stack, {"job_name": "src", "export_type": "annotations", "format": "csv",
                             "scope_filter": {"annotation_session_ids": [session["id"]]}})
    path = _download(stack, export, tmp_path / "src.csv")
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "again", "import_type": "annotations", "source_format": "csv",
            "project_id": project["id"], "video_id": video["id"]}, files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    first = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                       ["status"] in ("completed", "failed") and i, 90, 0.2, "import")
    assert first["status"] == "completed", first
    job_id = uuid.UUID(first["job_id"])
    engine = create_engine(stack.database_url)

    def annotations():
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(VideoAnnotation).where(
                VideoAnnotation.annotation_session_id == uuid.UUID(first["annotation_session_id"])))

    before = annotations()
    with engine.begin() as conn:  # as if the attempt died right after its commit, its message lost
        conn.execute(update(Job).where(Job.id == job_id).values(
            status="pending", result=None, finished_at=None, dispatched_at=utcnow() - timedelta(minutes=5)))
    stack.start_beat()  # the reaper sends the job again
    try:
        job = stack.wait_job(str(job_id), timeout=90)
    finally:
        stack.stop("beat")
    engine_count = annotations()
    engine.dispose()
    assert job["status"] == "completed", job
    assert job["result"]["annotation_session_id"] == first["annotation_session_id"]
    assert job["result"]["completed_by_earlier_attempt"] is True
    assert engine_count == before > 0


def _mot_import(stack, path: Path, **form) -> dict:
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={"job_name": "mot", "source_format": "mot", **form},
                      files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    return wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                      ["status"] in ("completed", "failed") and i, 90, 0.2, "import")


def test_mot15_ground_truth_takes_default_label_and_mot17_marks_survive_import(stack, tmp_path):
    from models import AnnotationKeyframe

    project, video = project_with_video(stack, tmp_path)
    mot15 = tmp_path / "mot15.zip"
    with zipfile.ZipFile(mot15, "w") as zf:  # 2D MOT 2015: conf then world x,y,z, no class
        zf.writestr("PETS/gt/gt.txt", "1,1,10,20,30,60,1,4.4852,9.9731,0\n2,1,12,20,30,60,1,4.5101,9.9612,0\n"
                                      "1,2,100,20,30,60,1,-1,-1,-1\n")
    imp = _mot_import(stack, mot15, import_type="annotations", project_id=project["id"], video_id=video["id"],
                      default_label="pedestrian")
    assert imp["status"] == "completed", imp
    assert imp["result"]["annotations"] == 2 and imp["validation_errors"] == []
    mot17 = tmp_path / "mot17.zip"
    with zipfile.ZipFile(mot17, "w") as zf:
        zf.writestr("S/gt/gt.txt", "1,1,10,20,30,60,1,1,0.75\n1,2,100,20,30,60,0,7,1\n2,2,100,20,30,60,0,7,0.5\n")
        zf.writestr("S/gt/labels.txt", "\n".join(formats.mot.MOT17_CLASSES))
    imp = _mot_import(stack, mot17, import_type="annotations", project_id=project["id"], video_id=video["id"],
                      label_map=json.dumps({"static_person": "pedestrian"}))
    assert imp["status"] == "completed", imp
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(VideoAnnotation.class_label, AnnotationKeyframe.frame_number,
                                       AnnotationKeyframe.frame_data)
                                .join(AnnotationKeyframe, AnnotationKeyframe.annotation_id == VideoAnnotation.id)
                                .where(VideoAnnotation.annotation_session_id ==
                                       uuid.UUID(imp["result"]["annotation_session_id"]))
                                .order_by(VideoAnnotation.confidence.desc(), AnnotationKeyframe.frame_number)).all()
    finally:
        engine.dispose()
    marks = [(label, frame, data.get("visibility"), data.get("attributes")) for label, frame, data in rows]
    assert marks == [("pedestrian", 0, 0.75, None),
                     ("pedestrian", 0, 1.0, {"mot_ignore": True, "mot_class": "static_person"}),
                     ("pedestrian", 1, 0.5, {"mot_ignore": True, "mot_class": "static_person"})]


# ------------------------------------------------------------------------------ exact interchange


CVAT_TASK = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><size>40</size><mode>interpolation</mode><start_frame>0</start_frame><stop_frame>39</stop_frame>
    <labels><label><name>pedestrian</name></label><label><name>cyclist</name></label>
      <label><name>skeleton</name><type>skeleton</type></label><label><name>1</name></label></labels>
    <original_size><width>320</width><height>240</height></original_size></task></meta>
  <track id="7" label="pedestrian" source="manual">
    <box frame="0" outside="0" occluded="0" keyframe="1" xtl="10" ytl="20" xbr="50" ybr="100" z_order="0"></box>
    <box frame="1" outside="0" occluded="0" keyframe="0" xtl="12.5" ytl="20" xbr="52.5" ybr="100" z_order="0"></box>
    <box frame="2" outside="0" occluded="1" keyframe="0" xtl="17.25" ytl="21" xbr="57.25" ybr="101" z_order="0"></box>
    <box frame="3" outside="0" occluded="0" keyframe="1" xtl="19" ytl="22" xbr="59" ybr="102" z_order="0"></box>
    <box frame="4" outside="1" occluded="0" keyframe="1" xtl="19" ytl="22" xbr="59" ybr="102" z_order="0"></box>
    <box frame="10" outside="0" occluded="0" keyframe="1" xtl="100" ytl="50" xbr="140" ybr="130" z_order="0"></box>
    <box frame="11" outside="0" occluded="1" keyframe="1" xtl="101" ytl="50" xbr="141" ybr="130" z_order="0"></box>
    <box frame="12" outside="1" occluded="0" keyframe="1" xtl="101" ytl="50" xbr="141" ybr="130" z_order="0"></box>
  </track>
  <track id="3" label="skeleton" source="manual">
    <skeleton frame="0" outside="0" occluded="0" keyframe="1" points="1,2;3,4" z_order="0"></skeleton>
    <track id="0" label="1" source="manual">
      <points frame="0" outside="0" occluded="0" keyframe="1" points="1,2" z_order="0"></points>
    </track>
  </track>
  <track id="12" label="cyclist" source="manual">
    <box frame="5" outside="0" occluded="0" keyframe="1" xtl="200.5" ytl="60" xbr="240" ybr="150.75" z_order="0"></box>
    <box frame="6" outside="0" occluded="0" keyframe="1" xtl="201.5" ytl="60" xbr="241" ybr="150.75" z_order="0"></box>
    <box frame="7" outside="1" occluded="0" keyframe="1" xtl="201.5" ytl="60" xbr="241" ybr="150.75" z_order="0"></box>
  </track>
</annotations>
"""


def _cvat_shapes(xml: bytes) -> set[tuple]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    return {(int(t.get("id")), t.get("label"), int(b.get("frame")), b.get("outside"), b.get("occluded"),
             b.get("keyframe"), *(round(float(b.get(k)), 4) for k in ("xtl", "ytl", "xbr", "ybr")))
            for t in root.findall("track") for b in t.findall("box")}


def _import_file(stack, project, video, path: Path, fmt: str, **form) -> dict:
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": f"{fmt} in", "import_type": form.pop("import_type", "annotations"), "source_format": fmt,
            "project_id": project["id"], "video_id": video["id"], **form}, files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    return wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                      ["status"] in ("completed", "failed", "cancelled") and i, 90, 0.2, "import")


def test_cvat_video_comes_in_and_goes_out_exactly(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    src = tmp_path / "task.xml"
    src.write_text(CVAT_TASK)
    imp = _import_file(stack, project, video, src, "cvat_video")
    assert imp["status"] == "completed", imp
    # the skeleton track is skipped with a warning where it is, not a refusal of the whole file
    (skipped,) = [w for w in imp["result"]["warnings"] if w["code"] == "unsupported"]
    assert skipped["line"] == 19 and "skeleton" in skipped["message"]
    session = imp["annotation_session_id"]
    anns = stack.api("GET", f"/api/annotations/temporal?session_id={session}").json()["items"]
    walker = next(a for a in anns if a["class_label"] == "pedestrian")
    boxes = stack.api("GET", f"/api/annotations/{walker['id']}/boxes").json()["boxes"]
    assert [b["frame_number"] for b in boxes] == [0, 1, 2, 3, 10, 11]  # no box while it is gone (4-9)
    assert boxes[2]["bounding_box"] == {"x1": 17.25, "y1": 21.0, "x2": 57.25, "y2": 101.0}  # not re-interpolated
    export = _export(stack, {"job_name": "cvat out", "export_type": "annotations", "format": "cvat_video",
                             "scope_filter": {"project_ids": [project["id"]]}})
    assert export["status"] == "completed", export
    r = stack.api("GET", f"/api/export/jobs/{export['id']}/download")
    assert r.headers["Content-Type"].startswith("application/xml")  # one video: plain XML, named so
    assert r.headers["Content-Disposition"].rstrip('"').endswith('.xml')
    want = _cvat_shapes(CVAT_TASK.encode())
    assert _cvat_shapes(r.content) == {s for s in want if s[1] != "skeleton"}
    # track ids survive the formats that have one
    for fmt, ids in (("mot", lambda p: {int(line.split(",")[1]) for line in _only_member(p, "gt.txt").splitlines()}),
                     ("coco", lambda p: {a["track_id"] for a in json.loads(p.read_text())["annotations"]})):
        out = _export(stack, {"job_name": fmt, "export_type": "annotations", "format": fmt,
                              "scope_filter": {"annotation_session_ids": [session]}})
        assert ids(_download(stack, out, tmp_path / f"ids{formats.EXTENSIONS[fmt]}")) == {7, 12}, fmt


def _only_member(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as zf:
        (member,) = [n for n in zf.namelist() if n.endswith(name)]
        return zf.read(member).decode()


def test_results_export_of_two_test_sessions_of_one_video(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    sessions = [_test_session(stack, project, video) for _ in range(2)]
    for n, ts in enumerate(sessions):
        src = tmp_path / f"r{n}.csv"
        formats.write("csv", src, [formats.Detection(f, "pedestrian", (10.0 + n, 20.0, 60.0, 90.0), 0.5)
                                   for f in range(3)], kind="results")
        assert _import_file(stack, project, video, src, "csv", import_type="results",
                            test_session_id=ts)["status"] == "completed"
    export = _export(stack, {"job_name": "both", "export_type": "results", "format": "coco",
                             "scope_filter": {"project_ids": [project["id"]]}})
    assert export["status"] == "completed", export
    res = json.loads(_download(stack, export, tmp_path / "res.json").read_text())
    assert sorted({round(d["bbox"][0]) for d in res}) == [10, 11] and len(res) == 6


def test_coco_results_from_another_tool_are_mapped_by_id_and_the_mapping_is_said(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    ts = _test_session(stack, project, video)
    src = tmp_path / "dets.json"  # COCO's own numbering: 2 bicycle, 3 car
    src.write_text(json.dumps([{"image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20], "score": 0.9},
                               {"image_id": 2, "category_id": 2, "bbox": [5, 5, 10, 10], "score": 0.8}]))
    imp = _import_file(stack, project, video, src, "coco", import_type="results", test_session_id=ts,
                       label_map=json.dumps({"3": "pedestrian", "2": "cyclist"}))
    assert imp["status"] == "completed", imp
    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        got = sorted((r.frame_number, r.class_label) for r in conn.execute(
            select(DetectionEvent).where(DetectionEvent.test_session_id == uuid.UUID(ts))))
    engine.dispose()
    assert got == [(0, "pedestrian"), (1, "cyclist")]
    unmapped = _import_file(stack, project, video, src, "coco", import_type="results", test_session_id=ts)
    said = [w for w in unmapped["result"]["warnings"] if w["code"] == "class_mapped"]
    assert [w["pointer"] for w in said] == ["/0", "/1"] and "label_map" in said[0]["message"]


def test_yolo_export_is_an_ultralytics_dataset_with_its_frames(stack, tmp_path):
    import yaml

    project, video = project_with_video(stack, tmp_path)
    session, anns = _annotate(stack, project, video)
    expected = _expected_boxes(stack, anns)
    for with_images in (True, False):
        export = _export(stack, {"job_name": "y", "export_type": "annotations", "format": "yolo",
                                 "include_images": with_images,
                                 "scope_filter": {"annotation_session_ids": [session["id"]]}})
        root = tmp_path / f"y{with_images}"
        with zipfile.ZipFile(_download(stack, export, tmp_path / f"y{with_images}.zip")) as zf:
            zf.extractall(root)
        data = yaml.safe_load((root / "data.yaml").read_text())
        assert (root / data["train"]).is_dir() and data["names"] == dict(enumerate(project["labels"]))
        labels = sorted(p.stem for p in (root / "labels/train").glob("*.txt"))
        images = sorted(p.stem for p in (root / "images/train").glob("*.jpg"))
        assert images == (labels if with_images else [])
    import cv2

    frame = cv2.imread(str(tmp_path / "yTrue/images/train/frame_000005.jpg"))
    assert frame.shape == (video["height"], video["width"], 3)
    dm = pytest.importorskip("datumaro")
    ds = dm.Dataset.import_from(str(tmp_path / "yTrue"), "yolo")
    names = ds.categories()[dm.AnnotationType.label]
    got = {(names[a.label].name, int(i.id.rsplit("_", 1)[-1]), *(round(v, 3) for v in (
        a.x, a.y, a.x + a.w, a.y + a.h))) for i in ds for a in i.annotations}
    assert len(got) == len(expected)
    for g in got:
        assert any(g[:2] == e[:2] and all(abs(x - y) <= 0.01 for x, y in zip(g[2:], e[2:], strict=True))
                   for e in expected), g


@pytest.mark.parametrize("fmt", ("label_studio", "kitti_tracking"))
def test_new_formats_round_trip_through_the_platform(stack, tmp_path, fmt):
    project, video = project_with_video(stack, tmp_path)
    session, anns = _annotate(stack, project, video)
    first = _export(stack, {"job_name": "a", "export_type": "annotations", "format": fmt,
                            "scope_filter": {"annotation_session_ids": [session["id"]]}})
    assert first["status"] == "completed", first
    path = _download(stack, first, tmp_path / f"first{formats.EXTENSIONS[fmt]}")
    other, other_video = project_with_video(stack, tmp_path)
    imp = _import_file(stack, other, other_video, path, fmt)
    assert imp["status"] == "completed" and imp["validation_status"] == "valid", imp
    second = _export(stack, {"job_name": "b", "export_type": "annotations", "format": fmt,
                             "scope_filter": {"annotation_session_ids": [imp["annotation_session_id"]]}})
    again = _download(stack, second, tmp_path / f"second{formats.EXTENSIONS[fmt]}")
    read = [formats.open_reader(fmt, p, video=_info(video), classes=project["labels"]) for p in (path, again)]
    assert _records_as_boxes(read[0]) == _records_as_boxes(read[1]) == _expected_boxes(stack, anns)


def test_messages_name_only_options_the_api_has(tmp_path):
    from formats.base import IMPORT_OPTIONS
    from webapp.routes.transfer import ImportForm

    api = set(ImportForm().fields)
    assert set(IMPORT_OPTIONS) <= api
    engine_only = {"frame_map", "default_label", "coco_gt", "video_id", "kind", "limits", "max_issues"} - api
    info = VideoInfo(64, 48, 10)
    cases = {  # a file each that needs an option to be read
        "coco": ('{"images":[{"id":1,"file_name":"a.jpg"},{"id":2,"file_name":"b.jpg","video_id":"x"},'
                 '{"id":3,"file_name":"c1.jpg","video_id":"y"}],"categories":[{"id":1,"name":"bus"}],'
                 '"annotations":[]}', ".json"),
        "csv": ("video_id,frame_number,label,x1,y1,x2,y2\na,1,bus,1,1,5,5\nb,1,bus,1,1,5,5\n", ".csv"),
        "label_studio": ('[{"id":1,"data":{}},{"id":2,"data":{}}]', ".json"),
        "kitti_tracking": ("0 0 bus 0 0 0 1 1 5 5 1 1 1 1 1 1 0\n", ".txt"),
    }
    suggested: dict[str, set[str]] = {}
    for fmt, (text, ext) in cases.items():
        path = tmp_path / f"f{ext}"
        path.write_text(text)
        for issue in formats.validate(fmt, path, video=info, classes=["pedestrian"]).issues:
            words = set(issue.message.replace(",", " ").replace(";", " ").replace("(", " ").replace(")", " ").split())
            assert not words & engine_only, (fmt, issue.message)
            suggested.setdefault(fmt, set()).update(words & set(IMPORT_OPTIONS))
    # each file's message suggests the option that fixes it
    assert suggested == {"coco": {"frame_map", "source_video_id", "label_map", "add_missing_labels"},
                         "csv": {"source_video_id", "label_map", "add_missing_labels"},
                         "label_studio": {"source_video_id"},
                         "kitti_tracking": {"label_map", "add_missing_labels"}}
