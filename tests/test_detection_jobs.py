"""Detection jobs end to end: real worker, real model files, events received live over Socket.IO."""
from __future__ import annotations

import uuid

import cv2
import numpy as np
import pytest
from harness import EventClient, project_with_video, write_video
from sqlalchemy import create_engine, func, select

from models import DetectionEvent, Job

pytestmark = pytest.mark.slow


def upload(stack, project_id: str, path) -> dict:
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/videos", data={"project_id": project_id}, files={"file": (path.name, fh)})
    assert r.status_code == 201, r.text
    return r.json()


def detections(stack, test_session_id: str, **query) -> list[dict]:
    items, page = [], 1
    while True:
        r = stack.api("GET", f"/api/test-sessions/{test_session_id}/detections",
                      params={"page": page, "per_page": 200, **query})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        if page * body["per_page"] >= body["total"]:
            return items
        page += 1


def job_count(stack) -> int:
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count(Job.id)))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def street(stack, shared_data, tmp_path_factory):
    project = stack.api("POST", "/api/projects", json={"name": f"street-{uuid.uuid4().hex[:6]}"}).json()
    return project, upload(stack, project["id"], shared_data / "video" / "vtest.avi")


def test_hog_finds_pedestrians_in_a_street_video_and_streams_them_live(stack, street):
    project, video = street
    events = EventClient()
    events.connect(stack.base, stack.token())
    try:
        r = stack.api("POST", "/api/test-sessions", json={
            "project_id": project["id"], "video_id": video["id"], "model": "opencv/hog-people",
            "batch_size": 4, "frame_stride": 2, "frame_to": 39, "enable_tracking": True})
        assert r.status_code == 202, r.text
        ts = r.json()
        assert ts["job_id"] and ts["job"]["kind"] == "detection" and ts["job"]["queue"] == "gpu"
        ack = events.call("detection_stream_subscribe", {"test_session_id": ts["id"]})
        assert ack["ok"] is True and ack["test_session_id"] == ts["id"]
        job = stack.wait_job(ts["job_id"], timeout=180)
        assert job["status"] == "completed", job
        events.wait_for("detection_event", lambda d: d["test_session_id"] == ts["id"] and d["final"])
    finally:
        events.close()

    summary = job["result"]
    assert summary["frames_processed"] == 20 and summary["frames_skipped"] == 0
    assert summary["per_class"]["pedestrian"] >= 20 and set(summary["per_class"]) == {"pedestrian"}
    assert summary["device"] == "cpu" and summary["tracks"] >= 2 and summary["fps"] > 0
    stored = detections(stack, ts["id"])
    assert len(stored) == summary["detections"] == summary["events_stored"]
    assert {d["frame_number"] for d in stored} <= set(range(0, 40, 2))
    # Every stored detection arrived live, in a few batched messages, not one per box.
    live = events.of("detection_event", test_session_id=ts["id"])
    frames = [f for message in live for f in message["frames"]]
    assert len(frames) == 20 and len(live) < len(stored)
    assert sorted(f["frame_number"] for f in frames) == list(range(0, 40, 2))
    received = sorted((f["frame_number"], d["detection_index"], d["track_id"]) for f in frames for d in f["detections"])
    assert received == sorted((d["frame_number"], d["detection_index"], d["track_id"]) for d in stored)
    # Timestamps are the container's presentation times.
    cap = cv2.VideoCapture(str(stack.workdir / "storage" / stack.video_path(video["id"])))
    times = []
    for _ in range(40):
        cap.grab()
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    cap.release()
    assert all(d["timestamp"] == pytest.approx(times[d["frame_number"]], abs=1e-6) for d in stored)
    tracked = [d for d in stored if d["track_id"] is not None]
    assert tracked and all(1 <= d["track_id"] <= summary["tracks"] for d in tracked)
    # Filters
    one = tracked[0]["track_id"]
    assert all(d["track_id"] == one for d in detections(stack, ts["id"], track_id=one))
    window = detections(stack, ts["id"], frame_from=10, frame_to=20)
    assert window and all(10 <= d["frame_number"] <= 20 for d in window)
    assert detections(stack, ts["id"], class_label="cyclist") == []
    got = stack.api("GET", f"/api/test-sessions/{ts['id']}").json()
    assert got["status"] == "completed" and got["summary"]["detections"] == len(stored)


