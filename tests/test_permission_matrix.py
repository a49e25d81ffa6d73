"""Every API route x every kind of caller, asserted; routes come from the app's URL map.

A route added without an entry here fails the test, so no route escapes the matrix.
"""
from __future__ import annotations

import os
import time
import uuid

import jwt
import pytest
from harness import project_with_video, wait_until

PUBLIC, ANY, ADMIN, READ, WRITE, PROJECT_ADMIN, WRITER = (
    "public", "any", "admin", "member_read", "member_write", "project_admin", "writer")
# Who may do what: admin (global), annotator member, viewer member, annotator who is not a member.
ALLOWED = {
    PUBLIC: {"admin", "annotator", "viewer", "outsider"},
    ANY: {"admin", "annotator", "viewer", "outsider"},
    ADMIN: {"admin"},
    READ: {"admin", "annotator", "viewer"},
    WRITE: {"admin", "annotator"},
    PROJECT_ADMIN: {"admin"},
    WRITER: {"admin", "annotator", "outsider"},
}

# endpoint -> (policy, method, path, body); {names} are filled from the fixture's resources,
# names starting with "new_" are made fresh for every call (the call may delete them).
MATRIX = {
    "auth.token": (PUBLIC, "POST", "/api/auth/token", {"username": "nobody", "password": "x"}),
    "auth.health": (PUBLIC, "GET", "/api/health", None),
    "auth.refresh": (ANY, "POST", "/api/auth/refresh", None),
    "auth.logout": (ANY, "POST", "/api/auth/logout", None),
    "audit.list_audit": (ADMIN, "GET", "/api/audit", None),
    "users.create_user": (ADMIN, "POST", "/api/users", {"username": "{new_username}", "password": "password-1",
                                                          "role": "viewer"}),
    "users.list_users": (ADMIN, "GET", "/api/users", None),
    "users.patch_user": (ADMIN, "PATCH", "/api/users/{viewer_id}", {"is_active": True}),
    "users.me": (ANY, "GET", "/api/users/me", None),
    "projects.create_project": (WRITER, "POST", "/api/projects", {"name": "matrix"}),
    "projects.list_projects": (ANY, "GET", "/api/projects", None),
    "projects.get_project": (READ, "GET", "/api/projects/{project}", None),
    "projects.patch_project": (PROJECT_ADMIN, "PATCH", "/api/projects/{project}", {"description": "x"}),
    "projects.delete_project": (PROJECT_ADMIN, "DELETE", "/api/projects/{new_project}", None),
    "projects.add_member": (PROJECT_ADMIN, "POST", "/api/projects/{project}/members",
                            {"username": "{new_user_name}", "role": "viewer"}),
    "projects.list_members": (READ, "GET", "/api/projects/{project}/members", None),
    "projects.remove_member": (PROJECT_ADMIN, "DELETE", "/api/projects/{project}/members/{new_member}", None),
    "videos.upload_video": (WRITER, "POST", "/api/videos", "FILE"),
    "videos.list_videos": (READ, "GET", "/api/videos?project_id={project}", None),
    "videos.get_video": (READ, "GET", "/api/videos/{video}", None),
    "frames.video_frame": (READ, "GET", "/api/videos/{video}/frames/0.jpg", None),
    "dashboard.client_config": (ANY, "GET", "/api/config", None),
    "compatibility.video_compatibility": (READ, "GET", "/api/videos/{video}/compatibility", None),
    "compatibility.analyze_video": (WRITE, "POST", "/api/videos/{video}/compatibility/analyze", None),
    "compatibility.create_requirement": (WRITE, "POST", "/api/projects/{project}/requirements",
                                         {"requirement_type": "fps", "requirement_value": {"min": 5}}),
    "compatibility.list_requirements": (READ, "GET", "/api/projects/{project}/requirements", None),
    "compatibility.get_requirement": (READ, "GET", "/api/projects/{project}/requirements/{requirement}", None),
    "compatibility.patch_requirement": (WRITE, "PATCH", "/api/projects/{project}/requirements/{requirement}",
                                        {"weight": 2}),
    "compatibility.delete_requirement": (WRITE, "DELETE", "/api/projects/{project}/requirements/{new_requirement}",
                                         None),
    "compatibility.intelligent_assignment": (WRITE, "POST", "/api/projects/{project}/assignments/intelligent", {}),
    "compatibility.execute_assignments": (WRITE, "POST", "/api/projects/{project}/assignments",
                                          {"assignments": [{"video_id": "{video}"}]}),
    "compatibility.list_assignments": (READ, "GET", "/api/projects/{project}/assignments", None),
    "compatibility.assignment_analysis": (READ, "GET", "/api/projects/{project}/assignments/analysis", None),
    "jobs.list_jobs": (READ, "GET", "/api/jobs?project_id={project}", None),
    "jobs.get_job": (READ, "GET", "/api/jobs/{job}", None),
    "jobs.cancel_job": (WRITE, "POST", "/api/jobs/{job}/cancel", None),
    "jobs.submit_probe": (ADMIN, "POST", "/api/jobs/probe", {"queue": "cpu", "steps": 0, "step_seconds": 0}),
    "annotations.create_session": (WRITE, "POST", "/api/annotations/sessions", {
        "project_id": "{project}", "video_id": "{video}", "session_name": "m", "annotation_type": "spatial"}),
    "annotations.list_sessions": (READ, "GET", "/api/annotations/sessions?project_id={project}", None),
    "annotations.get_session": (READ, "GET", "/api/annotations/sessions/{session}", None),
    "annotations.patch_session": (WRITE, "PATCH", "/api/annotations/sessions/{session}", {"session_name": "m2"}),
    "annotations.add_temporal_annotation": (WRITE, "POST", "/api/annotations/temporal", {
        "annotation_session_id": "{session}", "video_id": "{video}", "start_timestamp": 0.1, "end_timestamp": 0.5,
        "annotation_type": "spatial", "class_label": "cyclist", "bounding_box": {"x1": 200, "y1": 1, "x2": 220,
                                                                                 "y2": 30}}),
    "annotations.list_annotations": (READ, "GET", "/api/annotations/temporal?session_id={session}", None),
    "annotations.get_annotation": (READ, "GET", "/api/annotations/{annotation}", None),
    "annotations.patch_annotation": (WRITE, "PATCH", "/api/annotations/{annotation}", {"confidence": 0.9}),
    "annotations.remove_annotation": (WRITE, "DELETE", "/api/annotations/{new_annotation}", None),
    "annotations.annotation_boxes": (READ, "GET", "/api/annotations/{annotation}/boxes", None),
    "annotations.create_keyframe": (WRITE, "POST", "/api/annotations/{annotation}/keyframes",
                                    {"frame_number": 15, "frame_data": {}}),
    "annotations.list_keyframes": (READ, "GET", "/api/annotations/{annotation}/keyframes", None),
    "annotations.patch_keyframe": (WRITE, "PATCH", "/api/annotations/{annotation}/keyframes/{keyframe}",
                                   {"frame_data": {}}),
    "annotations.delete_keyframe": (WRITE, "DELETE", "/api/annotations/{annotation}/keyframes/{new_keyframe}", None),
    "annotations.validate_annotation": (WRITE, "POST", "/api/annotations/{annotation}/validate",
                                        {"status": "rejected"}),
    "annotations.split_track": (WRITE, "POST", "/api/annotations/{new_annotation}/split", {"frame_number": 15}),
    "annotations.merge_tracks": (WRITE, "POST", "/api/annotations/{new_annotation}/merge",
                                 {"other_id": "{new_annotation}"}),
    "transfer.create_export": (READ, "POST", "/api/export/jobs", {
        "job_name": "m", "export_type": "annotations", "format": "csv",
        "scope_filter": {"project_ids": ["{project}"]}}),
    "transfer.list_exports": (ANY, "GET", "/api/export/jobs", None),
    "transfer.get_export": (ADMIN, "GET", "/api/export/jobs/{export}", None),
    "transfer.download_export": (ADMIN, "GET", "/api/export/jobs/{export}/download", None),
    "transfer.export_session": (READ, "GET", "/api/annotations/sessions/{session}/export/csv", None),
    "transfer.create_import": (WRITER, "POST", "/api/import/jobs", "FILE"),
    "transfer.list_imports": (ANY, "GET", "/api/import/jobs", None),
    "transfer.get_import": (ADMIN, "GET", "/api/import/jobs/{import_job}", None),
    "transfer.import_status": (ADMIN, "GET", "/api/import/jobs/{import_job}/status", None),
    "test_sessions.create_test_session": (WRITE, "POST", "/api/test-sessions", {
        "project_id": "{project}", "video_id": "{video}", "model": "opencv/hog-people", "frame_to": 1}),
    "test_sessions.list_test_sessions": (READ, "GET", "/api/test-sessions?project_id={project}", None),
    "test_sessions.get_test_session": (READ, "GET", "/api/test-sessions/{test_session}", None),
    "test_sessions.list_detections": (READ, "GET", "/api/test-sessions/{test_session}/detections", None),
    "model_registry.list_all": (ANY, "GET", "/api/models", None),
    "model_registry.upload": (WRITE, "POST", "/api/models", "FILE"),
    # A version nobody uploaded: 404 for every caller. Who deletes a real one (its uploader or an
    # administrator) is asserted in test_model_registry.
    "model_registry.get_version": (ANY, "GET", "/api/models/nobody/1", None),
    "model_registry.delete_version": (ANY, "DELETE", "/api/models/nobody/1", None),
    "evaluation.evaluate": (WRITE, "POST", "/api/test-sessions/{test_session}/evaluate", {"iou_threshold": 0.5}),
    "evaluation.get_metrics": (READ, "GET", "/api/test-sessions/{test_session}/metrics", None),
    "evaluation.get_report": (READ, "GET", "/api/test-sessions/{test_session}/report", None),
    "evaluation.get_report_plot": (READ, "GET", "/api/test-sessions/{test_session}/report/pr_curves.png", None),
    "evaluation.get_basis": (READ, "GET", "/api/test-sessions/{test_session}/evaluation-basis", None),
    "review.session_review": (READ, "GET", "/api/annotations/sessions/{session}/review", None),
    "review.bulk_validate": (WRITE, "POST", "/api/annotations/sessions/{session}/validate",
                             {"status": "rejected", "class_label": "nothing-of-that-class"}),
    "assisted.pre_annotate": (WRITE, "POST", "/api/test-sessions/{test_session}/pre-annotations", {}),
    "evaluation.compare": (READ, "GET", "/api/test-sessions/compare?ids={test_session},{test_session}", None),
    "videos.patch_video": (WRITE, "PATCH", "/api/videos/{video}", {"tags": ["matrix"]}),
    "validation_runs.create_run": (WRITE, "POST", "/api/validation-runs", {
        "project_id": "{project}", "videos": ["{video}"], "model": "opencv/hog-people", "frame_to": 1}),
    "validation_runs.list_runs": (READ, "GET", "/api/validation-runs?project_id={project}", None),
    "validation_runs.get_run": (READ, "GET", "/api/validation-runs/{run}", None),
    "validation_runs.get_run_metrics": (READ, "GET", "/api/validation-runs/{run}/metrics", None),
    "validation_runs.get_run_report": (READ, "GET", "/api/validation-runs/{run}/report.html", None),
    "validation_runs.compare": (READ, "GET", "/api/validation-runs/compare?ids={run},{run}", None),
    "validation_runs.cancel_run": (WRITE, "POST", "/api/validation-runs/{run}/cancel", None),
}


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    suffix = uuid.uuid4().hex[:6]
    names = {role: f"m-{role}-{suffix}" for role in ("annotator", "viewer", "outsider")}
    ids, tokens = {}, {"admin": stack.token()}
    for role, name in names.items():
        ids[role], tokens[role] = stack.create_user(name, "viewer" if role == "viewer" else "annotator")
    project, video = project_with_video(stack, tmp_path_factory.mktemp("matrix"))
    for role in ("annotator", "viewer"):
        stack.api("POST", f"/api/projects/{project['id']}/members", json={"username": names[role], "role": role})
    session = stack.api("POST", "/api/annotations/sessions", json={
        "project_id": project["id"], "video_id": video["id"], "session_name": "s", "annotation_type": "spatial"}).json()

    def annotation():
        return stack.api("POST", "/api/annotations/temporal", json={
            "annotation_session_id": session["id"], "video_id": video["id"], "start_timestamp": 1.0,
            "end_timestamp": 2.0, "annotation_type": "spatial", "class_label": "pedestrian",
            "bounding_box": {"x1": 1, "y1": 1, "x2": 30, "y2": 60}}).json()["id"]

    ann = annotation()

    def keyframe():
        return stack.api("POST", f"/api/annotations/{ann}/keyframes", json={
            "frame_number": int(10 + uuid.uuid4().int % 10), "frame_data": {}}).json().get("id", "missing")

    def requirement():
        return stack.api("POST", f"/api/projects/{project['id']}/requirements", json={
            "requirement_type": "fps", "requirement_value": {"min": 1}}).json()["id"]

    def new_project():
        p = stack.api("POST", "/api/projects", json={"name": "doomed"}).json()["id"]
        for role in ("annotator", "viewer"):
            stack.api("POST", f"/api/projects/{p}/members", json={"username": names[role], "role": role})
        return p

    def new_user_name():
        name = f"m-user-{uuid.uuid4().hex[:8]}"
        stack.create_user(name, "viewer")
        return name

    def new_member():
        uid, _ = stack.create_user(f"m-member-{uuid.uuid4().hex[:8]}", "viewer")
        stack.api("POST", f"/api/projects/{project['id']}/members", json={"user_id": uid, "role": "viewer"})
        return uid

    job = stack.probe("cpu", steps=0, step_seconds=0, project_id=project["id"]).json()["id"]
    export = stack.api("POST", "/api/export/jobs", json={
        "job_name": "m", "export_type": "annotations", "format": "csv",
        "scope_filter": {"project_ids": [project["id"]]}}).json()["id"]
    import_job = stack.api("POST", "/api/import/jobs", data={
        "job_name": "m", "import_type": "annotations", "source_format": "csv", "project_id": project["id"],
        "video_id": video["id"]}, files={"file": ("m.csv", b"frame_number,label,x1,y1,x2,y2\r\n")}).json()["id"]
    stack.wait_job(job)
    test_session = stack.api("POST", "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "frame_to": 1}).json()
    stack.wait_job(test_session["job_id"])
    run = stack.api("POST", "/api/validation-runs", json={
        "project_id": project["id"], "test_session_ids": [test_session["id"]],
        "ground_truth": {video["id"]: session["id"]}})
    assert run.status_code == 202, run.text
    values = {"project": project["id"], "video": video["id"], "session": session["id"], "annotation": ann,
              "run": run.json()["id"],
              "export": export, "import_job": import_job,
              "keyframe": None, "requirement": requirement(), "job": job, "viewer_id": ids["viewer"],
              "test_session": test_session["id"],
              "outsider_name": names["outsider"]}
    values["keyframe"] = stack.api("POST", f"/api/annotations/{ann}/keyframes", json={
        "frame_number": 12, "frame_data": {}}).json()["id"]
    factories = {"new_project": new_project, "new_member": new_member, "new_requirement": requirement,
                 "new_annotation": annotation, "new_keyframe": keyframe,
                 "new_username": lambda: f"m-new-{uuid.uuid4().hex[:8]}", "new_user_name": new_user_name}
    return {"values": values, "factories": factories, "tokens": tokens, "names": names}


def _fill(template, world):
    if isinstance(template, dict):
        return {k: _fill(v, world) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, world) for v in template]
    if not isinstance(template, str) or "{" not in template:
        return template
    out = template
    for key, make in world["factories"].items():
        if "{" + key + "}" in out:
            out = out.replace("{" + key + "}", str(make()))
    return out.format(**world["values"])


