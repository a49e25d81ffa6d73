"""Validation runs end to end on the real stack: a detector with known output (a YOLO-shaped ONNX
model that always answers the same two boxes) run by real detection jobs over three generated
videos whose ground truth is annotated over the API, evaluated and aggregated by the CPU pool.

Per video, with ``P`` the fixed pedestrian box and ``B`` the fixed cyclist box on 12 frames:

* ``a`` (tags rain): ground truth a pedestrian at ``P`` -> 12 TP (pedestrian), 12 FP (cyclist);
* ``b`` (tags rain, night): a pedestrian elsewhere -> 0 TP, 24 FP, 12 FN;
* ``c`` (no tags): a pedestrian at ``P`` and a cyclist at ``B`` -> 24 TP.

So the run's operating point is TP 36, FP 36, FN 12: precision 0.5, recall 0.75.
"""
from __future__ import annotations

import os
import signal
import uuid

import numpy as np
import pytest
from harness import make_clip, wait_until

FRAMES = 12
PERSON, BIKE, ELSEWHERE = (60.0, 40.0, 100.0, 140.0), (200.0, 100.0, 240.0, 160.0), (250.0, 10.0, 300.0, 60.0)
CLASSES = ["pedestrian", "cyclist"]
EVALUATION = {"classes": CLASSES, "iou_threshold": 0.5}
TERMINAL = ("completed", "partial", "failed", "cancelled")


def export_fixed_detector(model_dir) -> str:
    """Always the boxes ``PERSON`` and ``BIKE``; their scores rise with the frame's mean brightness, so
    no two frames of the test set score alike (ties would make COCO's ranking arbitrary)."""
    import torch

    class Fixed(torch.nn.Module):
        def __init__(self, predictions, slope):
            super().__init__()
            self.register_buffer("p", torch.from_numpy(predictions))
            self.register_buffer("s", torch.from_numpy(slope))

        def forward(self, images):
            return (self.p + self.s * images.mean()).unsqueeze(0)

    # The 320x240 clip is letterboxed 2x into 640x640 with 80 px bands: frame (x, y) -> (2x, 2y + 80).
    preds, slope = np.zeros((4 + 80, 2), np.float32), np.zeros((4 + 80, 2), np.float32)
    for col, (box, cls, score) in enumerate(((PERSON, 0, 0.6), (BIKE, 1, 0.52))):
        x1, y1, x2, y2 = box
        preds[:4, col] = [x1 + x2, y1 + y2 + 80, 2 * (x2 - x1), 2 * (y2 - y1)]
        preds[4 + cls, col] = score
        slope[4 + cls, col] = 0.3
    model_dir.mkdir(exist_ok=True)
    name = f"fixed-{uuid.uuid4().hex[:6]}.onnx"
    torch.onnx.export(Fixed(preds, slope), torch.zeros(1, 3, 640, 640), str(model_dir / name),
                      dynamo=False, input_names=["images"], output_names=["output0"])
    return f"onnx/{name}"


