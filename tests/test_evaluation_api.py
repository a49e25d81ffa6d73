"""Model validation end to end: ground truth annotated over the API on a generated video with a
known moving box, detections whose outcome is known stored for test sessions, evaluation jobs
run by the CPU pool, and the stored metrics, report, comparison and refusals checked.

The clip (``make_clip``) draws a square moving 5 px per frame; the ground truth follows it with
two keyframes. Expected numbers are worked out by hand below, not by the evaluation code.
"""
from __future__ import annotations

import base64
import struct
import uuid

import pytest
from harness import make_clip
from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

from models import DetectionEvent, TestSession

FRAMES = 40
N_RECALL = 101  # COCO's recall grid 0.00, 0.01, ..., 1.00


def ped_box(i: int, dx: float = 0.0) -> tuple[float, float, float, float]:
    """The moving square of the generated clip on frame ``i`` (the pedestrian's ground truth)."""
    return (10 + 5 * i + dx, 50.0, 40 + 5 * i + dx, 120.0)


CYCLIST = (200.0, 150.0, 260.0, 220.0)  # frames 10..29
PENDING = (250.0, 10.0, 300.0, 60.0)  # a pending pedestrian on frames 0..9
REJECTED = (100.0, 150.0, 140.0, 200.0)  # a rejected pedestrian on every frame


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluation")
    suffix = uuid.uuid4().hex[:6]
    viewer_id, viewer = stack.create_user(f"ev-viewer-{suffix}", "viewer")
    _, outsider = stack.create_user(f"ev-outsider-{suffix}", "annotator")
    project = stack.api("POST", "/api/projects", json={"name": f"eval-{suffix}"}).json()
    stack.api("POST", f"/api/projects/{project['id']}/members", json={"user_id": viewer_id, "role": "viewer"})
    videos = []
    for _ in range(2):
        clip = make_clip(tmp / f"clip-{uuid.uuid4().hex[:6]}.avi", FRAMES, 10.0)
        with open(clip, "rb") as fh:
            r = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                          files={"file": (clip.name, fh, "video/x-msvideo")})
        assert r.status_code == 201, r.text
        videos.append(r.json())
    video = videos[0]
    assert video["frame_count"] == FRAMES

    def gt_session(video_id: str) -> dict:
        r = stack.api("POST", "/api/annotations/sessions", json={
            "project_id": project["id"], "video_id": video_id, "session_name": "truth", "annotation_type": "spatial"})
        assert r.status_code == 201, r.text
        return r.json()

    session = gt_session(video["id"])
    other_session = gt_session(videos[1]["id"])

    def annotate(box, t0: float, t1: float, label: str, status: str | None, keyframes=()) -> dict:
        r = stack.api("POST", "/api/annotations/temporal", json={
            "annotation_session_id": session["id"], "video_id": video["id"], "start_timestamp": t0,
            "end_timestamp": t1, "annotation_type": "spatial", "class_label": label,
            "bounding_box": dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))})
        assert r.status_code == 201, r.text
        ann = r.json()
        for frame, kbox in keyframes:
            k = stack.api("POST", f"/api/annotations/{ann['id']}/keyframes", json={
                "frame_number": frame, "frame_data": {"bounding_box": dict(zip(("x1", "y1", "x2", "y2"), kbox,
                                                                               strict=True))}})
            assert k.status_code == 201, k.text
        if status:
            v = stack.api("POST", f"/api/annotations/{ann['id']}/validate", json={"status": status, "force": True})
            assert v.status_code == 200, v.text
        return ann

    # The video's own frame times (read at upload), as the annotation API reports them.
    timeline = {}
    pedestrian = annotate(ped_box(0), 0.0, 3.9, "pedestrian", "validated", [(0, ped_box(0)), (39, ped_box(39))])
    for b in stack.api("GET", f"/api/annotations/{pedestrian['id']}/boxes").json()["boxes"]:
        timeline[b["frame_number"]] = b["timestamp"]
        assert [b["bounding_box"][c] for c in ("x1", "y1", "x2", "y2")] == pytest.approx(ped_box(b["frame_number"]))
    assert sorted(timeline) == list(range(FRAMES))
    annotate(CYCLIST, timeline[10], timeline[29], "cyclist", "validated")
    annotate(PENDING, timeline[0], timeline[9], "pedestrian", None)
    annotate(REJECTED, timeline[0], timeline[39], "pedestrian", "rejected")
    engine = create_engine(stack.database_url)
    yield {"project": project, "video": video, "other_video": videos[1], "session": session,
           "other_session": other_session, "timeline": timeline, "engine": engine,
           "viewer": viewer, "outsider": outsider}
    engine.dispose()