def _call(stack, world, endpoint, token):
    _, method, path, body = MATRIX[endpoint]
    kwargs = {}
    if body == "FILE":
        kwargs["files"] = {"file": ("x.avi", b"not a video")}
    elif body is not None:
        kwargs["json"] = _fill(body, world)
    return stack.api(method, _fill(path, world), token=token, **kwargs)


def test_every_route_is_in_the_matrix(stack):
    from webapp.factory import create_app

    app = create_app(check_db=False, async_mode="threading")
    routes = {r.endpoint for r in app.url_map.iter_rules() if r.rule.startswith("/api")}
    assert routes == set(MATRIX), (sorted(routes - set(MATRIX)), sorted(set(MATRIX) - routes))


@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_route_permissions(stack, world, endpoint):
    policy = MATRIX[endpoint][0]
    now = int(time.time())
    expired = jwt.encode({"sub": str(uuid.uuid4()), "iat": now - 100, "exp": now - 10, "tv": 0},
                         "x" * 40, algorithm="HS256")
    header, payload, sig = world["tokens"]["viewer"].split(".")
    tampered = f"{header}.{payload}.{sig[::-1]}"
    if policy != PUBLIC:
        for bad in (None, expired, tampered):
            r = _call(stack, world, endpoint, bad)
            assert r.status_code == 401, (endpoint, bad and bad[:10], r.status_code, r.text)
    for who in ("outsider", "viewer", "annotator", "admin"):
        token = world["tokens"][who]
        if endpoint in ("auth.refresh", "auth.logout"):  # these revoke the token they are given
            token = stack.token(world["names"][who], "password-123") if who != "admin" else \
                stack.token("admin", stack.admin_password)
        r = _call(stack, world, endpoint, token)
        if policy == PUBLIC:  # (the login with made-up credentials answers 401 to everybody, by design)
            assert r.status_code != 403 and r.json().get("error", {}).get("code") != "unauthorized"
        elif who in ALLOWED[policy]:
            assert r.status_code not in (401, 403), (endpoint, who, r.status_code, r.text)
        else:
            assert r.status_code == 403, (endpoint, who, r.status_code, r.text)
            assert r.json()["error"]["code"] == "forbidden"