def clip(path, frames: int, shade: int):
    """A 320x240 clip whose background brightens by one step a frame from ``shade``."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for i in range(frames):
        img = np.full((240, 320, 3), min(250, shade + 2 * i), np.uint8)
        cv2.rectangle(img, (10 + 5 * i, 50), (40 + 5 * i, 120), (0, 200, 255), -1)
        writer.write(img)
    writer.release()
    return path


def upload(stack, project_id: str, path) -> dict:
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/videos", data={"project_id": project_id},
                      files={"file": (path.name, fh, "video/x-msvideo")})
    assert r.status_code == 201, r.text
    return r.json()


def ground_truth(stack, project_id: str, video: dict, objects) -> dict:
    session = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project_id, "video_id": video["id"], "session_name": "truth",
        "annotation_type": "spatial"}).json()
    for label, box in objects:
        ann = stack.api("POST", "/api/annotations/temporal", json={
            "annotation_session_id": session["id"], "video_id": video["id"], "start_timestamp": 0.0,
            "end_timestamp": video["duration"], "annotation_type": "spatial", "class_label": label,
            "bounding_box": dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))}).json()
        r = stack.api("POST", f"/api/annotations/{ann['id']}/validate", json={"status": "validated", "force": True})
        assert r.status_code == 200, r.text
    return session


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validation-runs")
    model = export_fixed_detector(stack.workdir / "models")
    suffix = uuid.uuid4().hex[:6]
    viewer_id, viewer = stack.create_user(f"vr-viewer-{suffix}", "viewer")
    _, outsider = stack.create_user(f"vr-outsider-{suffix}", "annotator")
    project = stack.api("POST", "/api/projects", json={"name": f"runs-{suffix}",
                                                       "camera_metadata": {"mount": "windshield"}}).json()
    stack.api("POST", f"/api/projects/{project['id']}/members", json={"user_id": viewer_id, "role": "viewer"})
    videos, sessions = {}, {}
    layout = {"a": (["rain"], [("pedestrian", PERSON)]),
              "b": (["rain", "night"], [("pedestrian", ELSEWHERE)]),
              "c": ([], [("pedestrian", PERSON), ("cyclist", BIKE)])}
    for n, (key, (tags, objects)) in enumerate(layout.items()):
        video = upload(stack, project["id"], clip(tmp / f"{key}-{suffix}.avi", FRAMES, 40 + 35 * n))
        r = stack.api("PATCH", f"/api/videos/{video['id']}", json={"tags": tags})
        assert r.status_code == 200 and r.json()["tags"] == tags, r.text
        videos[key] = r.json()
        sessions[key] = ground_truth(stack, project["id"], video, objects)
    # A video of the project with no ground truth at all.
    bare = upload(stack, project["id"], make_clip(tmp / f"bare-{suffix}.avi", FRAMES, 10.0))
    return {"project": project, "videos": videos, "sessions": sessions, "bare": bare, "model": model,
            "viewer": viewer, "outsider": outsider, "tmp": tmp}


def start_run(stack, world, token="admin", **body) -> dict:
    payload = {"project_id": world["project"]["id"], "name": "fixed", "model": {"name": world["model"],
                                                                               "confidence_threshold": 0.5},
               "videos": [world["videos"][k]["id"] for k in "abc"], "evaluation": EVALUATION, **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    r = stack.api("POST", "/api/validation-runs", token=token, json=payload)
    assert r.status_code == 202, r.text
    return r.json()


def wait_run(stack, run_id: str, timeout: float = 300) -> dict:
    return wait_until(lambda: (r := stack.api("GET", f"/api/validation-runs/{run_id}").json())["status"]
                      in TERMINAL and r, timeout, 0.2, f"validation run {run_id}")


@pytest.fixture(scope="module")
def finished(stack, world):
    """One run over the three videos, watched over Socket.IO from right after it was accepted."""
    client = stack.socket()
    try:
        run = start_run(stack, world, gates=[{"metric": "recall", "min": 0.7}])
        ack = client.call("validation_run_subscribe", {"run_id": run["id"]})
        done = wait_run(stack, run["id"])
        client.wait_for("validation_run_progress", lambda d: d["run_id"] == run["id"] and d["status"] == "completed")
        events = client.of("validation_run_progress", run_id=run["id"])
        snapshots = client.of("validation_run_snapshot", run_id=run["id"])
    finally:
        client.close()
    return {"run": run, "ack": ack, "done": done, "events": events, "snapshots": snapshots}


def coco_reference(stack, world, keys) -> list[float]:
    """pycocotools on the concatenation: every evaluated frame of every video one image."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = {name: i + 1 for i, name in enumerate(CLASSES)}
    images, anns, dets = [], [], []
    for v, key in enumerate(keys):
        base = 1000 * (v + 1)
        images += [{"id": base + f, "width": 320, "height": 240} for f in range(FRAMES)]
        session = world["sessions"][key]
        for ann in stack.api("GET", f"/api/annotations/temporal?session_id={session['id']}").json()["items"]:
            for b in stack.api("GET", f"/api/annotations/{ann['id']}/boxes").json()["boxes"]:
                x1, y1, x2, y2 = (b["bounding_box"][c] for c in ("x1", "y1", "x2", "y2"))
                anns.append({"id": len(anns) + 1, "image_id": base + b["frame_number"],
                             "category_id": cats[ann["class_label"]], "bbox": [x1, y1, x2 - x1, y2 - y1],
                             "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    run_sessions = {row["video_id"]: row["test_session_id"] for row in world["_per_video"]}
    for v, key in enumerate(keys):
        base = 1000 * (v + 1)
        ts = run_sessions[world["videos"][key]["id"]]
        for d in stack.api("GET", f"/api/test-sessions/{ts}/detections?per_page=500").json()["items"]:
            x1, y1, x2, y2 = d["bbox"]
            dets.append({"image_id": base + d["frame_number"], "category_id": cats[d["class_label"]],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "score": d["confidence"]})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": i, "name": n} for n, i in
                                                                       cats.items()]}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return [float(x) for x in ev.stats]


COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def test_a_run_over_three_videos_aggregates_to_pycocotools_on_their_concatenation(stack, world, finished):
    done = finished["done"]
    assert done["status"] == "completed", done
    assert done["videos_total"] == 3 and done["videos_done"] == 3 and done["videos_failed"] == 0
    assert done["progress"]["videos"]["done"] == 3 and done["gate_status"] == "passed"
    m = stack.api("GET", f"/api/validation-runs/{done['id']}/metrics").json()
    metrics = m["metrics"]
    world["_per_video"] = done["progress"]["per_video"]
    reference = coco_reference(stack, world, "abc")
    got = [metrics["overall"]["coco"][k] for k in COCO_KEYS]
    assert got == pytest.approx(reference, abs=1e-12)
    op = metrics["overall"]["operating_point"]
    assert (op["tp"], op["fp"], op["fn"]) == (36, 36, 12)
    assert op["precision"] == pytest.approx(0.5) and op["recall"] == pytest.approx(0.75)
    assert metrics["missing_videos"] == []
    # Slices by tag: the rain videos (a, b) against the one without (c).
    assert set(metrics["slices"]) >= {"tag:rain", "tag:night", "object_height"}


def test_per_video_rows_equal_each_videos_own_evaluation(stack, world, finished):
    metrics = stack.api("GET", f"/api/validation-runs/{finished['done']['id']}/metrics").json()["metrics"]
    rows = {r["video_id"]: r for r in metrics["per_video"]}
    assert len(rows) == 3
    for item in finished["done"]["progress"]["per_video"]:
        single = stack.api("GET", f"/api/test-sessions/{item['test_session_id']}/metrics").json()["metrics"]
        row = rows[item["video_id"]]
        for k in COCO_KEYS:
            assert row["coco"][k] == pytest.approx(single["coco"]["overall"][k], abs=1e-12), (item["video_id"], k)
        for k in ("tp", "fp", "fn", "precision", "recall", "f1"):
            assert row["operating_point"][k] == pytest.approx(single["operating_point"][k]), k