def test_a_torchvision_model_saved_to_a_file_runs_end_to_end(stack, tmp_path):
    import torch
    import torchvision.models.detection as tvd

    torch.manual_seed(1)
    model = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    (stack.workdir / "models").mkdir(exist_ok=True)
    name = f"ssd-{uuid.uuid4().hex[:6]}.pth"
    torch.save(model.state_dict(), stack.workdir / "models" / name)
    project, video = project_with_video(stack, tmp_path, frames=6)
    listed = {m["name"]: m for m in stack.api("GET", "/api/models").json()["items"]}
    assert listed["opencv/hog-people"]["weights_present"] is True
    assert listed["torchvision/fcos_resnet50_fpn"]["weights_present"] is False
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "batch_size": 3,
        "model": {"name": "torchvision/ssdlite320_mobilenet_v3_large", "weights": name,
                  "confidence_threshold": 0.0}})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["job_id"], timeout=180)
    assert job["status"] == "completed", job
    assert job["result"]["frames_processed"] == 6 and job["result"]["model"].startswith("torchvision/")
    assert len(detections(stack, r.json()["id"])) == job["result"]["detections"]


def test_missing_weights_fail_the_job_at_once_naming_the_file(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path, frames=4)
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "model": "torchvision/fcos_resnet50_fpn"})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["job_id"], timeout=120)
    assert job["status"] == "failed" and "fcos_resnet50_fpn_coco" in job["error"] and "provide" in job["error"]
    assert stack.api("GET", f"/api/test-sessions/{r.json()['id']}").json()["status"] == "failed"


def test_a_truncated_video_fails_with_the_frame_and_leaves_no_events(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path, frames=60)
    stored = stack.workdir / "storage" / stack.video_path(video["id"])
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) // 2])  # damaged on disk after the upload was accepted
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "batch_size": 2,
        "model": {"name": "opencv/hog-people", "confidence_threshold": 0.0}})
    job = stack.wait_job(r.json()["job_id"], timeout=120)
    assert job["status"] == "failed" and "decoding failed at frame" in job["error"] and "of 60" in job["error"]
    assert detections(stack, r.json()["id"]) == []


def test_variable_frame_rate_timestamps_reach_the_stored_detections(stack, tmp_path):
    pts = [0, 40, 80, 300, 340, 900, 933]

    def draw(i):
        img = np.full((240, 320, 3), 90, np.uint8)
        cv2.rectangle(img, (100 + 5 * i, 40), (150 + 5 * i, 200), (20, 20, 20), -1)
        return img

    path = write_video(tmp_path / "vfr.mp4", pts, draw, size=(320, 240))
    project = stack.api("POST", "/api/projects", json={"name": f"vfr-{uuid.uuid4().hex[:6]}"}).json()
    video = upload(stack, project["id"], path)
    assert video["variable_frame_rate"] is True
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"],
        "model": {"name": "opencv/hog-people", "confidence_threshold": 0.0}})
    job = stack.wait_job(r.json()["job_id"], timeout=120)
    assert job["status"] == "completed", job
    assert job["result"]["frames_processed"] == len(pts)
    assert job["result"]["last_timestamp"] == pytest.approx(0.933, abs=1e-3)
    for d in detections(stack, r.json()["id"]):
        assert d["timestamp"] == pytest.approx(pts[d["frame_number"]] / 1000, abs=1e-3)