def test_room_joins_follow_the_same_permissions(stack, world):
    v = world["values"]
    for who in ("outsider", "viewer", "annotator", "admin"):
        client = stack.socket(world["tokens"][who])
        try:
            for event, data in (("subscribe_job", {"job_id": v["job"]}),
                                ("join_project", {"project_id": v["project"]}),
                                ("join_annotation_session", {"session_id": v["session"]}),
                                ("detection_stream_subscribe", {"test_session_id": v["test_session"]}),
                                ("validation_run_subscribe", {"run_id": v["run"]})):
                ack = client.call(event, data)
                if who == "outsider":
                    assert ack["error"]["code"] == "forbidden", (who, event, ack)
                else:
                    assert ack["ok"] is True, (who, event, ack)
        finally:
            client.close()


# Socket.IO events, with the policy of the resource each acts on ({names} as for the routes).
SOCKET_EVENTS = {
    "subscribe_job": (READ, {"job_id": "{job}"}),
    "unsubscribe_job": (ANY, {"job_id": "{job}"}),
    "join_project": (READ, {"project_id": "{project}"}),
    "leave_project": (ANY, {"project_id": "{project}"}),
    "detection_stream_subscribe": (READ, {"test_session_id": "{test_session}"}),
    "detection_stream_unsubscribe": (ANY, {"test_session_id": "{test_session}"}),
    "join_annotation_session": (READ, {"session_id": "{session}"}),
    "leave_annotation_session": (ANY, {"session_id": "{session}"}),
    "annotation_focus": (READ, {"session_id": "{session}", "frame_number": 3}),
    "validation_run_subscribe": (READ, {"run_id": "{run}"}),
    "validation_run_unsubscribe": (ANY, {"run_id": "{run}"}),
    "real_time_annotation": (WRITE, {"session_id": "{session}", "op": "create", "annotation": {
        "start_timestamp": 0.2, "end_timestamp": 0.6, "annotation_type": "spatial", "class_label": "pedestrian",
        "bounding_box": {"x1": 5, "y1": 5, "x2": 40, "y2": 70}}}),
}
# Each way an annotator member (or an administrator who is no member) loses rights, and what
# every event answers afterwards: the token goes with a logout, a new password, a deactivation
# and a new role (401); a removal from the project leaves the token good but takes the project's
# resources away (403, leaving still works).
LOSSES = {"logout": "invalid_token", "password_change": "invalid_token", "deactivation": "invalid_token",
          "role_change": "invalid_token", "admin_role_change": "invalid_token", "removal_from_project": "forbidden"}
