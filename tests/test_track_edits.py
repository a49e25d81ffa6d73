"""Track edits the annotation editor makes: keyframes carried by collaborative edits with
``base_version``, split and merge (HTTP and Socket.IO), and presence on a frame."""
from __future__ import annotations

import time

import pytest
from harness import project_with_video


def _box(x1, y1, x2, y2):
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


@pytest.fixture()
def session(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)  # 40 frames at 10 fps, 320x240
    s = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "edit",
        "annotation_type": "spatial"}).json()
    return project, video, s


def _kf(frame, box, **extra):
    return {"frame_number": frame, "frame_data": {"bounding_box": box, **extra}}


def _keyframes(stack, annotation_id):
    return [k["frame_number"] for k in stack.api("GET", f"/api/annotations/{annotation_id}/keyframes").json()]


def _boxes(stack, annotation_id):
    r = stack.api("GET", f"/api/annotations/{annotation_id}/boxes")
    assert r.status_code == 200, r.text
    return {b["frame_number"]: b["bounding_box"] for b in r.json()["boxes"]}


def _track(stack, s, start=0.0, end=3.9, keyframes=((0, _box(10, 10, 50, 90)), (20, _box(110, 30, 170, 130)))):
    client = stack.socket()
    try:
        client.call("join_annotation_session", {"session_id": s["id"]})
        ack = client.call("real_time_annotation", {"session_id": s["id"], "op": "create", "annotation": {
            "start_timestamp": start, "end_timestamp": end, "annotation_type": "spatial",
            "class_label": "pedestrian",
            "keyframes": [{"frame_number": f, "frame_data": {"bounding_box": b}} for f, b in keyframes]}})
    finally:
        client.close()
    assert ack["ok"], ack
    return ack["annotation"]


def test_collaborative_edits_carry_keyframes_under_base_version(stack, session):
    project, _, s = session
    made = _track(stack, s)
    boxes = _boxes(stack, made["id"])
    assert boxes[10] == _box(60, 20, 110, 110) and boxes[30] == _box(110, 30, 170, 130)
    a, b = stack.socket(), stack.socket()
    try:
        for c in (a, b):
            c.call("join_annotation_session", {"session_id": s["id"]})
        moved = a.call("real_time_annotation", {
            "session_id": s["id"], "op": "update", "base_version": made["version"], "annotation": {
                "id": made["id"], "keyframes": [_kf(20, _box(10, 10, 50, 90)), _kf(30, _box(0, 0, 40, 80))],
                "delete_keyframes": [0]}})
        assert moved["ok"] and moved["version"] > made["version"], moved
        seen = b.wait_for("annotation_update", lambda m: m["version"] == moved["version"])
        assert seen["annotation"]["id"] == made["id"] and seen["op"] == "update"
        boxes = _boxes(stack, made["id"])
        assert boxes[0] == boxes[20] == _box(10, 10, 50, 90) and boxes[25] == _box(5, 5, 45, 85)
        assert _keyframes(stack, made["id"]) == [20, 30]
        # The other editor's keyframe change on the old version is refused with the current state.
        stale = b.call("real_time_annotation", {
            "session_id": s["id"], "op": "update", "base_version": made["version"], "annotation": {
                "id": made["id"], "keyframes": [_kf(5, _box(1, 1, 9, 9))]}})
        assert stale["ok"] is False and stale["error"]["code"] == "annotation_conflict"
        assert stale["error"]["details"]["current"]["version"] == moved["version"]
        assert b.wait_for("annotation_conflict")["annotation_id"] == made["id"]
        assert 5 not in _keyframes(stack, made["id"])
        # Outside from frame 32 on: no box there, nor after.
        out = a.call("real_time_annotation", {
            "session_id": s["id"], "op": "update", "base_version": moved["version"], "annotation": {
                "id": made["id"], "keyframes": [_kf(32, _box(0, 0, 40, 80), outside=True)]}})
        assert out["ok"], out
        assert max(_boxes(stack, made["id"])) == 31
        # A keyframe past the last frame, and a malformed one, are 422 with the field.
        off = a.call("real_time_annotation", {"session_id": s["id"], "op": "update", "annotation": {
            "id": made["id"], "keyframes": [_kf(40, _box(0, 0, 4, 4))]}})
        assert off["error"]["code"] == "validation_error"
        assert "frame_number" in off["error"]["details"]["fields"]["json"]
        bad = a.call("real_time_annotation", {"session_id": s["id"], "op": "update", "annotation": {
            "id": made["id"], "keyframes": [{"frame": 3}]}})
        assert bad["error"]["code"] == "validation_error"
        assert "keyframes" in bad["error"]["details"]["fields"]["data"]["annotation"]
    finally:
        a.close()
        b.close()