def make_test_session(world, detections, *, name="model", status="completed", video=None, gt_session="session",
                      model=None) -> str:
    """A test session and its detections written straight to the database, as a detection job would."""
    engine = world["engine"]
    ts_id = uuid.uuid4()
    video = video or world["video"]
    with Session(engine) as db:
        db.add(TestSession(id=ts_id, project_id=uuid.UUID(world["project"]["id"]), video_id=uuid.UUID(video["id"]),
                           name=name, source="detection", model=model or {"name": name, "confidence_threshold": 0.5},
                           config={"frame_stride": 1}, status=status,
                           ground_truth_session_id=uuid.UUID(world[gt_session]["id"]) if gt_session else None))
        db.commit()
    rows, per_frame = [], {}
    for frame, label, score, box, track in detections:
        idx = per_frame[frame] = per_frame.get(frame, -1) + 1
        rows.append({"test_session_id": ts_id, "frame_number": frame, "detection_index": idx,
                     "timestamp": world["timeline"][frame], "class_label": label, "confidence": score,
                     "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3], "track_id": track})
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(DetectionEvent), rows)
    return str(ts_id)


def perfect_detections():
    return ([(i, "pedestrian", 0.9, ped_box(i), 1) for i in range(FRAMES)]
            + [(i, "cyclist", 0.8, CYCLIST, 2) for i in range(10, 30)])


def late_detections():
    """The pedestrian found only from frame 5 and 3 px off (IoU 1890/2310 = 0.818), the cyclist
    perfectly, and one false pedestrian below the operating threshold (0.5)."""
    return ([(i, "pedestrian", 0.9, ped_box(i, dx=3), 1) for i in range(5, FRAMES)]
            + [(i, "cyclist", 0.8, CYCLIST, 2) for i in range(10, 30)]
            + [(0, "pedestrian", 0.4, (280.0, 180.0, 310.0, 230.0), None)])


def evaluate(stack, ts_id: str, token="admin", **body) -> dict:
    r = stack.api("POST", f"/api/test-sessions/{ts_id}/evaluate", token=token, json=body)
    assert r.status_code == 202, r.text
    assert r.headers["Location"].endswith(f"/api/jobs/{r.json()['id']}")
    job = stack.wait_job(r.json()["id"])
    assert job["status"] == "completed" and job["queue"] == "cpu" and job["kind"] == "evaluation", job
    got = stack.api("GET", f"/api/test-sessions/{ts_id}/metrics", token=token).json()
    assert got["evaluation"]["status"] == "completed" and got["evaluation"]["job_id"] == job["id"], got
    assert got["metrics"]["job_id"] == job["id"]
    return got["metrics"]


def evaluation_jobs(stack, world) -> int:
    r = stack.api("GET", f"/api/jobs?project_id={world['project']['id']}&kind=evaluation&per_page=1")
    assert r.status_code == 200, r.text
    return r.json()["total"]


def test_perfect_detections_score_one_everywhere(stack, world):
    ts = make_test_session(world, perfect_detections(), name="perfect")
    before = stack.api("GET", f"/api/test-sessions/{ts}/metrics").json()
    assert before["evaluation"]["status"] == "not_evaluated" and before["metrics"] is None
    m = evaluate(stack, ts)
    assert m["parameters"]["iou_threshold"] == 0.5 and m["parameters"]["score_threshold"] == 0.5
    assert m["parameters"]["classes"] == ["pedestrian", "cyclist"] and m["parameters"]["include_pending"] is False
    # Pending and rejected annotations are left out: 40 + 20 boxes, two objects.
    assert m["counts"] == {"frames": 40, "ground_truth_objects": 2, "ground_truth_boxes": 60, "detections": 60,
                           "detections_above_threshold": 60, "detections_without_score": 0,
                           "detections_of_other_classes": 0}
    assert m["coco"]["overall"]["AP"] == pytest.approx(1.0) and m["coco"]["overall"]["AR100"] == pytest.approx(1.0)
    for name in ("pedestrian", "cyclist"):
        assert m["coco"]["per_class"][name]["AP"] == pytest.approx(1.0)
    op = m["operating_point"]
    assert (op["tp"], op["fp"], op["fn"], op["precision"], op["recall"], op["f1"]) == (60, 0, 0, 1.0, 1.0, 1.0)
    assert op["confusion_matrix"] == {"labels": ["pedestrian", "cyclist", "background"],
                                      "matrix": [[40, 0, 0], [0, 20, 0], [0, 0, 0]]}
    assert m["temporal"]["overall"]["missed_objects"] == 0
    assert m["temporal"]["overall"]["median_latency_seconds"] == 0.0
    assert {o["class_label"]: o["latency_frames"] for o in m["temporal"]["objects"]} == {"pedestrian": 0,
                                                                                        "cyclist": 0}
    tr = m["tracking"]["overall"]
    assert (tr["mota"], tr["idf1"], tr["num_switches"], tr["mostly_tracked"]) == (1.0, 1.0, 0, 2)


def test_a_late_and_offset_detection_gives_the_expected_numbers(stack, world):
    ts = make_test_session(world, late_detections(), name="late")
    m = evaluate(stack, ts)
    ap_ped = 88 / N_RECALL  # precision 1 up to recall 35/40 = 0.875: recall points 0.00..0.87
    assert m["coco"]["per_class"]["pedestrian"]["AP50"] == pytest.approx(ap_ped, abs=1e-12)
    assert m["coco"]["per_class"]["pedestrian"]["AP75"] == pytest.approx(ap_ped, abs=1e-12)
    # IoU 0.818 matches at the 7 thresholds 0.50..0.80 and fails at 0.85, 0.90, 0.95.
    assert m["coco"]["per_class"]["pedestrian"]["AP"] == pytest.approx(0.7 * ap_ped, abs=1e-12)
    assert m["coco"]["per_class"]["cyclist"]["AP"] == pytest.approx(1.0)
    assert m["coco"]["overall"]["AP"] == pytest.approx((0.7 * ap_ped + 1.0) / 2, abs=1e-12)
    op = m["operating_point"]
    assert (op["tp"], op["fp"], op["fn"]) == (55, 0, 5)  # the 0.4 detection is below the operating point
    assert op["recall"] == pytest.approx(55 / 60) and op["precision"] == 1.0
    assert op["per_class"]["pedestrian"]["recall"] == pytest.approx(35 / 40)
    assert op["confusion_matrix"]["matrix"] == [[35, 0, 5], [0, 20, 0], [0, 0, 0]]
    # The PR curve covers every score, so the 0.4 false positive closes it at recall 35/40.
    curve = op["per_class"]["pedestrian"]["pr_curve"]
    assert curve["score"] == [0.9, 0.4] and curve["recall"] == pytest.approx([35 / 40, 35 / 40])
    assert curve["precision"] == pytest.approx([1.0, 35 / 36])
    ped = next(o for o in m["temporal"]["objects"] if o["class_label"] == "pedestrian")
    t = world["timeline"]
    assert (ped["first_frame"], ped["first_detected_frame"], ped["latency_frames"]) == (0, 5, 5)
    assert ped["latency_seconds"] == pytest.approx(t[5] - t[0], abs=1e-6)
    assert ped["detected_share"] == pytest.approx(35 / 40)
    assert m["temporal"]["per_class"]["cyclist"]["median_latency_frames"] == 0.0
    tr = m["tracking"]["overall"]
    assert tr["num_misses"] == 5 and tr["num_switches"] == 0 and tr["num_false_positives"] == 0
    assert tr["mota"] == pytest.approx(1 - 5 / 60) and tr["mostly_tracked"] == 2

    # Another IoU threshold is a new evaluation job over the same detections: at 0.9 the offset
    # pedestrian boxes no longer match.
    strict = evaluate(stack, ts, iou_threshold=0.9)
    assert strict["parameters"]["iou_threshold"] == 0.9
    assert strict["operating_point"]["per_class"]["pedestrian"]["tp"] == 0
    assert strict["operating_point"]["per_class"]["pedestrian"]["fp"] == 35
    assert strict["operating_point"]["per_class"]["cyclist"]["recall"] == 1.0
    assert strict["temporal"]["overall"]["missed_objects"] == 1
    assert strict["coco"]["overall"] == m["coco"]["overall"]  # COCO always spans 0.50:0.95


def test_pending_annotations_and_class_subsets(stack, world):
    ts = make_test_session(world, perfect_detections(), name="subsets")
    m = evaluate(stack, ts, include_pending=True)
    # The pending pedestrian (10 frames, never detected) now counts as ground truth.
    assert m["parameters"]["include_pending"] is True and m["counts"]["ground_truth_boxes"] == 70
    assert m["operating_point"]["per_class"]["pedestrian"]["recall"] == pytest.approx(40 / 50)
    assert m["temporal"]["per_class"]["pedestrian"]["missed_objects"] == 1
    only = evaluate(stack, ts, classes=["cyclist"])
    assert only["parameters"]["classes"] == ["cyclist"]
    assert list(only["coco"]["per_class"]) == ["cyclist"] and only["coco"]["overall"]["AP"] == pytest.approx(1.0)
    assert only["counts"]["detections"] == 20 and only["counts"]["detections_of_other_classes"] == 40
    assert only["operating_point"]["confusion_matrix"]["labels"] == ["cyclist", "background"]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_plots_are_png(stack, world):
    ts = make_test_session(world, late_detections(), name="report")
    assert stack.api("GET", f"/api/test-sessions/{ts}/report").status_code == 404  # nothing evaluated yet
    evaluate(stack, ts)
    r = stack.api("GET", f"/api/test-sessions/{ts}/report")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["metrics"]["operating_point"]["tp"] == 55
    assert set(report["plots"]) == {"pr_curves", "confusion_matrix", "latency_histogram"}
    for name, plot in report["plots"].items():
        data = base64.b64decode(plot["data"])
        width, height = _png_size(data)
        assert width >= 300 and height >= 300, (name, width, height)
        raw = stack.api("GET", plot["url"])
        assert raw.status_code == 200 and raw.headers["Content-Type"] == "image/png"
        assert raw.content == data
    lean = stack.api("GET", f"/api/test-sessions/{ts}/report?embed=false").json()
    assert all("data" not in p for p in lean["plots"].values())
    assert stack.api("GET", f"/api/test-sessions/{ts}/report/heatmap.png").status_code == 404


def test_compare_puts_models_side_by_side(stack, world):
    good = make_test_session(world, perfect_detections(), name="good")
    late = make_test_session(world, late_detections(), name="late-cmp")
    evaluate(stack, good)
    evaluate(stack, late)
    r = stack.api("GET", f"/api/test-sessions/compare?ids={good},{late}")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ids"] == [good, late] and out["video_id"] == world["video"]["id"]
    assert [s["name"] for s in out["sessions"]] == ["good", "late-cmp"]
    rows = {row["metric"]: row for row in out["metrics"]}
    ap = rows["coco.overall.AP"]
    expected_late = (0.7 * 88 / N_RECALL + 1.0) / 2
    assert ap["values"] == pytest.approx([1.0, expected_late]) and ap["best"] == 0
    assert ap["differences"] == pytest.approx([0.0, expected_late - 1.0])
    fn = rows["operating_point.fn"]
    assert fn["values"] == [0, 5] and fn["higher_is_better"] is False and fn["best"] == 0
    assert rows["operating_point.per_class.pedestrian.recall"]["differences"] == pytest.approx([0.0, -5 / 40])
    assert out["parameters"]["protocol"] == "default"
    assert rows["hota.overall.HOTA"]["values"][0] == pytest.approx(1.0) and rows["hota.overall.HOTA"]["best"] == 0
    assert rows["voc.all_point.mAP"]["values"][0] == pytest.approx(1.0)

    # Sessions evaluated under another protocol are not compared
    evaluate(stack, late, protocol="motchallenge")
    r = stack.api("GET", f"/api/test-sessions/compare?ids={good},{late}")
    assert r.status_code == 422 and "protocol" in r.json()["error"]["details"]["fields"]["query"], r.text

    # Sessions evaluated with different parameters, of another video or not evaluated: 422.
    evaluate(stack, late, iou_threshold=0.75)
    r = stack.api("GET", f"/api/test-sessions/compare?ids={good},{late}")
    assert r.status_code == 422 and "iou_threshold" in r.json()["error"]["details"]["fields"]["query"], r.text
    fresh = make_test_session(world, perfect_detections(), name="fresh")
    r = stack.api("GET", f"/api/test-sessions/compare?ids={good},{fresh}")
    assert r.status_code == 422 and "ids" in r.json()["error"]["details"]["fields"]["query"], r.text
    elsewhere = make_test_session(world, [], name="elsewhere", video=world["other_video"],
                                  gt_session="other_session")
    evaluate(stack, elsewhere)
    r = stack.api("GET", f"/api/test-sessions/compare?ids={good},{elsewhere}")
    assert r.status_code == 422, r.text
    assert {"video_id", "ground_truth_session_id"} <= set(r.json()["error"]["details"]["fields"]["query"])
    for ids, status in ((good, 422), (f"{good},{good}", 422), (f"{good},nope", 422), ("", 422),
                        (f"{good},{uuid.uuid4()}", 404)):
        r = stack.api("GET", f"/api/test-sessions/compare?ids={ids}")
        assert r.status_code == status, (ids, r.text)
        assert r.json()["error"]["code"] in ("validation_error", "not_found")
    assert stack.api("GET", "/api/test-sessions/compare").status_code == 422


def test_permissions(stack, world):
    ts = make_test_session(world, perfect_detections(), name="perms")
    before = evaluation_jobs(stack, world)
    for token in (world["viewer"], world["outsider"]):
        r = stack.api("POST", f"/api/test-sessions/{ts}/evaluate", token=token, json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    assert evaluation_jobs(stack, world) == before
    evaluate(stack, ts)
    other = make_test_session(world, perfect_detections(), name="perms2")
    evaluate(stack, other)
    for path in (f"/api/test-sessions/{ts}/metrics", f"/api/test-sessions/{ts}/report",
                 f"/api/test-sessions/{ts}/report/pr_curves.png", f"/api/test-sessions/compare?ids={ts},{other}"):
        assert stack.api("GET", path, token=world["viewer"]).status_code == 200, path
        r = stack.api("GET", path, token=world["outsider"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, r.text)
        assert stack.api("GET", path, token=None).status_code == 401


def test_bad_requests_enqueue_nothing(stack, world):
    ts = make_test_session(world, perfect_detections(), name="bad")
    before = evaluation_jobs(stack, world)
    unknown = uuid.uuid4()
    for method, path in (("POST", f"/api/test-sessions/{unknown}/evaluate"),
                         ("GET", f"/api/test-sessions/{unknown}/metrics"),
                         ("GET", f"/api/test-sessions/{unknown}/report"),
                         ("POST", "/api/test-sessions/not-a-uuid/evaluate")):
        r = stack.api(method, path, json={} if method == "POST" else None)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
    for body, field in (({"iou_threshold": 1.5}, "iou_threshold"), ({"iou_threshold": 0}, "iou_threshold"),
                        ({"iou_threshold": "high"}, "iou_threshold"), ({"score_threshold": -0.1}, "score_threshold"),
                        ({"classes": []}, "classes"), ({"classes": ["dragon"]}, "classes"),
                        ({"include_pending": "maybe"}, "include_pending"), ({"surprise": 1}, "surprise")):
        r = stack.api("POST", f"/api/test-sessions/{ts}/evaluate", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["error"]["details"]["fields"]["json"], (body, r.text)
    r = stack.api("POST", f"/api/test-sessions/{ts}/evaluate", data="{not json", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text
    no_truth = make_test_session(world, [], name="no-truth", gt_session=None)
    r = stack.api("POST", f"/api/test-sessions/{no_truth}/evaluate", json={})
    assert r.status_code == 422 and "ground_truth_session_id" in r.json()["error"]["details"]["fields"]["json"]
    wrong_video = make_test_session(world, [], name="wrong-video", gt_session="other_session")
    r = stack.api("POST", f"/api/test-sessions/{wrong_video}/evaluate", json={})
    assert r.status_code == 422 and "ground_truth_session_id" in r.json()["error"]["details"]["fields"]["json"]
    running = make_test_session(world, [], name="running", status="processing")
    assert stack.api("POST", f"/api/test-sessions/{running}/evaluate", json={}).status_code == 409
    assert evaluation_jobs(stack, world) == before
    assert stack.api("GET", f"/api/test-sessions/{ts}/metrics").json()["evaluation"]["status"] == "not_evaluated"


def test_a_detection_job_with_ground_truth_is_evaluated_when_it_completes(stack, world):
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": world["project"]["id"], "video_id": world["video"]["id"], "model": "opencv/hog-people",
        "ground_truth_session_id": world["session"]["id"], "frame_to": 8, "frame_stride": 2})
    assert r.status_code == 202, r.text
    ts = r.json()
    detection = stack.wait_job(ts["job_id"], timeout=180)
    assert detection["status"] == "completed", detection
    job_id = detection["result"]["evaluation_job_id"]
    job = stack.wait_job(job_id, timeout=120)
    assert job["status"] == "completed" and job["kind"] == "evaluation", job
    got = stack.api("GET", f"/api/test-sessions/{ts['id']}/metrics").json()
    assert got["evaluation"]["status"] == "completed" and got["evaluation"]["job_id"] == job_id
    m = got["metrics"]
    # Frames 0, 2, 4, 6, 8 were run: the pedestrian is on all five, the cyclist (10..29) on none.
    assert m["counts"]["frames"] == 5 and m["counts"]["ground_truth_boxes"] == 5
    op = m["operating_point"]
    assert op["tp"] + op["fn"] == 5 and op["tp"] + op["fp"] == m["counts"]["detections_above_threshold"]


def test_queue_evaluation_as_a_finished_job_calls_it_and_a_failure_is_recorded(stack, world):
    """``queue_evaluation`` in the caller's transaction; the outbox sends it after the commit.
    Ground truth of another video (possible only behind the API's back) fails the job, and the
    failure is what the metrics endpoint reports."""
    from tasks.evaluation import queue_evaluation

    ts_id = make_test_session(world, perfect_detections(), name="direct", gt_session="other_session")
    with Session(world["engine"]) as db:
        job = queue_evaluation(db, db.get(TestSession, uuid.UUID(ts_id)), {"iou_threshold": 0.6})
        job_id = str(job.id)
        db.commit()
    assert stack.api("GET", f"/api/test-sessions/{ts_id}/metrics").json()["evaluation"]["status"] in (
        "pending", "processing", "failed")
    done = stack.wait_job(job_id)
    assert done["status"] == "failed" and "another video" in done["error"], done
    got = stack.api("GET", f"/api/test-sessions/{ts_id}/metrics").json()
    assert got["evaluation"]["status"] == "failed" and "another video" in got["evaluation"]["error"]
    assert got["evaluation"]["parameters"]["iou_threshold"] == 0.6 and got["metrics"] is None


def test_results_imported_from_elsewhere_are_evaluated_when_the_import_completes(stack, world, tmp_path):
    from harness import wait_until

    import formats

    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": world["project"]["id"], "video_id": world["video"]["id"], "source": "import",
        "name": "camera's own detector", "ground_truth_session_id": world["session"]["id"]})
    assert r.status_code == 201, r.text
    ts = r.json()
    assert ts["job_id"] is None and ts["source"] == "import" and ts["status"] == "pending"
    src = tmp_path / "results.csv"
    formats.write("csv", src, [formats.Detection(f, label, box, score, track)
                               for f, label, score, box, track in perfect_detections()], kind="results")
    with open(src, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data={
            "job_name": "camera", "import_type": "results", "source_format": "csv",
            "project_id": world["project"]["id"], "test_session_id": ts["id"]}, files={"file": (src.name, fh)})
    assert r.status_code == 202, r.text
    imp = wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                     ["status"] in ("completed", "failed") and i, 120, 0.2, "import")
    assert imp["status"] == "completed", imp
    job = stack.wait_job(imp["result"]["evaluation_job_id"], timeout=120)
    assert job["status"] == "completed" and job["kind"] == "evaluation", job
    got = stack.api("GET", f"/api/test-sessions/{ts['id']}").json()
    assert got["status"] == "completed"
    m = stack.api("GET", f"/api/test-sessions/{ts['id']}/metrics").json()["metrics"]
    assert m["counts"]["detections"] == 60 and m["counts"]["ground_truth_boxes"] == 60
    assert m["coco"]["overall"]["AP"] == pytest.approx(1.0)
    assert m["tracking"]["overall"]["mota"] == 1.0


