"""Review, model-assisted annotation and honest evaluation over the API, against the real stack.

A generated 40-frame clip; detections written to the database as a detection job with tracking
would (track 1: the clip's moving square on every frame; track 2: standing still, lost on frames
10-19; track 3: a cyclist; track 4 below the score threshold; track 5 a single detection). They
become pre-annotations; the session is reviewed in bulk; the evaluation says what it rests on
and refuses precision/recall against ground truth that holds nothing yet.
"""
from __future__ import annotations

import uuid

import pytest
from harness import project_with_video
from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

from models import DetectionEvent, TestSession

FRAMES = 40
STILL = (200.0, 140.0, 240.0, 220.0)
BIKE = (100.0, 150.0, 160.0, 230.0)


def moving(i: int) -> tuple[float, float, float, float]:
    return (10.0 + 5 * i, 50.0, 40.0 + 5 * i, 120.0)


def detections() -> list[tuple[int, str, float, tuple, int | None]]:
    return ([(i, "pedestrian", 0.9, moving(i), 1) for i in range(FRAMES)]
            + [(i, "pedestrian", 0.8, STILL, 2) for i in range(FRAMES) if not 10 <= i < 20]
            + [(i, "cyclist", 0.7, BIKE, 3) for i in range(30, FRAMES)]
            + [(i, "pedestrian", 0.2, (250.0, 10.0, 280.0, 60.0), 4) for i in range(5)]
            + [(7, "pedestrian", 0.9, (5.0, 180.0, 30.0, 230.0), 5), (8, "pedestrian", 0.9, STILL, None)])


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    project, video = project_with_video(stack, tmp_path_factory.mktemp("review"), frames=FRAMES)
    suffix = uuid.uuid4().hex[:6]
    viewer_id, viewer = stack.create_user(f"rv-viewer-{suffix}", "viewer")
    stack.api("POST", f"/api/projects/{project['id']}/members", json={"user_id": viewer_id, "role": "viewer"})
    engine = create_engine(stack.database_url)
    yield {"project": project, "video": video, "engine": engine, "viewer": viewer}
    engine.dispose()


