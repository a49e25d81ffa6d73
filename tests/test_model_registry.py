"""Models as versioned uploads: upload, check on the GPU queue, use by name:version, delete, refusals.

Real web process, real GPU-queue and CPU workers; the trained pedestrian detector is the one
``python -m models fetch-demo-model`` converts (cached in ``var/cache``).
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from harness import ROOT, project_with_video, wait_until

from models import RUN_TERMINAL

# The first test to need the demo model converts it (minutes on a machine without the cache).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DEMO_FORM = {"format": "onnx", "classes": json.dumps(["background", "person"]), "input_size": "300",
             "confidence_threshold": "0.3", "label_map": json.dumps({"person": "pedestrian"})}


def upload(stack, path: Path, token: str = "admin", **form) -> object:
    with open(path, "rb") as fh:
        return stack.api("POST", "/api/models", token=token, data=form, files={"file": (path.name, fh)})


def checked(stack, response) -> dict:
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "checking" and body["check_job_id"]
    job = stack.wait_job(body["check_job_id"], timeout=120)
    assert job["status"] == "completed" and job["queue"] == "gpu", job
    return stack.api("GET", f"/api/models/{body['name']}/{body['version']}").json()


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def pedestrians(stack, demo_model):
    """The trained pedestrian detector, uploaded and checked once per stack."""
    name = _name()
    model = checked(stack, upload(stack, demo_model, name=name, version="1.0", **DEMO_FORM))
    assert model["status"] == "ready" and model["reason"] is None, model
    return model


def test_the_uploaded_pedestrian_detector_finds_the_people_of_vtest(stack, pedestrians, shared_data, demo_model):
    import hashlib

    assert pedestrians["sha256"] == hashlib.sha256(demo_model.read_bytes()).hexdigest()
    assert pedestrians["ref"] == f"{pedestrians['name']}:1.0" and pedestrians["size_bytes"] > 1_000_000
    listed = {m["name"]: m for m in stack.api("GET", "/api/models").json()["items"]}
    assert listed[pedestrians["ref"]]["registered"] is True and listed[pedestrians["ref"]]["status"] == "ready"
    assert listed["opencv/hog-people"]["registered"] is False

    project = stack.api("POST", "/api/projects", json={"name": f"street-{uuid.uuid4().hex[:6]}"}).json()
    with open(shared_data / "video" / "vtest.avi", "rb") as fh:
        video = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                          files={"file": ("vtest.avi", fh)}).json()
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "model": pedestrians["ref"],
        "batch_size": 8, "frame_to": 79})
    assert r.status_code == 202, r.text
    ts = r.json()
    assert ts["model"] == {"name": pedestrians["ref"], "sha256": pedestrians["sha256"]}
    job = stack.wait_job(ts["job_id"], timeout=300)
    assert job["status"] == "completed", job
    summary = job["result"]
    assert summary["frames_processed"] == 80 and summary["model"] == pedestrians["ref"]
    # Real people, several per frame, all pedestrians (the model's "person" through its label map).
    assert set(summary["per_class"]) == {"pedestrian"} and summary["per_class"]["pedestrian"] >= 2.5 * 80
    stored = stack.api("GET", f"/api/test-sessions/{ts['id']}/detections", params={"per_page": 5000}).json()
    assert stored["total"] == summary["detections"]
    tall = [d for d in stored["items"] if d["bbox"][3] - d["bbox"][1] > d["bbox"][2] - d["bbox"][0]]
    assert len(tall) >= 0.95 * stored["total"]
    assert min(d["confidence"] for d in stored["items"]) >= 0.3  # the version's default threshold


def test_a_version_in_use_cannot_be_deleted_and_a_deleted_one_cannot_be_used(stack, tmp_path, demo_model):
    name = _name()
    model = checked(stack, upload(stack, demo_model, name=name, version="1", **DEMO_FORM))
    project, video = project_with_video(stack, tmp_path, frames=300)
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "model": model["ref"], "realtime": True,
        "batch_size": 1})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    refused = stack.api("DELETE", f"/api/models/{name}/1")
    assert refused.status_code == 409 and refused.json()["error"]["details"]["job_ids"] == [job_id]
    assert stack.api("POST", f"/api/jobs/{job_id}/cancel").status_code in (200, 202)
    assert stack.wait_job(job_id, timeout=120)["status"] == "cancelled"
    assert stack.api("DELETE", f"/api/models/{name}/1").status_code == 204
    assert stack.api("GET", f"/api/models/{name}/1").status_code == 404
    assert not (stack.workdir / "storage" / "models" / model["id"]).exists()
    r = stack.api("POST", "/api/test-sessions", json={"project_id": project["id"], "video_id": video["id"],
                                                       "model": model["ref"]})
    assert r.status_code == 422 and "not registered" in r.text


def test_versions_are_immutable_and_only_writers_upload(stack, tmp_path, demo_model):
    name = _name()
    first = upload(stack, demo_model, name=name, version="2", **DEMO_FORM)
    assert first.status_code == 202, first.text
    again = upload(stack, demo_model, name=name, version="2", **DEMO_FORM)
    assert again.status_code == 409 and "immutable" in again.json()["error"]["message"]
    _, viewer = stack.create_user(f"viewer{uuid.uuid4().hex[:6]}", "viewer")
    assert upload(stack, demo_model, token=viewer, name=name, version="3", **DEMO_FORM).status_code == 403
    # A project writer (annotator member of a project) may upload.
    _, annotator = stack.create_user(f"ann{uuid.uuid4().hex[:6]}", "annotator")
    assert upload(stack, demo_model, token=annotator, name=name, version="3", **DEMO_FORM).status_code == 403
    project = stack.api("POST", "/api/projects", json={"name": f"p-{uuid.uuid4().hex[:6]}"}).json()
    me = stack.api("GET", "/api/users/me", token=annotator).json()["username"]
    assert stack.api("POST", f"/api/projects/{project['id']}/members",
                     json={"username": me, "role": "annotator"}).status_code in (200, 201)
    assert upload(stack, demo_model, token=annotator, name=name, version="3", **DEMO_FORM).status_code == 202
    # ... but deletes only their own versions.
    assert stack.api("DELETE", f"/api/models/{name}/2", token=annotator).status_code == 403
    stack.wait_job(first.json()["check_job_id"], timeout=120)


@pytest.mark.parametrize("form, message", [
    ({"format": "keras"}, "format"),
    ({"classes": "person"}, "not valid JSON"),
    ({"classes": "[]"}, "classes"),
    ({"format": "torchvision"}, "arch"),
    ({"label_map": json.dumps({"cat": "pedestrian"})}, "not classes of this model"),
    ({"version": "1/2"}, "version"),
])
def test_a_bad_upload_form_is_refused_with_the_field(stack, demo_model, form, message):
    r = upload(stack, demo_model, **{"name": _name(), "version": "1", **DEMO_FORM, **form})
    assert r.status_code == 422 and message in r.text, r.text
    assert r.json()["error"]["details"]["fields"]["form"]


def test_corrupt_and_mismatched_models_are_invalid_with_their_reason(stack, tmp_path, demo_model):
    import torch
    import torchvision.models.detection as tvd

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07 this is not an ONNX graph" * 64)
    bad = checked(stack, upload(stack, junk, name=_name(), version="1", **DEMO_FORM))
    assert bad["status"] == "invalid" and "cannot load ONNX model" in bad["reason"]
    # One class name for a graph that answers class id 1 (person, the TF OD API counts from 1).
    few = checked(stack, upload(stack, demo_model, name=_name(), version="1",
                                **{**DEMO_FORM, "classes": json.dumps(["person"]), "label_map": "{}"}))
    assert few["status"] == "invalid" and "classes do not match the outputs" in few["reason"]
    # A torchvision state dict whose head has three classes, uploaded with two names.
    torch.manual_seed(0)
    sd = tmp_path / "ssd.pth"
    torch.save(tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3).state_dict(), sd)
    tv = {"format": "torchvision", "arch": "ssdlite320_mobilenet_v3_large", "input_size": "320"}
    wrong = checked(stack, upload(stack, sd, name=_name(), version="1", classes='["__background__", "person"]', **tv))
    assert wrong["status"] == "invalid" and "size mismatch" in wrong["reason"]
    # A pickle that is not a state dict is refused by the safe loader, not executed.
    pickled = tmp_path / "evil.pth"
    pickled.write_bytes(b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR.")  # os.system, were it unpickled freely
    evil = checked(stack, upload(stack, pickled, name=_name(), version="1", classes='["a", "b", "c"]', **tv))
    assert evil["status"] == "invalid" and "cannot load weights" in evil["reason"]
    # An invalid (or still checking) version cannot be used.
    project, video = project_with_video(stack, tmp_path, frames=4)
    r = stack.api("POST", "/api/test-sessions", json={"project_id": project["id"], "video_id": video["id"],
                                                       "model": wrong["ref"]})
    assert r.status_code == 422 and "is invalid: " in r.text
    # A torchvision upload with the right names is ready and runs through a detection job.
    good = checked(stack, upload(stack, sd, name=_name(), version="1",
                                 classes='["__background__", "person", "bicycle"]', **tv))
    assert good["status"] == "ready", good
    r = stack.api("POST", "/api/test-sessions", json={"project_id": project["id"], "video_id": video["id"],
                                                       "model": {"name": good["ref"], "confidence_threshold": 0.0}})
    job = stack.wait_job(r.json()["job_id"], timeout=180)
    assert job["status"] == "completed" and job["result"]["frames_processed"] == 4, job


def test_a_tampered_stored_file_is_refused_by_the_worker(stack, tmp_path, demo_model):
    model = checked(stack, upload(stack, demo_model, name=_name(), version="1", **DEMO_FORM))
    project, video = project_with_video(stack, tmp_path, frames=4)
    (stored,) = (stack.workdir / "storage" / "models" / model["id"]).iterdir()
    with open(stored, "r+b") as fh:  # same size, one byte changed
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    r = stack.api("POST", "/api/test-sessions", json={"project_id": project["id"], "video_id": video["id"],
                                                       "model": model["ref"]})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["job_id"], timeout=120)
    assert job["status"] == "failed" and model["sha256"] in job["error"] and "refused" in job["error"], job


def test_a_validation_run_names_a_registered_version_and_stores_its_sha256(stack, pedestrians, tmp_path):
    project, video = project_with_video(stack, tmp_path, frames=6)
    truth = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "truth",
        "annotation_type": "spatial"}).json()
    ann = stack.api("POST", "/api/annotations/temporal", json={
        "annotation_session_id": truth["id"], "video_id": video["id"], "start_timestamp": 0.0,
        "end_timestamp": video["duration"], "annotation_type": "spatial", "class_label": "pedestrian",
        "bounding_box": {"x1": 10, "y1": 50, "x2": 40, "y2": 120}}).json()
    assert stack.api("POST", f"/api/annotations/{ann['id']}/validate",
                     json={"status": "validated", "force": True}).status_code == 200
    r = stack.api("POST", "/api/validation-runs", json={
        "project_id": project["id"], "model": pedestrians["ref"], "videos": [video["id"]],
        "ground_truth": {video["id"]: truth["id"]}})
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["model"] == {"name": pedestrians["ref"], "sha256": pedestrians["sha256"]}
    done = wait_until(lambda: (x := stack.api("GET", f"/api/validation-runs/{run['id']}").json())["status"]
                      in RUN_TERMINAL and x, 180)
    assert done["status"] == "completed", done


def test_fetch_demo_model_registers_the_trained_detector_in_one_command(stack, demo_model, tmp_path):
    """The command converts once (here the cache is warm) and registers ``pedestrian-ssdlite:0.2`` as ready."""
    env = {**stack.env}
    cmd = [sys.executable, "-m", "models", "fetch-demo-model", str(demo_model.parent)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    model = wait_until(lambda: (r := stack.api("GET", "/api/models/pedestrian-ssdlite/0.2")).status_code == 200
                       and r.json(), 10)
    assert model["status"] == "ready" and model["format"] == "onnx"
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "registered already" in again.stdout