def test_a_detector_with_known_output_run_as_a_job_gets_the_expected_metrics(stack, tmp_path):
    """A YOLO-shaped ONNX model that always answers the same two boxes, run by a real detection job:
    a pedestrian exactly on the annotated one, and a cyclist where there is none."""
    import numpy as np
    import torch

    class Fixed(torch.nn.Module):
        def __init__(self, predictions):
            super().__init__()
            self.register_buffer("p", torch.from_numpy(predictions))

        def forward(self, images):
            return self.p.unsqueeze(0) + 0 * images.mean()

    # The 320x240 clip is letterboxed 2x into 640x640 with 80 px bands: frame (x, y) -> (2x, 2y + 80).
    person, bike = (60.0, 40.0, 100.0, 140.0), (200.0, 100.0, 240.0, 160.0)
    preds = np.zeros((4 + 80, 2), np.float32)
    for col, (box, cls, score) in enumerate(((person, 0, 0.9), (bike, 1, 0.7))):
        x1, y1, x2, y2 = box
        preds[:4, col] = [x1 + x2, y1 + y2 + 80, 2 * (x2 - x1), 2 * (y2 - y1)]
        preds[4 + cls, col] = score
    (stack.workdir / "models").mkdir(exist_ok=True)
    name = f"fixed-{uuid.uuid4().hex[:6]}.onnx"
    torch.onnx.export(Fixed(preds), torch.zeros(1, 3, 640, 640), str(stack.workdir / "models" / name),
                      dynamo=False, input_names=["images"], output_names=["output0"])

    project = stack.api("POST", "/api/projects", json={"name": f"known-{uuid.uuid4().hex[:6]}"}).json()
    clip = make_clip(tmp_path / "clip.avi", 12, 10.0)
    with open(clip, "rb") as fh:
        video = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                          files={"file": (clip.name, fh, "video/x-msvideo")}).json()
    session = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "truth",
        "annotation_type": "spatial"}).json()
    ann = stack.api("POST", "/api/annotations/temporal", json={
        "annotation_session_id": session["id"], "video_id": video["id"], "start_timestamp": 0.0,
        "end_timestamp": video["duration"], "annotation_type": "spatial", "class_label": "pedestrian",
        "bounding_box": dict(zip(("x1", "y1", "x2", "y2"), person, strict=True))}).json()
    assert stack.api("POST", f"/api/annotations/{ann['id']}/validate",
                     json={"status": "validated", "force": True}).status_code == 200
    r = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "ground_truth_session_id": session["id"],
        "model": {"name": f"onnx/{name}", "confidence_threshold": 0.5}})
    assert r.status_code == 202, r.text
    detection = stack.wait_job(r.json()["job_id"], timeout=180)
    assert detection["status"] == "completed", detection
    assert detection["result"]["per_class"] == {"cyclist": 12, "pedestrian": 12}
    job = stack.wait_job(detection["result"]["evaluation_job_id"], timeout=120)
    assert job["status"] == "completed", job
    m = stack.api("GET", f"/api/test-sessions/{r.json()['id']}/metrics").json()["metrics"]
    op = m["operating_point"]
    assert (op["tp"], op["fp"], op["fn"]) == (12, 12, 0)
    assert op["precision"] == pytest.approx(0.5) and op["recall"] == pytest.approx(1.0)
    assert m["coco"]["per_class"]["pedestrian"]["AP"] == pytest.approx(1.0)
    assert m["temporal"]["overall"]["missed_objects"] == 0


