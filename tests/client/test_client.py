"""The Python client against a real stack: resources, typed errors, retries, streaming, live progress."""
from __future__ import annotations

import csv
import json
import time
import tracemalloc
from pathlib import Path

import pytest
from harness import make_clip, own_stack

from client import Client, JobFailed, NotFound, RateLimited, Unauthorized, UnsupportedMediaType, ValidationFailed

#: The client is not about the database: one backend is enough.
on_sqlite = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


@pytest.fixture()
def api(stack) -> Client:
    return Client(stack.base, stack.token(), poll_interval=0.2)


@on_sqlite
def test_every_resource_round_trip(stack, api, tmp_path):
    project = api.projects.create(f"client {time.time_ns()}", labels=["pedestrian", "cyclist"],
                                  camera_metadata={"mount": "windshield"})
    assert api.projects.get(project["id"])["camera_metadata"] == {"mount": "windshield"}
    assert api.projects.update(project["id"], description="night set")["description"] == "night set"
    assert project["id"] in {p["id"] for p in api.projects.list()}
    user_id, _ = stack.create_user(f"member{time.time_ns()}", "annotator")
    api.projects.add_member(project["id"], "annotator", user_id=user_id)
    assert user_id in {m["user_id"] for m in api.projects.members(project["id"])}

    clip = make_clip(tmp_path / "clip.avi", frames=12)
    seen: list[tuple[int, int]] = []
    video = api.videos.upload(clip, project_id=project["id"], progress=lambda done, total: seen.append((done, total)))
    assert video["frame_count"] == 12 and seen[-1] == (clip.stat().st_size, clip.stat().st_size)
    assert api.videos.get(video["id"])["checksum"] == video["checksum"]
    assert [v["id"] for v in api.videos.list(project_id=project["id"])] == [video["id"]]
    frame = api.videos.frame(video["id"], 3, tmp_path / "f3.jpg")
    assert frame.read_bytes()[:2] == b"\xff\xd8"

    session = api.annotation_sessions.create(project["id"], video["id"], "ground truth")
    assert api.annotation_sessions.get(session["id"])["session_name"] == "ground truth"
    rows = "\n".join(["frame_number,track_id,label,x1,y1,x2,y2"]
                     + [f"{f},1,pedestrian,{10 + f},20,{60 + f},120" for f in range(0, 12, 3)])
    source = tmp_path / "gt.csv"
    source.write_text(rows + "\n")
    imp = api.imports.create(source, import_type="annotations", source_format="csv", project_id=project["id"],
                             session_id=session["id"])
    final = api.jobs.wait(imp["job_id"], timeout=120)
    assert final[imp["job_id"]]["status"] == "completed"
    assert api.imports.get(imp["id"])["records_processed"] == 4
    annotations = list(api.annotation_sessions.annotations(session_id=session["id"]))
    assert len(annotations) == 1 and annotations[0]["class_label"] == "pedestrian"

    exp = api.exports.create("annotations", "csv", annotation_session_ids=[session["id"]])
    api.jobs.wait(exp["job_id"], timeout=120)
    out = api.exports.download(exp["id"], tmp_path / "out" / "export.csv")
    exported = [r for r in csv.DictReader(out.open()) if r["outside"] == "0"]  # not the row ending the track
    assert [int(r["frame_number"]) for r in exported] == list(range(10))  # frames 0-9, interpolated
    assert sum(int(r["keyframe"]) for r in exported) == 4 and not list(out.parent.glob(".*.part"))

    assert isinstance(api.models.list(), list | dict)
    ts = api.test_sessions.create(project["id"], video["id"], {"name": "opencv/hog-people",
                                                              "confidence_threshold": 0.4}, name="client hog")
    api.jobs.wait(ts["job_id"], timeout=300)
    assert api.test_sessions.get(ts["id"])["status"] == "completed"
    assert isinstance(list(api.test_sessions.detections(ts["id"])), list)
    assert ts["id"] in {t["id"] for t in api.test_sessions.list(project_id=project["id"])}
    assert api.jobs.get(ts["job_id"])["kind"] == "detection"
    assert "paths" in api.openapi()