def test_progress_of_the_whole_run_arrives_in_its_room(stack, world, finished):
    ack, events = finished["ack"], finished["events"]
    assert ack["ok"] is True and ack["run_id"] == finished["run"]["id"] and ack["videos_total"] == 3
    assert finished["snapshots"] and finished["snapshots"][0]["seq"] == ack["seq"]
    assert events, "no live progress event"
    # Events come from several worker processes and may arrive out of order: the highest seq is the newest.
    last = max(events, key=lambda e: e["seq"])
    assert last["status"] == "completed" and last["videos"]["done"] == 3 and last["progress_percent"] == 100
    assert {v["stage"] for v in last["per_video"]} == {"done"}
    # Every video was seen on its way through the run (detecting / evaluating / queued) before the end.
    states = [(e["videos"]["done"], e["status"]) for e in [ack, *events]]
    assert any(done < 3 for done, _ in states), states
    for e in events:
        assert sum(e["videos"].values()) == 3 and e["fps"] >= 0
        assert all(set(v) >= {"video_id", "status", "stage", "progress_percent"} for v in e["per_video"])
    # The same progress is what the HTTP resource says, and the list shows the run.
    page = stack.api("GET", f"/api/validation-runs?project_id={world['project']['id']}").json()
    assert finished["run"]["id"] in [r["id"] for r in page["items"]] and page["page"] == 1


def test_only_members_join_the_room_and_read_the_run(stack, world, finished):
    run_id = finished["run"]["id"]
    for token, ok in ((world["viewer"], True), (world["outsider"], False)):
        client = stack.socket(token)
        try:
            ack = client.call("validation_run_subscribe", {"run_id": run_id})
        finally:
            client.close()
        assert (ack.get("ok") is True) == ok, ack
        if not ok:
            assert ack["error"]["code"] == "forbidden"
        r = stack.api("GET", f"/api/validation-runs/{run_id}", token=token)
        assert r.status_code == (200 if ok else 403)
    assert stack.api("POST", "/api/validation-runs", token=world["viewer"], json={
        "project_id": world["project"]["id"], "videos": [world["videos"]["a"]["id"]]}).status_code == 403
    assert stack.api("GET", "/api/validation-runs", token=world["outsider"]).json()["total"] == 0


def test_a_run_from_the_test_sessions_of_another_compares_and_gates_against_it(stack, world, finished):
    base = finished["done"]
    sessions = [v["test_session_id"] for v in base["progress"]["per_video"]]
    run = start_run(stack, world, videos=None, test_session_ids=sessions, baseline_run_id=base["id"], gates=[
        {"metric": "recall", "min": 0.7},
        {"metric": "precision", "min": 0.6},
        {"metric": "ap", "max_drop": 0.0, "vs": "baseline"}])
    done = wait_run(stack, run["id"])
    assert done["status"] == "completed", done
    # No detection was run again: the run's sessions are the baseline's.
    assert sorted(v["test_session_id"] for v in done["progress"]["per_video"]) == sorted(sessions)
    assert all(v["detection_job_id"] == b["detection_job_id"] for v, b in zip(
        sorted(done["progress"]["per_video"], key=lambda v: v["video_id"]),
        sorted(base["progress"]["per_video"], key=lambda v: v["video_id"]), strict=True))
    assert done["gate_status"] == "failed"
    assert [g["status"] for g in done["gate_results"]] == ["passed", "failed", "passed"]
    assert "below min" in done["gate_results"][1]["reason"]
    m = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()
    assert m["comparison"]["metrics"]["ap"]["difference"] == pytest.approx(0.0)
    cmp = stack.api("GET", f"/api/validation-runs/compare?ids={base['id']},{run['id']}")
    assert cmp.status_code == 200, cmp.text
    body = cmp.json()["comparison"]
    assert body["metrics"]["precision"]["baseline"] == pytest.approx(0.5)
    assert body["metrics"]["precision"]["verdict"] == "no detectable change" and len(body["per_video"]) == 3
    report = stack.api("GET", f"/api/validation-runs/{run['id']}/report.html")
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/html")
    html = report.text
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html and "src=\"http" not in html
    assert "Against the baseline" in html