NEW_ROLE = {"role_change": "viewer", "admin_role_change": "annotator"}


def test_every_socket_event_is_in_the_matrix():
    from webapp import run_sockets  # noqa: F401 - its handlers register with the others, as the factory does
    from webapp.sockets import EVENTS

    assert sorted(EVENTS) == sorted(SOCKET_EVENTS)


def _lose_over_http(stack, base, loss, user_id, token, project_id):
    import requests

    admin = {"Authorization": f"Bearer {stack.token()}"}
    if loss == "logout":
        r = requests.post(base + "/api/auth/logout", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    elif loss == "removal_from_project":
        r = requests.delete(f"{base}/api/projects/{project_id}/members/{user_id}", headers=admin, timeout=30)
    else:
        body = {"password_change": {"password": "changed-password-1"},
                "deactivation": {"is_active": False}}.get(loss) or {"role": NEW_ROLE[loss]}
        r = requests.patch(f"{base}/api/users/{user_id}", json=body, headers=admin, timeout=30)
    assert r.status_code in (200, 204), r.text


def _lose_unannounced(stack, loss, user_id, token, project_id):
    """The same change written straight to the database and Redis, its rights version bumped,
    but no notice sent to the web processes: as if every notice had been missed."""
    import dataclasses

    import flask
    import redis
    from sqlalchemy import create_engine, delete, update

    from models import ProjectMember, User
    from settings import load_settings
    from webapp.auth import hash_password, revoke, token_claims
    from webapp.rights import bump_versions

    uid, engine = uuid.UUID(user_id), create_engine(stack.database_url)
    try:
        with engine.begin() as conn:
            users = update(User).where(User.id == uid)
            if loss == "password_change":
                conn.execute(users.values(password_hash=hash_password("changed-password-1"),
                                          token_version=User.token_version + 1))
            elif loss == "deactivation":
                conn.execute(users.values(is_active=False, token_version=User.token_version + 1))
            elif loss in NEW_ROLE:
                conn.execute(users.values(role=NEW_ROLE[loss], token_version=User.token_version + 1))
            elif loss == "removal_from_project":
                conn.execute(delete(ProjectMember).where(ProjectMember.project_id == uuid.UUID(project_id),
                                                         ProjectMember.user_id == uid))
    finally:
        engine.dispose()
    app = flask.Flask("matrix")
    # The stack's own settings: its VAR_DIR holds the secret its tokens are signed with.
    saved = os.environ.get("VAR_DIR")
    os.environ["VAR_DIR"] = stack.env["VAR_DIR"]
    try:
        settings = load_settings()
    finally:
        if saved is None:
            os.environ.pop("VAR_DIR")
        else:
            os.environ["VAR_DIR"] = saved
    app.config["SETTINGS"] = dataclasses.replace(settings, socketio_channel=stack.env["SOCKETIO_CHANNEL"])
    app.extensions["redis"] = redis.Redis.from_url(stack.redis_url)
    with app.app_context():
        if loss == "logout":
            revoke(token_claims(token))
        bump_versions(user_id)


@pytest.mark.parametrize("notice", ["announced", "missed"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_socket_events_after_each_loss_of_rights(stack, second_web, world, loss, notice):
    """The socket is on one web process, the change is made on the other; every event is refused."""
    project = world["values"]["project"]
    admin = loss == "admin_role_change"  # an administrator needs no membership, until demoted
    user_id, token = stack.create_user(f"m-loser-{uuid.uuid4().hex[:8]}", "admin" if admin else "annotator")
    if not admin:
        r = stack.api("POST", f"/api/projects/{project}/members", json={"user_id": user_id, "role": "annotator"})
        assert r.status_code == 201, r.text
    baseline = stack.socket(token)
    clients = {event: stack.socket(token) for event in SOCKET_EVENTS}  # one per event, opened before
    try:
        for event, (_, data) in SOCKET_EVENTS.items():
            assert baseline.call(event, _fill(data, world)).get("ok") is True, event  # allowed before
        if notice == "announced":
            _lose_over_http(stack, second_web, loss, user_id, token, project)
        else:
            _lose_unannounced(stack, loss, user_id, token, project)
        expected = LOSSES[loss]
        if notice == "announced" and expected == "invalid_token":
            # Every socket of the token is disconnected, and the token cannot open another.
            wait_until(lambda: not any(c.sio.connected for c in [baseline, *clients.values()]), 15,
                       what="the sockets to be disconnected")
            assert stack.refused_connection(token)["data"]["error"]["code"] == expected
            return
        for event, (policy, data) in SOCKET_EVENTS.items():
            ack = clients[event].call(event, _fill(data, world))
            if expected == "forbidden" and policy == ANY:
                assert ack.get("ok") is True, (loss, event, ack)
            else:
                assert ack.get("error", {}).get("code") == expected, (loss, notice, event, ack)
    finally:
        for c in [baseline, *clients.values()]:
            c.close()
