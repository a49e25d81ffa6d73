"""Open sockets follow the user's rights as they are now, on every web process.

The socket connects to one web process; the change of rights is made over HTTP on the other.
"""
from __future__ import annotations

import time
import uuid

import pytest
from harness import own_stack, project_with_video, wait_until

BOX = {"x1": 10, "y1": 10, "x2": 60, "y2": 90}


def _annotation(start: float = 0.1) -> dict:
    return {"start_timestamp": start, "end_timestamp": start + 1, "annotation_type": "spatial",
            "class_label": "pedestrian", "bounding_box": BOX}


@pytest.fixture(scope="module")
def rooms(stack, tmp_path_factory):
    """Project P (the rights that get lost: its job, project, detection and annotation rooms)
    and project Q (kept: its annotation room carries the sentinel event)."""
    tmp = tmp_path_factory.mktemp("rights")
    lost_project, video = project_with_video(stack, tmp)
    kept_project, kept_video = project_with_video(stack, tmp)

    def session(project, video):
        r = stack.api("POST", "/api/annotations/sessions", json={
            "project_id": project["id"], "video_id": video["id"], "session_name": "s", "annotation_type": "spatial"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    test_session = stack.api("POST", "/api/test-sessions", json={
        "project_id": lost_project["id"], "video_id": video["id"], "frame_to": 1}).json()
    stack.wait_job(test_session["job_id"])
    return {"project": lost_project["id"], "video": video["id"], "session": session(lost_project, video),
            "test_session": test_session["id"], "kept_project": kept_project["id"],
            "kept_video": kept_video["id"], "kept_session": session(kept_project, kept_video)}


def _victim(stack, rooms) -> tuple[str, str, str]:
    name = f"victim-{uuid.uuid4().hex[:8]}"
    user_id, token = stack.create_user(name, "annotator")
    for project in (rooms["project"], rooms["kept_project"]):
        r = stack.api("POST", f"/api/projects/{project}/members", json={"user_id": user_id, "role": "annotator"})
        assert r.status_code == 201, r.text
    return user_id, name, token


def _job(stack, rooms, steps: int = 400) -> str:
    """A probe job of project P (created by the admin, so only membership lets the victim see it)."""
    r = stack.probe("cpu", steps=steps, step_seconds=0.05, project_id=rooms["project"])
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _join_all(client, rooms, job_id: str) -> None:
    for event, data in (("subscribe_job", {"job_id": job_id}), ("join_project", {"project_id": rooms["project"]}),
                        ("detection_stream_subscribe", {"test_session_id": rooms["test_session"]}),
                        ("join_annotation_session", {"session_id": rooms["session"]}),
                        ("join_annotation_session", {"session_id": rooms["kept_session"]})):
        ack = client.call(event, data)
        assert ack.get("ok") is True, (event, ack)


@pytest.fixture()
def joined(stack, rooms):
    """A victim (annotator in P and Q) whose socket joined every room; a control socket (admin)."""
    user_id, _, token = _victim(stack, rooms)
    job_id = _job(stack, rooms)
    victim, control = stack.socket(token), stack.socket()
    try:
        _join_all(victim, rooms, job_id)
        yield user_id, token, job_id, victim, control
    finally:
        victim.close()
        control.close()
        stack.api("POST", f"/api/jobs/{job_id}/cancel")


def _http_edit(stack, base: str, session_id: str, video_id: str) -> str:
    """The admin creates an annotation over HTTP on ``base``: ``annotation_update`` to the session's room."""
    r = _api_on(stack, base, "POST", "/api/annotations/temporal",
                json={"annotation_session_id": session_id, "video_id": video_id, **_annotation()})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _api_on(stack, base: str, method: str, path: str, token: str | None = None, **kwargs):
    import requests

    return requests.request(method, base + path, headers={"Authorization": f"Bearer {token or stack.token()}"},
                            timeout=30, **kwargs)


def _count(stack, session_id: str) -> int:
    return stack.api("GET", "/api/annotations/temporal", params={"session_id": session_id}).json()["total"]


LOSSES = ("logout", "password_change", "deactivation", "role_change")


def _lose(stack, base: str, kind: str, user_id: str, token: str, rooms) -> None:
    """Make the change of rights over HTTP on the web process at ``base``."""
    if kind == "logout":
        r = _api_on(stack, base, "POST", "/api/auth/logout", token=token)
        assert r.status_code == 204, r.text
        return
    if kind == "removal_from_project":
        r = _api_on(stack, base, "DELETE", f"/api/projects/{rooms['project']}/members/{user_id}")
        assert r.status_code == 204, r.text
        return
    body = {"password_change": {"password": "another-password-1"}, "deactivation": {"is_active": False},
            "role_change": {"role": "viewer"}}[kind]
    r = _api_on(stack, base, "PATCH", f"/api/users/{user_id}", json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("kind", LOSSES)
def test_a_revoked_token_disconnects_its_socket_on_another_process(stack, second_web, rooms, joined, kind):
    user_id, token, _, victim, control = joined
    control.call("join_annotation_session", {"session_id": rooms["session"]})
    mark = victim.mark()
    _lose(stack, second_web, kind, user_id, token, rooms)
    # The server says why and hangs up.
    revoked = wait_until(lambda: next(iter(victim.since(mark, "connection_status")), None), 15,
                         what="the server to revoke the socket")
    assert revoked["status"] == "revoked" and revoked["error"]["code"] == "invalid_token"
    wait_until(lambda: not victim.sio.connected, 15, what="the socket to be disconnected")
    gone = control.wait_for("user_left", lambda d: (d["user"] or {}).get("user_id") == user_id)
    assert user_id not in [p["user_id"] for p in gone["presence"]]  # presence follows
    # Events emitted into its rooms afterwards do not reach it; a member still in the room gets them.
    made = _http_edit(stack, second_web, rooms["session"], rooms["video"])
    control.wait_for("annotation_update", lambda d: d["annotation"]["id"] == made)
    assert not [d for d in victim.since(mark, "annotation_update") if d["annotation"]["id"] == made]
    # And the token cannot open another socket.
    refused = stack.refused_connection(token)
    assert refused["data"]["error"]["code"] == "invalid_token", refused


def test_removal_from_a_project_takes_its_rooms_away_on_another_process(stack, second_web, rooms, joined):
    user_id, token, job_id, victim, control = joined
    control.call("subscribe_job", {"job_id": job_id})
    victim.wait_for("job_progress", lambda d: d["job_id"] == job_id)  # the job room is live
    mark = victim.mark()
    _lose(stack, second_web, "removal_from_project", user_id, token, rooms)
    lost = {f"job_{job_id}", f"project_{rooms['project']}", f"detection_stream_{rooms['test_session']}",
            f"annotation_{rooms['session']}"}
    wait_until(lambda: {d["room"] for d in victim.since(mark, "room_left")} == lost, 15,
               what="the server to take the four rooms away")
    left = victim.mark()
    assert victim.sio.connected  # the token is still good: only the rooms go
    presence = control.call("join_annotation_session", {"session_id": rooms["session"]})["presence"]
    assert user_id not in [p["user_id"] for p in presence]
    # Emit into a lost room, then into the kept one: the kept one's event arriving means the
    # first would have arrived before it (one publisher, one queue, one connection).
    before = _count(stack, rooms["session"])
    _http_edit(stack, second_web, rooms["session"], rooms["video"])
    kept_edit = _http_edit(stack, second_web, rooms["kept_session"], rooms["kept_video"])
    victim.wait_for("annotation_update", lambda d: d["annotation"]["id"] == kept_edit)
    assert [d["annotation"]["id"] for d in victim.since(left, "annotation_update")] == [kept_edit]
    # Job progress goes on in the job and project rooms: the control member sees more, the victim none.
    seen = len(control.of("job_progress"))
    wait_until(lambda: len(control.of("job_progress")) >= seen + 3, 30, what="more job progress")
    assert not victim.since(left, "job_progress") and not victim.since(left, "project_progress_update")
    # Every event now acts with the rights it has now.
    for event, data in (("subscribe_job", {"job_id": job_id}), ("join_project", {"project_id": rooms["project"]}),
                        ("detection_stream_subscribe", {"test_session_id": rooms["test_session"]}),
                        ("join_annotation_session", {"session_id": rooms["session"]}),
                        ("real_time_annotation", {"session_id": rooms["session"], "op": "create",
                                                  "annotation": _annotation(2.0)})):
        ack = victim.call(event, data)
        assert ack["error"]["code"] == "forbidden", (event, ack)
    assert _count(stack, rooms["session"]) == before + 1  # the admin's edit only
    assert victim.call("join_annotation_session", {"session_id": rooms["kept_session"]})["ok"] is True


def test_a_project_role_lowered_to_viewer_stops_socket_edits(stack, second_web, rooms):
    user_id, _, token = _victim(stack, rooms)
    victim = stack.socket(token)
    try:
        assert victim.call("join_annotation_session", {"session_id": rooms["session"]})["can_edit"] is True
        before = _count(stack, rooms["session"])
        r = _api_on(stack, second_web, "POST", f"/api/projects/{rooms['project']}/members",
                    json={"user_id": user_id, "role": "viewer"})
        assert r.status_code == 201, r.text
        ack = victim.call("real_time_annotation", {"session_id": rooms["session"], "op": "create",
                                                   "annotation": _annotation(3.0)})
        assert ack["error"]["code"] == "forbidden", ack
        assert _count(stack, rooms["session"]) == before
        # Still a member: the room stays.
        assert victim.call("join_annotation_session", {"session_id": rooms["session"]})["can_edit"] is False
    finally:
        victim.close()


def test_socket_events_are_rate_limited_per_user_across_processes(tmp_path):


    with own_stack(tmp_path, RATE_LIMIT_SOCKET="12 per hour") as st:
        other = st.start_web("web-b")
        project, video = project_with_video(st, tmp_path)
        session = st.api("POST", "/api/annotations/sessions", json={
            "project_id": project["id"], "video_id": video["id"], "session_name": "s",
            "annotation_type": "spatial"}).json()["id"]
        one, two = st.socket(), st.socket(base=other)
        try:
            # One user, two sockets on two processes: one budget of 12 events.
            answers = [(one if i % 2 else two).call("join_project", {"project_id": project["id"]}) for i in range(12)]
            assert all(a.get("ok") is True for a in answers), answers
            for client in (one, two):
                limited = client.call("real_time_annotation", {"session_id": session, "op": "create",
                                                               "annotation": _annotation()})
                assert limited["error"]["code"] == "rate_limited", limited
                assert limited["error"]["details"]["retry_after"] > 0
                assert client.wait_for("event_error")["error"]["code"] == "rate_limited"
            assert st.api("GET", "/api/annotations/temporal", params={"session_id": session}).json()["total"] == 0
            # Another user has a budget of its own.
            _, token = st.create_user(f"u{time.time_ns()}", "annotator")
            third = st.socket(token)
            try:
                assert third.call("join_project", {"project_id": project["id"]})["error"]["code"] == "forbidden"
            finally:
                third.close()
        finally:
            one.close()
            two.close()