# ------------------------------------------------------------------------------ MOTChallenge

# An 8-frame MOT17 sequence on the 320x240 test clip: two pedestrians (the second unannotated on
# frames 4 and 5), a static person (class 7) and a car (class 3), both marked conf 0 as the
# benchmark does.
MOT17_PEOPLE = {1: (10.0, 50.0, 30.0, 70.0), 2: (150.0, 40.0, 25.0, 60.0)}
MOT17_GAP = (2, (4, 5))
MOT17_STATIC = (250.0, 120.0, 20.0, 50.0)
MOT17_CAR = (60.0, 160.0, 80.0, 50.0)


def _mot17_zip(path) -> None:
    import zipfile

    gt = ["# MOT17 ground truth: frame,id,x,y,w,h,conf,class,visibility"]
    for f in range(1, 9):
        for tid, (x, y, w, h) in MOT17_PEOPLE.items():
            if tid != MOT17_GAP[0] or f not in MOT17_GAP[1]:
                gt.append(f"{f},{tid},{x + 4 * f},{y},{w},{h},1,1,0.8")
        gt.append(f"{f},3,{','.join(map(str, MOT17_STATIC))},0,7,1")
        gt.append(f"{f},4,{','.join(map(str, MOT17_CAR))},0,3,0.4")
    ini = "[Sequence]\r\nname=MOT17-90\r\nimDir=img1\r\nframeRate=10\r\nseqLength=8\r\nimWidth=320\r\n" \
          "imHeight=240\r\nimExt=.jpg\r\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("MOT17-90/gt/gt.txt", "\r\n".join(gt))  # CRLF, no final newline
        zf.writestr("MOT17-90/seqinfo.ini", ini)