@on_sqlite
def test_errors_are_typed_with_the_platform_shape(stack, api, tmp_path):
    with pytest.raises(NotFound) as missing:
        api.projects.get("00000000-0000-0000-0000-000000000000")
    assert missing.value.status == 404 and missing.value.code == "not_found" and missing.value.message
    with pytest.raises(ValidationFailed) as invalid:
        api.projects.create("", labels=["pedestrian"])
    assert "name" in json.dumps(invalid.value.field_errors())
    with pytest.raises(Unauthorized) as unauth:
        Client(stack.base, "not-a-token").me()
    assert unauth.value.status == 401
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(UnsupportedMediaType):
        api.videos.upload(junk)


@on_sqlite
def test_waiting_on_a_job_live_and_by_polling(stack, api):
    updates: list[dict] = []
    job = stack.probe("cpu", steps=5, step_seconds=0.2).json()
    final = api.jobs.wait(job["id"], on_update=updates.append, timeout=60)
    assert final[job["id"]]["status"] == "completed" and api.last_wait_mode == "socket"
    seqs = [u["seq"] for u in updates]
    assert seqs == sorted(seqs) and updates[-1]["status"] == "completed"

    polled: list[dict] = []
    job = stack.probe("cpu", steps=3, step_seconds=0.2).json()
    final = api.jobs.wait(job["id"], on_update=polled.append, live=False, timeout=60)
    assert final[job["id"]]["status"] == "completed" and api.last_wait_mode == "polling"
    assert polled[-1]["status"] == "completed"

    # A socket that cannot connect falls back to polling by itself.
    job = stack.probe("cpu", steps=2, step_seconds=0.1).json()
    unreachable = Client(stack.base, stack.token(), poll_interval=0.2, socketio_url="http://127.0.0.1:1")
    assert unreachable.jobs.wait(job["id"], timeout=60)[job["id"]]["status"] == "completed"
    assert unreachable.last_wait_mode == "polling"

    # A job that does not complete raises JobFailed with its final row.
    job = stack.probe("cpu", steps=200, step_seconds=0.1).json()
    api.jobs.cancel(job["id"])
    with pytest.raises(JobFailed) as failed:
        api.jobs.wait(job["id"], timeout=60)
    assert failed.value.job["status"] == "cancelled" and failed.value.code == "job_cancelled"


@on_sqlite
def test_streamed_upload_keeps_memory_flat(stack, api, tmp_path):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as fh:
        block = b"\0" * (1 << 20)
        for _ in range(96):
            fh.write(block)
    tracemalloc.start()
    try:
        with pytest.raises(UnsupportedMediaType):
            api.videos.upload(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * (1 << 20), f"upload of 96 MiB peaked at {peak / 2**20:.1f} MiB in the client"


def test_retries_on_429_honour_retry_after(tmp_path):
    with own_stack(tmp_path, RATE_LIMIT_DEFAULT="3 per 2 seconds") as st:
        token = st.token("admin", st.admin_password)
        patient = Client(st.base, token, retries=5)
        slept: list[float] = []
        patient.transport.sleep = lambda s: (slept.append(s), time.sleep(s))
        for _ in range(6):
            assert patient.me()["username"] == "admin"
        assert patient.transport.retried >= 1 and all(0 < s <= 3 for s in slept)

        hasty = Client(st.base, token, retries=0)
        with pytest.raises(RateLimited) as limited:
            for _ in range(6):
                hasty.me()
        assert limited.value.status == 429 and limited.value.retry_after and limited.value.retry_after > 0


def test_client_imports_nothing_of_the_platform():
    """The client is installable alone: HTTP and Socket.IO only."""
    root = Path(__file__).resolve().parents[2] / "client"
    ours = {"webapp", "tasks", "models", "settings", "vision", "formats", "evaluation", "keyframes", "matching",
            "workers", "celeryconfig"}
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in ours, f"{path.name}: {line}"