def test_a_failed_video_makes_the_run_partial_and_names_it(stack, world):
    victim = upload(stack, world["project"]["id"], make_clip(world["tmp"] / f"t-{uuid.uuid4().hex[:6]}.avi", 60,
                                                              10.0))
    ground_truth(stack, world["project"]["id"], victim, [("pedestrian", PERSON)])
    stored = stack.workdir / "storage" / stack.video_path(victim["id"])
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) // 2])  # damaged on disk after the upload was accepted
    run = start_run(stack, world, videos=[world["videos"]["a"]["id"], victim["id"]])
    done = wait_run(stack, run["id"])
    assert done["status"] == "partial", done
    assert (done["videos_done"], done["videos_failed"]) == (1, 1)
    metrics = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()["metrics"]
    missing = metrics["missing_videos"]
    assert [m["video_id"] for m in missing] == [victim["id"]]
    assert "decoding failed" in missing[0]["error"]
    assert [r["video_id"] for r in metrics["per_video"]] == [world["videos"]["a"]["id"]]
    assert metrics["overall"]["counts"]["videos"] == 1


def run_jobs(stack, run_id: str) -> list[dict]:
    view = stack.api("GET", f"/api/validation-runs/{run_id}").json()
    ids = [j for v in view["progress"]["per_video"] for j in (v["detection_job_id"], v["evaluation_job_id"]) if j]
    if view["aggregation_job_id"]:
        ids.append(view["aggregation_job_id"])
    return [stack.job(j) for j in ids]