def _import(stack, data: dict, path) -> dict:
    from harness import wait_until

    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/import/jobs", data=data, files={"file": (path.name, fh)})
    assert r.status_code == 202, r.text
    return wait_until(lambda: (i := stack.api("GET", f"/api/import/jobs/{r.json()['id']}").json())
                      ["status"] in ("completed", "failed") and i, 120, 0.2, "import")


def test_mot17_ground_truth_and_tracker_results_under_the_motchallenge_protocol(stack, tmp_path):
    from harness import project_with_video

    project, video = project_with_video(stack, tmp_path, frames=8)
    seq = tmp_path / "MOT17-90.zip"
    _mot17_zip(seq)
    gt = _import(stack, {"job_name": "mot17 gt", "import_type": "annotations", "source_format": "mot",
                         "project_id": project["id"], "video_id": video["id"], "add_missing_labels": "true",
                         "validation_status": "validated"}, seq)
    assert gt["status"] == "completed", gt
    assert sorted(gt["result"]["added_labels"]) == ["car", "static_person"]
    # the tracker's file as the benchmark takes it: the pedestrian ground truth itself, scored -1
    # ("no score") on odd frames, plus a confident detection on the static person on every frame
    lines = []
    for f in range(1, 9):
        for tid, (x, y, w, h) in MOT17_PEOPLE.items():
            if tid != MOT17_GAP[0] or f not in MOT17_GAP[1]:
                lines.append(f"{f},{tid + 10},{x + 4 * f},{y},{w},{h},{-1 if f % 2 else 0.9},-1,-1,-1")
        lines.append(f"{f},30,{','.join(map(str, MOT17_STATIC))},0.95,-1,-1,-1")
    results = tmp_path / "MOT17-90.txt"
    results.write_text("\n".join(lines) + "\n")
    ts = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "source": "import", "name": "tracker",
        "ground_truth_session_id": gt["result"]["annotation_session_id"]}).json()
    form = {"job_name": "tracker", "import_type": "results", "source_format": "mot",
            "project_id": project["id"], "test_session_id": ts["id"]}
    refused = _import(stack, form, results)
    assert refused["status"] == "failed" and "default_label" in refused["validation_errors"][0]["message"]
    imp = _import(stack, {**form, "default_label": "pedestrian"}, results)
    assert imp["status"] == "completed", imp
    [no_score] = [i for i in imp["validation_errors"] if i["code"] == "no_score"]
    assert no_score["severity"] == "warning" and "7 result(s)" in no_score["message"]
    assert stack.wait_job(imp["result"]["evaluation_job_id"], timeout=120)["status"] == "completed"
    plain = stack.api("GET", f"/api/test-sessions/{ts['id']}/metrics").json()["metrics"]
    # the default protocol counts every row: the static person and the car are objects of their
    # classes, the detections on the static person are false pedestrians, and the gap is
    # interpolated like any annotation between keyframes
    assert plain["protocol"]["name"] == "default" and plain["parameters"]["protocol"] == "default"
    assert plain["tracking"]["semantics"] == "py-motmetrics"
    assert plain["tracking"]["per_class"]["pedestrian"]["num_false_positives"] == 8
    assert plain["tracking"]["per_class"]["pedestrian"]["num_misses"] == 2
    assert plain["counts"]["detections_without_score"] == 7
    assert any("no score" in n for n in plain["notes"])

    for bad in ({"protocol": "mot99"}, {"protocol": "motchallenge", "benchmark": "MOT42"},
                {"protocol": "motchallenge", "min_visibility": 1.5}):
        r = stack.api("POST", f"/api/test-sessions/{ts['id']}/evaluate", json=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    m = evaluate(stack, ts["id"], protocol="motchallenge", score_threshold=0.5)
    assert m["parameters"]["protocol"] == "motchallenge"
    assert m["protocol"]["name"] == "motchallenge" and m["protocol"]["benchmark"] == "MOT17"
    assert m["protocol"]["tracking_detections_removed"] == 8 and m["protocol"]["detections_removed"] == 8
    assert m["protocol"]["ground_truth_interpolated_left_out"] == 2
    assert m["parameters"]["classes"] == ["pedestrian", "car"]  # static_person is a distractor, not a class
    assert (m["counts"]["ground_truth_objects"], m["counts"]["ground_truth_boxes"]) == (2, 14)
    assert (plain["counts"]["ground_truth_objects"], plain["counts"]["ground_truth_boxes"]) == (4, 32)
    t = m["tracking"]["overall"]
    assert m["tracking"]["semantics"] == "TrackEval"
    # unscored detections pass the 0.5 threshold; the car is zero-marked and the gap unannotated: no objects
    assert (t["mota"], t["num_false_positives"], t["num_misses"], t["num_objects"]) == (1.0, 0, 0, 14)
    h = m["hota"]["overall"]
    assert (h["HOTA"], h["DetA"], h["AssA"], h["LocA"]) == pytest.approx((1.0, 1.0, 1.0, 1.0))
    assert m["operating_point"]["fp"] == 0 and m["coco"]["per_class"]["pedestrian"]["AP"] == pytest.approx(1.0)
    assert m["voc"]["all_point"]["per_class"]["pedestrian"]["AP"] == pytest.approx(1.0)
    assert m["voc"]["11_point"]["per_class"]["pedestrian"]["AP"] == pytest.approx(1.0)
