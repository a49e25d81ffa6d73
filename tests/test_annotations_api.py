"""Annotation sessions, temporal annotations, keyframes and validation over HTTP."""
from __future__ import annotations

import time

import pytest
from harness import project_with_video


def _session(stack, project, video, token="admin", **extra):
    r = stack.api("POST", "/api/annotations/sessions", token=token,
                  json={"project_id": project["id"], "video_id": video["id"], "session_name": "gt",
                        "annotation_type": "spatial", **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _annotation(stack, session, token="admin", **fields):
    body = {"annotation_session_id": session["id"], "video_id": session["video_id"], "start_timestamp": 0.5,
            "end_timestamp": 2.5, "annotation_type": "spatial", "class_label": "pedestrian",
            "bounding_box": {"x1": 10, "y1": 20, "x2": 50, "y2": 100}, **fields}
    return stack.api("POST", "/api/annotations/temporal", token=token, json=body)


@pytest.fixture()
def setup(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)  # 40 frames at 10 fps, 320x240
    return project, video, _session(stack, project, video)


def test_session_lifecycle_and_counts(stack, setup):
    project, video, session = setup
    assert session["status"] == "active" and session["annotation_count"] == 0
    assert _annotation(stack, session).status_code == 201
    listed = stack.api("GET", "/api/annotations/sessions", params={"project_id": project["id"]}).json()
    assert [s["annotation_count"] for s in listed["items"]] == [1]
    path = f"/api/annotations/sessions/{session['id']}"
    assert stack.api("PATCH", path, json={"status": "paused"}).json()["status"] == "paused"
    assert stack.api("PATCH", path, json={"status": "active"}).json()["status"] == "active"
    done = stack.api("PATCH", path, json={"status": "completed", "metadata": {"note": "done"}}).json()
    assert done["status"] == "completed" and done["end_time"] and done["metadata"] == {"note": "done"}
    # Completed is read-only, for edits and for non-admin reopening.
    r = _annotation(stack, session)
    assert r.status_code == 409 and r.json()["error"]["details"]["status"] == "completed"
    _, annotator = stack.create_user(f"ann{time.time_ns()}", "annotator")
    stack.api("POST", f"/api/projects/{project['id']}/members", json={"username": _name(stack, annotator),
                                                                       "role": "annotator"})
    assert stack.api("PATCH", path, token=annotator, json={"status": "active"}).status_code == 409
    assert stack.api("PATCH", path, json={"status": "paused"}).status_code == 409
    reopened = stack.api("PATCH", path, json={"status": "active"}).json()
    assert reopened["status"] == "active" and reopened["end_time"] is None
    assert _annotation(stack, session).status_code == 201


def _name(stack, token):
    return stack.api("GET", "/api/users/me", token=token).json()["username"]


def test_annotation_validation_reports_every_field(stack, setup):
    _, _, session = setup
    r = _annotation(stack, session, start_timestamp=3.0, end_timestamp=9.0, class_label="truck",
                    bounding_box={"x1": 400, "y1": 10, "x2": 420, "y2": 30})
    assert r.status_code == 422
    fields = r.json()["error"]["details"]["fields"]["json"]
    assert set(fields) == {"end_timestamp", "class_label", "bounding_box"}, fields
    assert "past the end of the video" in fields["end_timestamp"][0]
    assert "does not overlap" in fields["bounding_box"][0]
    r = _annotation(stack, session, start_timestamp=2.0, end_timestamp=1.0,
                    bounding_box={"x1": 10, "y1": 10, "x2": 10, "y2": 30})
    fields = r.json()["error"]["details"]["fields"]["json"]
    assert set(fields) == {"end_timestamp", "bounding_box"}
    r = stack.api("POST", "/api/annotations/temporal", data=b'{"confidence": NaN}',
                  headers={"Content-Type": "application/json"})
    # Python's parser reads NaN; the finite-float rule refuses it as a validation error on its field.
    assert r.status_code == 422 and "confidence" in r.json()["error"]["details"]["fields"]["json"], r.text
    r = _annotation(stack, session, confidence=1.5)
    assert r.status_code == 422 and "confidence" in r.json()["error"]["details"]["fields"]["json"]
    page = stack.api("GET", "/api/annotations/temporal", params={"session_id": session["id"]}).json()
    assert page["total"] == 0  # nothing was written


def test_versions_and_stale_edits(stack, setup):
    _, _, session = setup
    ann = _annotation(stack, session).json()
    assert ann["version"] == 1
    v2 = stack.api("PATCH", f"/api/annotations/{ann['id']}", json={"confidence": 0.8, "base_version": 1}).json()
    assert v2["version"] == 2 and v2["confidence"] == 0.8
    stale = stack.api("PATCH", f"/api/annotations/{ann['id']}", json={"confidence": 0.1, "base_version": 1})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "annotation_conflict"
    assert stale.json()["error"]["details"]["current"]["version"] == 2
    assert stack.api("PATCH", f"/api/annotations/{ann['id']}", json={"class_label": "cyclist"}).json()["version"] == 3
    assert stack.api("DELETE", f"/api/annotations/{ann['id']}").status_code == 204
    assert stack.api("GET", f"/api/annotations/{ann['id']}").status_code == 404


def test_keyframes_and_interpolated_boxes(stack, setup):
    _, _, session = setup
    ann = _annotation(stack, session, bounding_box=None).json()  # span 0.5-2.5 s: frames 5-25
    base = f"/api/annotations/{ann['id']}/keyframes"
    k1 = stack.api("POST", base, json={"frame_number": 10, "frame_data": {
        "bounding_box": {"x1": 0, "y1": 0, "x2": 20, "y2": 40}}})
    assert k1.status_code == 201, k1.text
    assert k1.json()["timestamp"] == pytest.approx(1.0)
    k2 = stack.api("POST", base, json={"frame_number": 20, "timestamp": 2.0, "frame_data": {
        "bounding_box": {"x1": 100, "y1": 0, "x2": 120, "y2": 40}}}).json()
    outside = stack.api("POST", base, json={"frame_number": 30, "frame_data": {}})
    assert outside.status_code == 422 and "outside the annotation" in str(outside.json())
    wrong_time = stack.api("POST", base, json={"frame_number": 12, "timestamp": 1.9, "frame_data": {}})
    assert wrong_time.status_code == 422 and "timestamp" in wrong_time.json()["error"]["details"]["fields"]["json"]
    assert stack.api("POST", base, json={"frame_number": 10, "frame_data": {}}).status_code == 409
    assert stack.api("GET", f"/api/annotations/{ann['id']}").json()["version"] == 3  # two keyframes added

    boxes = stack.api("GET", f"/api/annotations/{ann['id']}/boxes",
                      params={"frame_from": 8, "frame_to": 22}).json()["boxes"]
    assert [b["frame_number"] for b in boxes] == list(range(8, 23))
    by_frame = {b["frame_number"]: b for b in boxes}
    assert by_frame[8]["bounding_box"]["x1"] == 0 and by_frame[15]["bounding_box"]["x1"] == pytest.approx(50)
    assert by_frame[22]["bounding_box"]["x1"] == 100 and by_frame[15]["timestamp"] == pytest.approx(1.5)
    assert by_frame[10]["keyframe"] and not by_frame[11]["keyframe"]

    moved = stack.api("PATCH", f"{base}/{k2['id']}", json={"frame_data": {
        "bounding_box": {"x1": 60, "y1": 0, "x2": 80, "y2": 40}}})
    assert moved.status_code == 200
    boxes = stack.api("GET", f"/api/annotations/{ann['id']}/boxes",
                      params={"frame_from": 15, "frame_to": 15}).json()["boxes"]
    assert boxes[0]["bounding_box"]["x1"] == pytest.approx(30)
    assert stack.api("DELETE", f"{base}/{k1.json()['id']}").status_code == 204
    assert len(stack.api("GET", base).json()) == 1


def test_a_keyframe_body_may_name_its_annotation_as_the_blueprint_does(stack, setup):
    _, _, session = setup
    ann = _annotation(stack, session, bounding_box=None).json()
    other = _annotation(stack, session, bounding_box=None).json()
    base = f"/api/annotations/{ann['id']}/keyframes"
    box = {"bounding_box": {"x1": 0, "y1": 0, "x2": 20, "y2": 40}}
    same = stack.api("POST", base, json={"annotation_id": ann["id"], "frame_number": 10, "timestamp": 1.0,
                                         "frame_data": box, "screenshot_path": None})
    assert same.status_code == 201, same.text
    assert same.json()["annotation_id"] == ann["id"] and same.json()["frame_number"] == 10
    differs = stack.api("POST", base, json={"annotation_id": other["id"], "frame_number": 12, "frame_data": box})
    assert differs.status_code == 422, differs.text
    error = differs.json()["error"]
    assert error["code"] == "validation_error" and "annotation_id" in error["details"]["fields"]["json"]
    not_an_id = stack.api("POST", base, json={"annotation_id": "nope", "frame_number": 12, "frame_data": box})
    assert not_an_id.status_code == 422 and "annotation_id" in not_an_id.json()["error"]["details"]["fields"]["json"]
    assert [k["frame_number"] for k in stack.api("GET", base).json()] == [10]
    assert stack.api("GET", f"/api/annotations/{other['id']}/keyframes").json() == []


def test_listing_filters(stack, setup):
    _, _, session = setup
    early = _annotation(stack, session, start_timestamp=0.0, end_timestamp=1.0).json()
    late = _annotation(stack, session, start_timestamp=3.0, end_timestamp=3.9, class_label="cyclist").json()
    q = {"session_id": session["id"]}

    def ids(**params):
        return {a["id"] for a in stack.api("GET", "/api/annotations/temporal", params={**q, **params}).json()["items"]}
    assert ids() == {early["id"], late["id"]}
    assert ids(time_from=2.0) == {late["id"]}
    assert ids(frame_from=0, frame_to=5) == {early["id"]}
    assert ids(class_label="cyclist") == {late["id"]}
    assert ids(validation_status="validated") == set()
    r = stack.api("GET", "/api/annotations/temporal")
    assert r.status_code == 422


def test_validation_workflow_with_consistency_checks(stack, setup):
    project, _, session = setup
    a = _annotation(stack, session).json()
    twin = _annotation(stack, session, bounding_box={"x1": 12, "y1": 20, "x2": 50, "y2": 100}).json()
    client = stack.socket()
    try:
        client.call("join_annotation_session", {"session_id": session["id"]})
        refused = stack.api("POST", f"/api/annotations/{a['id']}/validate", json={"status": "validated"})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "consistency_failed"
        findings = refused.json()["error"]["details"]["findings"]
        assert findings[0]["check"] == "duplicate" and findings[0]["other_annotation_id"] == twin["id"]
        assert stack.api("POST", f"/api/annotations/{twin['id']}/validate",
                         json={"status": "rejected", "reason": "duplicate"}).json()["annotation"][
            "validation_status"] == "rejected"
        ok = stack.api("POST", f"/api/annotations/{a['id']}/validate", json={"status": "validated", "reason": "ok"})
        assert ok.status_code == 200, ok.text
        body = ok.json()["annotation"]
        assert body["validation_status"] == "validated" and body["validated_by"] and body["validated_at"]
        event = client.wait_for("annotation_validated", lambda d: d["annotation_id"] == a["id"])
        assert event["validation"]["status"] == "validated" and event["validation"]["reason"] == "ok"
    finally:
        client.close()
    _, viewer = stack.create_user(f"view{time.time_ns()}", "viewer")
    stack.api("POST", f"/api/projects/{project['id']}/members", json={"username": _name(stack, viewer),
                                                                       "role": "viewer"})
    assert stack.api("POST", f"/api/annotations/{a['id']}/validate", token=viewer,
                     json={"status": "rejected"}).status_code == 403
    assert stack.api("GET", f"/api/annotations/{a['id']}", token=viewer).status_code == 200