def test_split_keeps_every_box_and_refuses_a_stale_version(stack, session):
    _, _, s = session
    made = _track(stack, s)
    before = _boxes(stack, made["id"])
    path = f"/api/annotations/{made['id']}/split"
    assert stack.api("POST", path, json={"frame_number": 10, "base_version": made["version"] + 5}).status_code == 409
    assert stack.api("POST", path, json={"frame_number": 0}).status_code == 422
    r = stack.api("POST", path, json={"frame_number": 10, "base_version": made["version"]})
    assert r.status_code == 201, r.text
    first, second = r.json()["before"], r.json()["after"]
    assert first["id"] == made["id"] and first["version"] > made["version"] and second["class_label"] == "pedestrian"
    a, b = _boxes(stack, first["id"]), _boxes(stack, second["id"])
    assert sorted(a) == list(range(0, 10)) and sorted(b) == list(range(10, 40))
    assert {**a, **b} == before
    assert _keyframes(stack, second["id"]) == [10, 20]


def test_merge_joins_two_tracks_with_the_frames_between_outside(stack, session):
    _, _, s = session
    early = _track(stack, s, 0.0, 1.0, ((0, _box(10, 10, 50, 90)), (10, _box(20, 10, 60, 90))))
    late = _track(stack, s, 2.0, 3.0, ((25, _box(100, 10, 140, 90)),))
    other_label = stack.api("POST", "/api/annotations/temporal", json={
        "annotation_session_id": s["id"], "video_id": s["video_id"], "start_timestamp": 3.2, "end_timestamp": 3.5,
        "annotation_type": "spatial", "class_label": "cyclist", "bounding_box": _box(1, 1, 20, 20)})
    if other_label.status_code == 422:  # the project may not have that label
        other_label = None
    want = {**_boxes(stack, early["id"]), **_boxes(stack, late["id"])}
    overlapping = _track(stack, s, 0.5, 2.5, ((10, _box(5, 5, 30, 30)),))
    r = stack.api("POST", f"/api/annotations/{late['id']}/merge", json={"other_id": overlapping["id"]})
    assert r.status_code == 422 and "overlap" in r.text
    if other_label is not None:
        r = stack.api("POST", f"/api/annotations/{late['id']}/merge", json={"other_id": other_label.json()["id"]})
        assert r.status_code == 422 and "labels" in r.text
    stack.api("DELETE", f"/api/annotations/{overlapping['id']}")
    r = stack.api("POST", f"/api/annotations/{late['id']}/merge", json={
        "other_id": early["id"], "base_version": late["version"], "other_base_version": early["version"]})
    assert r.status_code == 200, r.text
    kept = r.json()
    assert kept["id"] == late["id"] and kept["start_timestamp"] == 0.0 and kept["end_timestamp"] == 3.0
    assert _boxes(stack, kept["id"]) == want  # frames 11-19 stay without a box
    assert stack.api("GET", f"/api/annotations/{early['id']}").status_code == 404


def test_split_and_merge_over_the_socket_reach_the_others(stack, session):
    _, _, s = session
    made = _track(stack, s)
    before = _boxes(stack, made["id"])
    a, b = stack.socket(), stack.socket()
    try:
        for c in (a, b):
            c.call("join_annotation_session", {"session_id": s["id"]})
        cut = a.call("real_time_annotation", {"session_id": s["id"], "op": "split", "base_version": made["version"],
                                              "annotation": {"id": made["id"], "frame_number": 15}})
        assert cut["ok"], cut
        second = cut["also"][0]["annotation"]
        assert cut["also"][0]["op"] == "create"
        assert b.wait_for("annotation_update", lambda m: m["op"] == "create")["annotation"]["id"] == second["id"]
        joined = a.call("real_time_annotation", {
            "session_id": s["id"], "op": "merge", "base_version": cut["version"],
            "annotation": {"id": made["id"], "other_id": second["id"], "other_base_version": second["version"]}})
        assert joined["ok"], joined
        assert b.wait_for("annotation_update", lambda m: m["op"] == "delete")["annotation"]["id"] == second["id"]
        assert _boxes(stack, made["id"]) == before
    finally:
        a.close()
        b.close()


def test_presence_says_who_is_on_which_frame(stack, session):
    project, _, s = session
    name = f"viewer{time.time_ns()}"
    _, token = stack.create_user(name, "viewer")
    stack.api("POST", f"/api/projects/{project['id']}/members", json={"username": name, "role": "viewer"})
    a, v = stack.socket(), stack.socket(token)
    try:
        a.call("join_annotation_session", {"session_id": s["id"]})
        assert v.call("join_annotation_session", {"session_id": s["id"]})["can_edit"] is False
        ack = v.call("annotation_focus", {"session_id": s["id"], "frame_number": 12})
        assert ack["ok"], ack
        seen = a.wait_for("presence_update", lambda m: any(p.get("frame_number") == 12 for p in m["presence"]))
        assert {p["username"]: p.get("frame_number") for p in seen["presence"]} == {"admin": None, name: 12}
        assert v.call("annotation_focus", {"session_id": s["id"], "frame_number": -1})["error"]["code"] == \
            "validation_error"
    finally:
        a.close()
        v.close()