def test_cancel_stops_every_job_of_the_run(stack, world):
    # HOG on longer clips: slow enough that the cancel lands while detections are queued and running.
    project_id = world["project"]["id"]
    videos = []
    for _ in range(3):
        video = upload(stack, project_id, make_clip(world["tmp"] / f"long-{uuid.uuid4().hex[:6]}.avi", 150, 10.0))
        ground_truth(stack, project_id, video, [("pedestrian", PERSON)])
        videos.append(video["id"])
    run = start_run(stack, world, videos=videos, model="opencv/hog-people")
    wait_until(lambda: any(j["status"] == "processing" for j in run_jobs(stack, run["id"])), 120, 0.1,
               "a running detection")
    r = stack.api("POST", f"/api/validation-runs/{run['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled", r.text
    jobs = wait_until(lambda: (js := run_jobs(stack, run["id"])) and all(
        j["status"] in ("completed", "failed", "cancelled") for j in js) and js, 120, 0.2, "every job ended")
    assert [j["status"] for j in jobs if j["kind"] == "detection"].count("cancelled") == 3, jobs
    assert all(j["status"] == "cancelled" for j in jobs), jobs
    view = stack.api("GET", f"/api/validation-runs/{run['id']}").json()
    assert view["status"] == "cancelled" and view["aggregation_job_id"] is None
    assert {v["status"] for v in view["progress"]["per_video"]} == {"cancelled"}
    assert stack.api("POST", f"/api/validation-runs/{run['id']}/cancel").status_code == 409


def test_bad_requests_are_refused_naming_the_field_with_nothing_queued(stack, world):
    project_id = world["project"]["id"]

    def counts():
        jobs = stack.api("GET", f"/api/jobs?project_id={project_id}").json()["total"]
        runs = stack.api("GET", f"/api/validation-runs?project_id={project_id}").json()["total"]
        sessions = stack.api("GET", f"/api/test-sessions?project_id={project_id}").json()["total"]
        return jobs, runs, sessions

    before = counts()
    a = world["videos"]["a"]["id"]
    cases = [
        ({"videos": [str(uuid.uuid4())]}, "videos"),
        ({"videos": [a, world["bare"]["id"]]}, "ground_truth"),
        ({"videos": {"filter": {"tags": ["no-such-tag"]}}}, "videos"),
        ({"videos": [a], "gates": [{"metric": "speed", "min": 1}]}, "gates.0.metric"),
        ({"videos": [a], "gates": [{"metric": "ap", "max_drop": 0.1, "vs": "baseline"}]}, "gates.0.vs"),
        ({"videos": [a], "gates": [{"metric": "ap", "slice": {"tag:snow": "yes"}, "min": 0.1}]}, "gates.0.slice"),
        ({"videos": [a], "evaluation": {"classes": ["unicorn"]}}, "evaluation"),
        ({"videos": [a], "model": "no/such-model"}, "model"),
        ({"videos": [a], "baseline_run_id": str(uuid.uuid4())}, "baseline_run_id"),
        ({"videos": [a], "test_session_ids": [str(uuid.uuid4())]}, "test_session_ids"),
        ({"videos": "everything"}, "videos"),
    ]
    for extra, field in cases:
        r = stack.api("POST", "/api/validation-runs", json={"project_id": project_id, **extra})
        assert r.status_code == 422, (extra, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] == "validation_error" and field in err["details"]["fields"]["json"], (extra, err)
    assert counts() == before


def test_a_filter_by_tags_picks_the_videos(stack, world):
    run = start_run(stack, world, videos={"filter": {"tags": ["rain"]}})
    assert sorted(v["video_id"] for v in run["progress"]["per_video"]) == sorted(
        world["videos"][k]["id"] for k in "ab")
    done = wait_run(stack, run["id"])
    assert done["status"] == "completed"
    op = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()["metrics"]["overall"]["operating_point"]
    assert (op["tp"], op["fp"], op["fn"]) == (12, 36, 12)


def test_a_worker_killed_mid_run_still_ends_with_every_video_done_once(stack, world):
    run = start_run(stack, world, model="opencv/hog-people",
                    videos=[world["videos"][k]["id"] for k in "abc"])

    def running_detection():
        return next((j for j in run_jobs(stack, run["id"]) if j["kind"] == "detection"
                     and j["status"] == "processing"), None)

    job = wait_until(running_detection, 120, 0.05, "a running detection")
    from sqlalchemy import create_engine, select

    from models import Job

    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            pid = conn.scalar(select(Job.worker_pid).where(Job.id == uuid.UUID(job["id"])))
        os.kill(pid, signal.SIGKILL)
        done = wait_run(stack, run["id"], timeout=600)
    finally:
        engine.dispose()
    assert done["status"] == "completed", done
    assert (done["videos_done"], done["videos_failed"]) == (3, 0)
    metrics = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()["metrics"]
    assert sorted(r["video_id"] for r in metrics["per_video"]) == sorted(world["videos"][k]["id"] for k in "abc")
    assert stack.job(job["id"])["attempts"] == 2


def test_a_run_over_results_imported_from_another_system(stack, world, tmp_path):
    """An import test session (results made elsewhere) joins a run like a detected one."""
    import formats

    video = world["videos"]["c"]
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": world["project"]["id"], "video_id": video["id"], "source": "import", "name": "camera's own",
        "ground_truth_session_id": world["sessions"]["c"]["id"]})
    assert r.status_code == 201, r.text
    ts = r.json()
    # The pedestrian found on every frame, the cyclist on the first half only: AP 1 and 0.5 respectively.
    rows = [formats.Detection(f, "pedestrian", PERSON, 0.9 - f / 100, 1) for f in range(FRAMES)]
    rows += [formats.Detection(f, "cyclist", BIKE, 0.8 - f / 100, 2) for f in range(FRAMES // 2)]
    src = tmp_path / "results.csv"
    formats.write("csv", src, rows, kind="results")
    with open(src, "rb") as fh:
        imp = stack.api("POST", "/api/import/jobs", data={
            "job_name": "camera", "import_type": "results", "source_format": "csv",
            "project_id": world["project"]["id"], "test_session_id": ts["id"]}, files={"file": (src.name, fh)})
    assert imp.status_code == 202, imp.text
    wait_until(lambda: stack.api("GET", f"/api/test-sessions/{ts['id']}").json()["status"] == "completed", 120, 0.2,
               "imported results")
    run = start_run(stack, world, videos=None, test_session_ids=[ts["id"]])
    assert [v["detection_job_id"] for v in run["progress"]["per_video"]] == [None]
    done = wait_run(stack, run["id"])
    assert done["status"] == "completed", done
    metrics = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()["metrics"]
    op = metrics["overall"]["operating_point"]
    assert (op["tp"], op["fp"], op["fn"]) == (18, 0, 6)
    single = stack.api("GET", f"/api/test-sessions/{ts['id']}/metrics").json()["metrics"]
    assert metrics["overall"]["coco"]["AP"] == pytest.approx(single["coco"]["overall"]["AP"], abs=1e-12)


def test_the_sweep_settles_a_video_whose_job_failed_without_saying_so(stack, world):
    """A job the reaper failed (its worker lost past the redelivery cap) never ran the code that counts
    the video; the beat sweep counts it and the run still ends."""
    from sqlalchemy import create_engine, update

    from models import Job

    run = start_run(stack, world, videos=[world["videos"][k]["id"] for k in "ab"], model="opencv/hog-people")
    lost = run["progress"]["per_video"][1]["detection_job_id"]
    engine = create_engine(stack.database_url)
    try:
        with engine.begin() as conn:  # what the reaper writes, before any worker took the job
            marked = conn.execute(update(Job).where(Job.id == uuid.UUID(lost), Job.status == "pending")
                                  .values(status="failed", error="worker lost 3 times")).rowcount
    finally:
        engine.dispose()
    if not marked:
        pytest.skip("the worker took the job before it could be marked")
    wait_until(lambda: stack.api("GET", f"/api/validation-runs/{run['id']}").json()["progress"]["per_video"][0]
               ["status"] == "done", 300, 0.2, "the first video")
    assert stack.api("GET", f"/api/validation-runs/{run['id']}").json()["status"] == "processing"
    sweep(stack)
    done = wait_run(stack, run["id"])
    assert done["status"] == "partial" and (done["videos_done"], done["videos_failed"]) == (1, 1), done
    missing = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()["metrics"]["missing_videos"]
    assert [m["video_id"] for m in missing] == [world["videos"]["b"]["id"]]
    assert "worker lost 3 times" in missing[0]["error"]


def sweep(stack) -> None:
    """What beat sends every ten seconds (the test stack runs no beat)."""
    from celery import Celery

    beat = Celery(broker=stack.env["REDIS_URL"])
    try:
        beat.send_task("maintenance.reconcile_validation_runs", queue="cpu")
    finally:
        beat.close()


def test_an_evaluation_asked_for_meanwhile_does_not_leave_the_run_waiting(stack, world, finished):
    """Another evaluation of a run's session supersedes the run's own; the sweep asks for the run's again."""
    ts = finished["done"]["progress"]["per_video"][0]["test_session_id"]
    run = start_run(stack, world, videos=None, test_session_ids=[ts])
    other = stack.api("POST", f"/api/test-sessions/{ts}/evaluate", json={"iou_threshold": 0.6,
                                                                        "classes": CLASSES})
    assert other.status_code == 202, other.text
    assert stack.wait_job(other.json()["id"])["status"] == "completed"
    sweep(stack)
    done = wait_run(stack, run["id"])
    assert done["status"] == "completed" and done["videos_done"] == 1, done
    metrics = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()["metrics"]
    assert metrics["parameters"]["iou_threshold"] == 0.5


def test_a_run_with_tracking_reports_hota_and_mota(stack, world):
    """Each object of video c is found on every frame, so one track each: every identity metric is 1."""
    run = start_run(stack, world, videos=[world["videos"]["c"]["id"]], enable_tracking=True)
    done = wait_run(stack, run["id"])
    assert done["status"] == "completed", done
    headline = stack.api("GET", f"/api/validation-runs/{run['id']}/metrics").json()["metrics"]["overall"]["headline"]
    assert headline["mota"] == pytest.approx(1.0) and headline["idf1"] == pytest.approx(1.0)
    assert headline["hota"] == pytest.approx(1.0, abs=1e-6)
