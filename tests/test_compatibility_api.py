"""Compatibility over the API: requirements, measured features with a cache, proposals, execution."""
from __future__ import annotations

import uuid

import cv2
import numpy as np
import pytest
from sqlalchemy import create_engine, update

from models import Video, VideoCompatibilityCache


def _upload(stack, tmp_path, brightness: int, project_id: str | None = None) -> dict:
    path = tmp_path / f"v{uuid.uuid4().hex[:6]}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(20):
        img = np.full((120, 160, 3), brightness, np.uint8)
        cv2.circle(img, (10 + 6 * i, 60), 10, (255 - brightness,) * 3, -1)
        writer.write(img)
    writer.release()
    data = {"project_id": project_id} if project_id else {}
    with open(path, "rb") as fh:
        r = stack.api("POST", "/api/videos", data=data, files={"file": (path.name, fh)})
    assert r.status_code == 201, r.text
    return r.json()


def _analyze(stack, video_id: str) -> dict:
    r = stack.api("POST", f"/api/videos/{video_id}/compatibility/analyze")
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["id"])
    assert job["status"] == "completed" and job["queue"] == "cpu", job
    return job["result"]


def test_requirements_crud_and_validation(stack):
    project = stack.api("POST", "/api/projects", json={"name": "reqs"}).json()
    base = f"/api/projects/{project['id']}/requirements"
    for body, field in ((({"requirement_type": "altitude", "requirement_value": {"min": 1}}), "requirement_type"),
                        ({"requirement_type": "height", "requirement_value": {"min": 9, "max": 1}},
                         "requirement_value"),
                        ({"requirement_type": "height", "requirement_value": {"min": 1}, "weight": -1}, "weight")):
        r = stack.api("POST", base, json=body)
        assert r.status_code == 422 and field in r.json()["error"]["details"]["fields"]["json"], r.text
    made = stack.api("POST", base, json={"requirement_type": "brightness", "requirement_value": {"max": 0.3},
                                         "weight": 2}).json()
    assert stack.api("GET", base).json()[0]["id"] == made["id"]
    r = stack.api("PATCH", f"{base}/{made['id']}", json={"requirement_value": {"equals": "x"}})
    assert r.status_code == 422
    assert stack.api("PATCH", f"{base}/{made['id']}", json={"weight": 3}).json()["weight"] == 3
    assert stack.api("DELETE", f"{base}/{made['id']}").status_code == 204
    assert stack.api("GET", base).json() == []


def test_features_are_cached_until_the_video_or_extractor_changes(stack, tmp_path):
    project = stack.api("POST", "/api/projects", json={"name": "cache"}).json()
    video = _upload(stack, tmp_path, 40, project["id"])
    assert stack.api("GET", f"/api/videos/{video['id']}/compatibility").status_code == 404
    first = _analyze(stack, video["id"])
    assert first["cached"] is False and first["features"]["day_night"] == "night"
    assert first["features"]["resolution"] == "160x120" and first["features"]["fps"] == 10
    assert _analyze(stack, video["id"])["cached"] is True
    got = stack.api("GET", f"/api/videos/{video['id']}/compatibility").json()
    assert got["current"] is True and got["features"]["brightness"] == first["features"]["brightness"]
    engine = create_engine(stack.database_url)
    with engine.begin() as conn:  # an older extractor measured it: measure again
        conn.execute(update(VideoCompatibilityCache).where(VideoCompatibilityCache.video_id == uuid.UUID(video["id"]))
                     .values(extractor_version="0"))
    assert _analyze(stack, video["id"])["cached"] is False
    assert _analyze(stack, video["id"])["cached"] is True
    with engine.begin() as conn:  # the file changed: measure again
        conn.execute(update(Video).where(Video.id == uuid.UUID(video["id"])).values(checksum="0" * 64))
    assert stack.api("GET", f"/api/videos/{video['id']}/compatibility").json()["current"] is False
    assert _analyze(stack, video["id"])["cached"] is False
    engine.dispose()


def test_intelligent_assignment_proposes_executes_and_analyses(stack, tmp_path):
    night = stack.api("POST", "/api/projects", json={"name": "night", "wanted_videos": 1}).json()
    day = stack.api("POST", "/api/projects", json={"name": "day"}).json()
    stack.api("POST", f"/api/projects/{night['id']}/requirements",
              json={"requirement_type": "day_night", "requirement_value": {"equals": "night"}})
    stack.api("POST", f"/api/projects/{night['id']}/requirements",
              json={"requirement_type": "height", "requirement_value": {"min": 100}})
    stack.api("POST", f"/api/projects/{day['id']}/requirements",
              json={"requirement_type": "brightness", "requirement_value": {"min": 0.5}})
    dark1, dark2, bright = (_upload(stack, tmp_path, b) for b in (20, 35, 210))
    candidates = [dark1["id"], dark2["id"], bright["id"]]
    r = stack.api("POST", f"/api/projects/{night['id']}/assignments/intelligent",
                  json={"candidate_videos": candidates, "project_ids": [day["id"]]})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["id"], timeout=120)
    assert job["status"] == "completed", job
    proposals = job["result"]["proposals"]
    by_project: dict[str, list] = {}
    for p in proposals:
        by_project.setdefault(p["project_id"], []).append(p)
    assert len(by_project[night["id"]]) == 1  # capacity 1
    assert by_project[night["id"]][0]["video_id"] in (dark1["id"], dark2["id"])
    assert [p["video_id"] for p in by_project.get(day["id"], [])] == [bright["id"]]
    top = by_project[night["id"]][0]
    assert top["compatibility_score"] == pytest.approx(1.0)
    assert top["assignment_reason"] == "day_night night is one of [night]; height 120 px meets min 100 px"
    assert {"video_id", "project_id", "compatibility_score", "assignment_reason", "confidence"} <= set(top)

    done = stack.api("POST", f"/api/projects/{night['id']}/assignments", json={"from_job": job["id"]})
    assert done.status_code == 200, done.text
    again = stack.api("POST", f"/api/projects/{night['id']}/assignments", json={"from_job": job["id"]})
    assert [a["id"] for a in again.json()] == [a["id"] for a in done.json()]  # idempotent
    assert stack.api("GET", f"/api/videos/{top['video_id']}").json()["project_id"] == night["id"]
    clash = stack.api("POST", f"/api/projects/{day['id']}/assignments",
                      json={"assignments": [{"video_id": top["video_id"]}]})
    assert clash.status_code == 409 and clash.json()["error"]["details"]["conflicts"][0]["project_id"] == night["id"]
    analysis = stack.api("GET", f"/api/projects/{night['id']}/assignments/analysis").json()
    assert analysis["assigned_videos"] == 1 and analysis["score_distribution"]["max"] == pytest.approx(1.0)
    assert [c["videos_meeting"] for c in analysis["coverage"]] == [1, 1] and analysis["unmet_requirements"] == []
