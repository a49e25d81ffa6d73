"""``vru`` through its console script in a subprocess: commands, --json output, exit codes."""
from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import make_clip

VRU = Path(sys.executable).with_name("vru")
on_sqlite = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def vru(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(VRU), *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VRU_")}
    return {**base, "VRU_CONFIG_DIR": str(tmp_path / "config"), "COLUMNS": "200"}


@on_sqlite
def test_login_commands_and_json_output(stack, env, tmp_path):
    r = vru(env, "--url", stack.base, "login", "--username", "admin", "--password-stdin",
            stdin=stack.admin_password + "\n")
    assert r.returncode == 0, r.stderr
    saved = tmp_path / "config" / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["url"] == stack.base

    r = vru(env, "--json", "whoami")
    assert r.returncode == 0 and json.loads(r.stdout)["username"] == "admin"
    r = vru(env, "--json", "projects", "create", f"cli {time.time_ns()}", "--label", "pedestrian", "--label", "cyclist")
    assert r.returncode == 0, r.stderr
    project = json.loads(r.stdout)
    assert project["labels"] == ["pedestrian", "cyclist"]
    r = vru(env, "projects", "list")
    assert r.returncode == 0 and project["name"] in r.stdout  # the human table

    clips = [make_clip(tmp_path / f"clip{i}.avi", frames=8 + i) for i in range(2)]
    r = vru(env, "--json", "videos", "upload", *map(str, clips), "--project", project["id"])
    assert r.returncode == 0, r.stderr
    videos = json.loads(r.stdout)
    assert [v["frame_count"] for v in videos] == [8, 9]

    gt = tmp_path / "gt.csv"
    gt.write_text("frame_number,track_id,label,x1,y1,x2,y2\n0,1,person,10,10,50,90\n6,1,person,20,10,60,90\n")
    r = vru(env, "--json", "annotations", "import", str(gt), "--format", "csv", "--project", project["id"],
            "--video", videos[0]["id"], "--label-map", "person=pedestrian")
    assert r.returncode == 0, r.stderr
    imported = json.loads(r.stdout)
    assert imported["status"] == "completed" and imported["records_processed"] == 2

    out = tmp_path / "export.csv"
    r = vru(env, "--json", "export", "--type", "annotations", "--format", "csv",
            "--session", imported["annotation_session_id"], "-o", str(out))
    assert r.returncode == 0, r.stderr
    rows = [r for r in csv.DictReader(out.open()) if r["outside"] == "0"]  # not the row that ends the track
    assert [int(r["frame_number"]) for r in rows] == list(range(7))  # interpolated between the two keyframes
    again = tmp_path / "again.csv"
    r = vru(env, "--json", "download", json.loads(r.stdout)["id"], "-o", str(again))
    assert r.returncode == 0 and again.read_bytes() == out.read_bytes()

    r = vru(env, "logout")
    assert r.returncode == 0 and "token" not in json.loads(saved.read_text())


@on_sqlite
def test_exit_codes_a_pipeline_can_act_on(stack, env, tmp_path):
    assert vru(env, "--url", stack.base, "whoami").returncode == 2  # never logged in
    r = vru(env, "--url", stack.base, "--token", "expired.or.forged", "whoami")
    assert r.returncode == 2 and "vru login" in r.stderr
    token = stack.token()
    authed = {**env, "VRU_URL": stack.base, "VRU_TOKEN": token}
    assert vru(authed, "projects", "create").returncode == 2  # usage: the name is missing

    r = vru(authed, "projects", "create", "")
    assert r.returncode == 2 and "name" in r.stderr  # the platform's validation message, located

    bad = tmp_path / "bad.csv"
    bad.write_text("frame_number,track_id,label,x1,y1,x2,y2\n0,1,pedestrian,10,10,5,5\n")
    project = stack.api("POST", "/api/projects", json={"name": f"codes {time.time_ns()}"}).json()
    r = vru(authed, "annotations", "import", str(bad), "--format", "csv", "--project", project["id"],
            "--video", "00000000-0000-0000-0000-000000000000")
    assert r.returncode == 2 and "--video" in r.stderr  # says which option fixes it

    unreachable = {**authed, "VRU_URL": "http://127.0.0.1:1"}
    r = vru(unreachable, "whoami", timeout=120)
    assert r.returncode == 3 and "cannot reach" in r.stderr

    job = stack.probe("cpu", steps=300, step_seconds=0.1).json()
    stack.api("POST", f"/api/jobs/{job['id']}/cancel")
    r = vru(authed, "jobs", "wait", job["id"])
    assert r.returncode == 3 and "cancelled" in r.stderr