def test_bad_submissions_are_refused_with_nothing_enqueued(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path, frames=4)
    other, other_video = project_with_video(stack, tmp_path, frames=4)
    base = {"project_id": project["id"], "video_id": video["id"]}
    before = job_count(stack)
    cases = [
        ({**base, "model": "yolo/v99"}, 422),
        ({**base, "model": {"name": "onnx/../../secret.onnx"}}, 422),
        ({**base, "model": {"name": "torchvision/fcos_resnet50_fpn", "weights": "../../etc/passwd"}}, 422),
        ({**base, "model": {"name": "opencv/hog-people", "confidence_threshold": 1.5}}, 422),
        ({**base, "model": {"name": "opencv/hog-people", "nms_threshold": 0}}, 422),
        ({**base, "model": {"name": "opencv/hog-people", "classes": ["truck"]}}, 422),
        ({**base, "model": 7}, 422),
        ({**base, "batch_size": 0}, 422),
        ({**base, "frame_from": 5, "frame_to": 2}, 422),
        ({**base, "surprise": True}, 422),
        ({**base, "video_id": str(uuid.uuid4())}, 404),
        ({**base, "video_id": other_video["id"]}, 422),
        ({**base, "project_id": str(uuid.uuid4())}, 404),
        ({**base, "ground_truth_session_id": str(uuid.uuid4())}, 404),
    ]
    for body, status in cases:
        r = stack.api("POST", "/api/test-sessions", json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
        assert set(r.json()["error"]) >= {"code", "message"}
    assert job_count(stack) == before
    assert stack.api("GET", f"/api/test-sessions/{uuid.uuid4()}").status_code == 404
    assert stack.api("GET", "/api/test-sessions/not-a-uuid/detections").status_code == 404


def test_only_members_may_subscribe_to_a_detection_stream(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path, frames=4)
    ts = stack.api("POST", "/api/test-sessions", json={"project_id": project["id"], "video_id": video["id"]}).json()
    _, outsider = stack.create_user(f"out-{uuid.uuid4().hex[:6]}", "annotator")
    client = EventClient()
    client.connect(stack.base, outsider)
    try:
        ack = client.call("detection_stream_subscribe", {"test_session_id": ts["id"]})
        assert ack["error"]["code"] == "forbidden"
        ack = client.call("detection_stream_subscribe", {"test_session_id": str(uuid.uuid4())})
        assert ack["error"]["code"] == "not_found"
    finally:
        client.close()
    stack.wait_job(ts["job_id"], timeout=120)
    assert stack.api("GET", f"/api/test-sessions/{ts['id']}", token=outsider).status_code == 403


def test_stored_events_are_unique_per_frame_and_index(stack, street):
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            dupes = conn.execute(
                select(DetectionEvent.test_session_id, DetectionEvent.frame_number, DetectionEvent.detection_index)
                .group_by(DetectionEvent.test_session_id, DetectionEvent.frame_number, DetectionEvent.detection_index)
                .having(func.count() > 1)).all()
    finally:
        engine.dispose()
    assert dupes == []


def test_results_use_the_projects_own_labels_through_the_label_map(stack, street):
    _, video = street
    with open(stack.workdir / "storage" / stack.video_path(video["id"]), "rb") as fh:
        data = fh.read()
    project = stack.api("POST", "/api/projects", json={"name": f"labels-{uuid.uuid4().hex[:6]}",
                                                       "labels": ["walker", "rider"]}).json()
    r = stack.api("POST", "/api/videos", data={"project_id": project["id"]}, files={"file": ("street.avi", data)})
    assert r.status_code == 201, r.text
    own = r.json()
    bad = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": own["id"], "model": {"name": "opencv/hog-people",
                                                                      "label_map": {"person": "pedestrian"}}})
    assert bad.status_code == 422 and "walker" in bad.text
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": own["id"], "frame_to": 3,
        "model": {"name": "opencv/hog-people", "label_map": {"person": "walker"}}})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["job_id"], timeout=120)
    assert job["status"] == "completed", job
    assert set(job["result"]["per_class"]) == {"walker"}
    assert {d["class_label"] for d in detections(stack, r.json()["id"])} == {"walker"}