def make_test_session(world, rows, *, name="tracker", config=None, gt=None) -> str:
    """A completed test session and its detections, written as a detection job writes them."""
    ts_id = uuid.uuid4()
    timeline = world.setdefault("timeline", _timeline(world))
    with Session(world["engine"]) as db:
        db.add(TestSession(id=ts_id, project_id=uuid.UUID(world["project"]["id"]),
                           video_id=uuid.UUID(world["video"]["id"]), name=name, source="detection",
                           model={"name": name, "confidence_threshold": 0.5}, config=config or {"frame_stride": 1},
                           status="completed", ground_truth_session_id=uuid.UUID(gt) if gt else None))
        db.commit()
    per_frame: dict[int, int] = {}
    out = []
    for frame, label, score, box, track in rows:
        idx = per_frame[frame] = per_frame.get(frame, -1) + 1
        out.append({"test_session_id": ts_id, "frame_number": frame, "detection_index": idx,
                    "timestamp": timeline[frame], "class_label": label, "confidence": score,
                    "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3], "track_id": track})
    if out:
        with world["engine"].begin() as conn:
            conn.execute(insert(DetectionEvent), out)
    return str(ts_id)


def _timeline(world) -> dict[int, float]:
    """The clip's frame times as the API reports them (read at upload)."""
    return {f: f / 10.0 for f in range(FRAMES)}


def boxes_of(stack, annotation_id: str) -> dict[int, tuple]:
    r = stack.api("GET", f"/api/annotations/{annotation_id}/boxes")
    assert r.status_code == 200, r.text
    return {b["frame_number"]: tuple(b["bounding_box"][c] for c in ("x1", "y1", "x2", "y2"))
            for b in r.json()["boxes"]}


@pytest.fixture(scope="module")
def pre(stack, world):
    ts = make_test_session(world, detections())
    r = stack.api("POST", f"/api/test-sessions/{ts}/pre-annotations",
                  json={"score_threshold": 0.5, "session_name": "from the tracker", "keyframe_iou": 0.9})
    assert r.status_code == 201, r.text
    return {"test_session": ts, "session": r.json()}


def test_pre_annotations_one_pending_track_each_with_few_keyframes(stack, world, pre):
    session = pre["session"]
    assert session["session_name"] == "from the tracker" and session["annotation_count"] == 3
    meta = session["metadata"]
    assert meta["source"] == "model" and meta["test_session_id"] == pre["test_session"]
    assert meta["tracks_left_out"] == 1  # track 5: one detection; track 4 is below the threshold
    items = stack.api("GET", f"/api/annotations/temporal?session_id={session['id']}").json()["items"]
    assert {a["validation_status"] for a in items} == {"pending"}
    by_track = {a["keyframe_data"]["track_id"]: a for a in items}
    assert set(by_track) == {1, 2, 3}
    assert by_track[3]["class_label"] == "cyclist"
    keyframes = stack.api("GET", f"/api/annotations/{by_track[1]['id']}/keyframes").json()
    # a straight move: its two ends, and one between so that no keyframe gap exceeds the checks' 2 s
    assert [k["frame_number"] for k in keyframes][::2] == [0, FRAMES - 1] and len(keyframes) == 3
    times = [k["timestamp"] for k in keyframes]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 2.0
    # the API's interpolated boxes are the detected ones on every frame
    got = boxes_of(stack, by_track[1]["id"])
    assert sorted(got) == list(range(FRAMES))
    for f, box in got.items():
        assert box == pytest.approx(moving(f), abs=1e-3)
    # the still track is outside where the tracker lost it, and nowhere claimed there
    still = boxes_of(stack, by_track[2]["id"])
    assert sorted(still) == [f for f in range(FRAMES) if not 10 <= f < 20]
    marks = stack.api("GET", f"/api/annotations/{by_track[2]['id']}/keyframes").json()
    assert [(k["frame_number"], bool(k["frame_data"].get("outside"))) for k in marks] == [
        (0, False), (9, False), (10, True), (20, False), (39, False)]


def test_pre_annotations_refusals(stack, world, pre):
    ts = pre["test_session"]
    r = stack.api("POST", f"/api/test-sessions/{ts}/pre-annotations", token=world["viewer"], json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = stack.api("POST", f"/api/test-sessions/{ts}/pre-annotations", json={"classes": ["unicorn"]})
    assert r.status_code == 422 and "classes" in r.json()["error"]["details"]["fields"]["json"], r.text
    r = stack.api("POST", f"/api/test-sessions/{ts}/pre-annotations", json={"score_threshold": 0.99})
    assert r.status_code == 422 and "score_threshold" in r.json()["error"]["details"]["fields"]["json"], r.text
    untracked = make_test_session(world, [(0, "pedestrian", 0.9, STILL, None)], name="no tracker")
    r = stack.api("POST", f"/api/test-sessions/{untracked}/pre-annotations", json={})
    assert r.status_code == 422 and "tracking" in r.text, r.text
    only_bikes = stack.api("POST", f"/api/test-sessions/{ts}/pre-annotations", json={"classes": ["cyclist"]})
    assert only_bikes.status_code == 201 and only_bikes.json()["annotation_count"] == 1


def test_review_progress_findings_and_bulk_decisions(stack, world, pre):
    sid = pre["session"]["id"]
    review = stack.api("GET", f"/api/annotations/sessions/{sid}/review")
    assert review.status_code == 200, review.text
    body = review.json()
    assert body["progress"]["pending"] == 3 and body["progress"]["total"] == 3
    assert body["progress"]["per_class"]["cyclist"]["pending"] == 1
    assert all("findings" in a for a in body["annotations"])
    assert not any(a["findings"] for a in body["annotations"])  # the model's tracks pass the checks as made
    assert stack.api("GET", f"/api/annotations/sessions/{sid}/review", token=world["viewer"]).status_code == 200
    refused = stack.api("POST", f"/api/annotations/sessions/{sid}/validate", token=world["viewer"],
                        json={"status": "validated"})
    assert refused.status_code == 403

    # a duplicate of the moving pedestrian: its checks find an error, bulk validation skips it
    items = stack.api("GET", f"/api/annotations/temporal?session_id={sid}").json()["items"]
    first = next(a for a in items if a["keyframe_data"]["track_id"] == 1)
    twin = stack.api("POST", "/api/annotations/temporal", json={
        "annotation_session_id": sid, "video_id": world["video"]["id"], "start_timestamp": 0.0,
        "end_timestamp": 0.1, "annotation_type": "spatial", "class_label": "pedestrian",
        "bounding_box": dict(zip(("x1", "y1", "x2", "y2"), moving(0), strict=True))}).json()
    client = stack.socket()
    try:
        client.call("join_annotation_session", {"session_id": sid})
        # frames 0-9: the two pedestrians and the twin overlap the range, the cyclist (30-39) does not
        r = stack.api("POST", f"/api/annotations/sessions/{sid}/validate",
                      json={"status": "validated", "frame_from": 0, "frame_to": 9, "reason": "looked fine"})
        assert r.status_code == 200, r.text
        out = r.json()
        skipped = {s["annotation_id"]: s for s in out["skipped"]}
        assert set(skipped) == {twin["id"], first["id"]} and out["decided"] == 1  # duplicates of each other
        assert any(f["check"] == "duplicate" and f["other_annotation_id"] == first["id"]
                   for f in skipped[twin["id"]]["findings"])
        assert out["progress"]["validated"] == out["decided"]
        for aid in out["annotation_ids"]:
            client.wait_for("annotation_validated", lambda d, aid=aid: d["annotation_id"] == aid)
    finally:
        client.close()
    review = stack.api("GET", f"/api/annotations/sessions/{sid}/review").json()
    twin_row = next(a for a in review["annotations"] if a["id"] == twin["id"])
    assert twin_row["errors"] >= 1 and twin_row["validation_status"] == "pending"

    # a whole class rejected; the twin rejected by id; then the rest validates, and a last pass finds nothing
    r = stack.api("POST", f"/api/annotations/sessions/{sid}/validate", json={"status": "rejected",
                                                                             "class_label": "cyclist"})
    assert r.status_code == 200 and r.json()["decided"] == 1, r.text
    r = stack.api("POST", f"/api/annotations/sessions/{sid}/validate",
                  json={"status": "rejected", "annotation_ids": [twin["id"]], "reason": "duplicate"})
    assert r.json()["decided"] == 1
    rest = stack.api("POST", f"/api/annotations/sessions/{sid}/validate", json={"status": "validated"}).json()
    assert rest["annotation_ids"] == [first["id"]] and not rest["skipped"]
    left = stack.api("POST", f"/api/annotations/sessions/{sid}/validate", json={"status": "validated"}).json()
    progress = left["progress"]
    assert left["decided"] == 0 and progress["pending"] == 0 and progress["rejected"] == 2
    assert progress["validated"] == 2 and progress["reviewed_percent"] == 100.0
    assert stack.api("GET", f"/api/annotations/{first['id']}").json()["validated_by"]
    # one audited action per bulk decision, with its selection
    audit = stack.api("GET", f"/api/audit?resource_type=annotation_session&resource_id={sid}&action=validate")
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]
    assert len(entries) == 5 and any(e["details"].get("filters", {}).get("class_label") == "cyclist"
                                     for e in entries)
    bad = stack.api("POST", f"/api/annotations/sessions/{sid}/validate",
                    json={"status": "validated", "frame_from": 9, "frame_to": 2})
    assert bad.status_code == 422 and "frame_to" in bad.json()["error"]["details"]["fields"]["json"]


def _evaluate(stack, ts: str, **body) -> dict:
    r = stack.api("POST", f"/api/test-sessions/{ts}/evaluate", json=body)
    assert r.status_code == 202, r.text
    assert stack.wait_job(r.json()["id"], timeout=120)["status"] == "completed"
    return stack.api("GET", f"/api/test-sessions/{ts}/report?embed=false").json()


def test_evaluation_says_what_it_rests_on_and_refuses_empty_ground_truth(stack, world):
    # fresh pre-annotations, still pending, as ground truth
    source = make_test_session(world, detections(), name="source")
    gt = stack.api("POST", f"/api/test-sessions/{source}/pre-annotations", json={"score_threshold": 0.5}).json()
    clean = [d for d in detections() if d[4] in (1, 2, 3, 4)]  # track 4: below the operating threshold
    ts = make_test_session(world, [d for d in clean if d[0] < 30 and d[0] % 2 == 0], name="judged", gt=gt["id"],
                           config={"frame_stride": 2, "frame_from": 0, "frame_to": 29})
    basis = stack.api("GET", f"/api/test-sessions/{ts}/evaluation-basis")
    assert basis.status_code == 200, basis.text
    b = basis.json()
    assert b["basis"]["annotations"] == {"validated": 0, "pending": 3, "rejected": 0, "total": 3}
    assert b["basis"]["empty"] is True and b["basis"]["ground_truth_boxes"] == 0
    assert b["basis"]["frames"]["evaluated"] == 15 and b["basis"]["frames"]["skipped"] == 25
    assert b["refusal"]["code"] == "empty_ground_truth"
    assert [m["action"] for m in b["refusal"]["remedies"]][:2] == ["validate", "include_pending"]
    with_pending = stack.api("GET", f"/api/test-sessions/{ts}/evaluation-basis?include_pending=true").json()
    assert with_pending["refusal"] is None and with_pending["basis"]["ground_truth_objects"] == 2
    # the evaluated frames 0, 2, ..., 28: the moving one on all 15, the still one on 10 of them, the cyclist none
    assert with_pending["basis"]["ground_truth_boxes"] == 15 + 10
    assert with_pending["basis"]["boxes_on_skipped_frames"] == (40 - 15) + (30 - 10) + 10

    report = _evaluate(stack, ts)
    assert report["refusal"]["code"] == "empty_ground_truth" and report["basis"]["empty"] is True
    r = stack.api("POST", f"/api/annotations/sessions/{gt['id']}/validate", json={"status": "validated"})
    assert r.status_code == 200 and r.json()["decided"] == 3, r.text
    report = _evaluate(stack, ts)
    assert report["refusal"] is None and report["basis"]["annotations"]["validated"] == 3
    op = report["metrics"]["operating_point"]
    assert op["precision"] == pytest.approx(1.0) and op["recall"] == pytest.approx(1.0)

    # compared with a session run on every frame: a warning, and the chosen reference
    full = make_test_session(world, clean, name="every frame", gt=gt["id"])
    _evaluate(stack, full)
    r = stack.api("GET", f"/api/test-sessions/compare?ids={ts},{full}&reference={full}")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["reference"] == 1 and out["warnings"][0]["code"] == "different_frames"
    rows = {row["metric"]: row for row in out["metrics"]}
    assert rows["operating_point.precision"]["label"] == "precision"
    assert rows["operating_point.precision"]["best"] is None and rows["operating_point.precision"]["tied"] == [0, 1]
    assert rows["operating_point.tp"]["differences"][1] == 0
    bad = stack.api("GET", f"/api/test-sessions/compare?ids={ts},{full}&reference={uuid.uuid4()}")
    assert bad.status_code == 422
