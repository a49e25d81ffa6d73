"""Real-time collaborative annotation over Socket.IO: presence, conflicts, no lost edits, two nodes."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from harness import project_with_video, wait_until

# Versioned concurrent writes rely on each database's transactions.
pytestmark = pytest.mark.both_backends


def _member(stack, project, role):
    name = f"{role}{time.time_ns()}"
    _, token = stack.create_user(name, "viewer" if role == "viewer" else "annotator")
    r = stack.api("POST", f"/api/projects/{project['id']}/members", json={"username": name, "role": role})
    assert r.status_code == 201
    return name, token


@pytest.fixture()
def session(stack, tmp_path):
    project, video = project_with_video(stack, tmp_path)
    s = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "live",
        "annotation_type": "spatial"}).json()
    return project, s


BOX = {"x1": 10, "y1": 10, "x2": 60, "y2": 90}


def _new(start=0.1):
    return {"start_timestamp": start, "end_timestamp": start + 1, "annotation_type": "spatial",
            "class_label": "pedestrian", "bounding_box": BOX}


def test_presence_and_snapshot(stack, session):
    project, s = session
    alice, bob = stack.socket(), stack.socket(_member(stack, project, "annotator")[1])
    try:
        first = alice.call("join_annotation_session", {"session_id": s["id"]})
        assert first["ok"] and first["annotations"] == [] and [p["username"] for p in first["presence"]] == ["admin"]
        created = alice.call("real_time_annotation", {"session_id": s["id"], "op": "create", "annotation": _new()})
        second = bob.call("join_annotation_session", {"session_id": s["id"]})
        assert [a["id"] for a in second["annotations"]] == [created["annotation"]["id"]]  # snapshot from the DB
        assert len(second["presence"]) == 2 and second["can_edit"] is True
        joined = alice.wait_for("user_joined")
        assert joined["user"]["username"] == second["presence"][1]["username"]
        bob.call("leave_annotation_session", {"session_id": s["id"]})
        left = alice.wait_for("user_left")
        assert left["user"]["username"] == joined["user"]["username"] and len(left["presence"]) == 1
        assert not bob.of("user_joined")  # the joiner is not told about itself
    finally:
        alice.close()
        bob.close()


def test_stale_base_version_gets_a_conflict_only_to_the_sender(stack, session):
    project, s = session
    a, b = stack.socket(), stack.socket(_member(stack, project, "annotator")[1])
    try:
        for c in (a, b):
            c.call("join_annotation_session", {"session_id": s["id"]})
        made = a.call("real_time_annotation", {"session_id": s["id"], "op": "create", "annotation": _new()})
        ann_id = made["annotation"]["id"]
        ok = a.call("real_time_annotation", {"session_id": s["id"], "op": "update", "base_version": 1,
                                             "annotation": {"id": ann_id, "confidence": 0.9}})
        assert ok["ok"] and ok["version"] == 2
        stale = b.call("real_time_annotation", {"session_id": s["id"], "op": "update", "base_version": 1,
                                                "annotation": {"id": ann_id, "confidence": 0.2}})
        assert stale["ok"] is False and stale["error"]["code"] == "annotation_conflict"
        conflict = b.wait_for("annotation_conflict")
        assert conflict["current"]["version"] == 2 and conflict["current"]["confidence"] == 0.9
        update = b.wait_for("annotation_update", lambda d: d["op"] == "update")
        assert update["annotation"]["version"] == 2 and update["from_user"]["username"] == "admin"
        time.sleep(0.3)
        assert not a.of("annotation_conflict") and not a.of("annotation_update")  # sender is skipped
        # An HTTP edit reaches the room too.
        stack.api("PATCH", f"/api/annotations/{ann_id}", json={"class_label": "cyclist"})
        assert a.wait_for("annotation_update", lambda d: d["annotation"]["class_label"] == "cyclist")
    finally:
        a.close()
        b.close()


def test_viewer_can_join_but_not_edit_and_non_member_cannot_join(stack, session):
    project, s = session
    viewer = stack.socket(_member(stack, project, "viewer")[1])
    _, outsider_token = stack.create_user(f"out{time.time_ns()}", "annotator")
    outsider = stack.socket(outsider_token)
    try:
        joined = viewer.call("join_annotation_session", {"session_id": s["id"]})
        assert joined["ok"] and joined["can_edit"] is False
        denied = viewer.call("real_time_annotation", {"session_id": s["id"], "op": "create", "annotation": _new()})
        assert denied["error"]["code"] == "forbidden"
        assert outsider.call("join_annotation_session", {"session_id": s["id"]})["error"]["code"] == "forbidden"
        bad = viewer.call("real_time_annotation", {"session_id": s["id"], "op": "explode"})
        assert bad["error"]["code"] == "validation_error"
    finally:
        viewer.close()
        outsider.close()
    page = stack.api("GET", "/api/annotations/temporal", params={"session_id": s["id"]}).json()
    assert page["total"] == 0


def test_concurrent_editors_lose_and_duplicate_nothing(stack, session):
    project, s = session
    clients = [stack.socket()] + [stack.socket(_member(stack, project, "annotator")[1]) for _ in range(4)]
    for c in clients:
        c.call("join_annotation_session", {"session_id": s["id"]})
    shared = clients[0].call("real_time_annotation", {"session_id": s["id"], "op": "create",
                                                      "annotation": {**_new(), "annotator_notes": ""}})["annotation"]
    applied: list[str] = []
    created: list[str] = []
    lock = threading.Lock()
    errors: list = []

    def editor(i: int, client) -> None:
        try:
            for k in range(3):  # creates, each with a client id; one retried on purpose
                cid = str(uuid.uuid4())
                for _ in range(2 if k == 0 else 1):
                    r = client.call("real_time_annotation", {"session_id": s["id"], "op": "create",
                                                             "annotation": {"id": cid, **_new(0.2 + k)}})
                    assert r["ok"], r
                with lock:
                    created.append(cid)
            state = shared
            for n in range(8):  # read-modify-write with retry on conflict
                token = f"c{i}e{n};"
                while True:
                    notes = (state["annotator_notes"] or "") + token
                    r = client.call("real_time_annotation", {
                        "session_id": s["id"], "op": "update", "base_version": state["version"],
                        "annotation": {"id": shared["id"], "annotator_notes": notes}})
                    if r["ok"]:
                        state = r["annotation"]
                        with lock:
                            applied.append(token)
                        break
                    state = r["error"]["details"]["current"]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=editor, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors, errors
        final = stack.api("GET", f"/api/annotations/{shared['id']}").json()
        tokens = [t + ";" for t in final["annotator_notes"].split(";") if t]
        assert sorted(tokens) == sorted(applied) and len(applied) == 40  # every edit, once
        assert final["version"] == 1 + 40
        page = stack.api("GET", "/api/annotations/temporal", params={"session_id": s["id"], "per_page": 100}).json()
        assert page["total"] == 1 + 15 and {a["id"] for a in page["items"]} >= set(created)
        # Every client saw every edit made by the others exactly once.
        for i, c in enumerate(clients):
            others = len(applied) - sum(1 for t in applied if t.startswith(f"c{i}e"))
            wait_until(lambda c=c, others=others: len([d for d in c.of("annotation_update") if d["op"] == "update"])
                       >= others, 10, what="updates to arrive")
            seen = [(d["annotation"]["id"], d["annotation"]["version"]) for d in c.of("annotation_update")
                    if d["op"] == "update" and d["annotation"]["id"] == shared["id"]]
            assert len(seen) == len(set(seen)) == others
    finally:
        for c in clients:
            c.close()


def test_two_web_processes_share_rooms(stack, session):
    project, s = session
    second = stack.start_web("web2")
    try:
        here = stack.socket()
        there = stack.socket(_member(stack, project, "annotator")[1], base=second)
        try:
            there.call("join_annotation_session", {"session_id": s["id"]})
            joined = here.call("join_annotation_session", {"session_id": s["id"]})
            assert len(joined["presence"]) == 2  # presence spans both processes
            assert there.wait_for("user_joined")["user"]["username"] == "admin"
            made = here.call("real_time_annotation", {"session_id": s["id"], "op": "create", "annotation": _new()})
            got = there.wait_for("annotation_update", lambda d: d["op"] == "create")
            assert got["annotation"]["id"] == made["annotation"]["id"]
            there.call("real_time_annotation", {"session_id": s["id"], "op": "delete", "base_version": 1,
                                                "annotation": {"id": made["annotation"]["id"]}})
            assert here.wait_for("annotation_update", lambda d: d["op"] == "delete")
        finally:
            here.close()
            there.close()
    finally:
        stack.stop("web2")
