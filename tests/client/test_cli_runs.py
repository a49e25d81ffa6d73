"""``vru run``, ``compare``, ``report`` and ``runs`` against a real stack: exit codes 0 and 1 on gates."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_validation_runs import FRAMES, PERSON, clip, export_fixed_detector, ground_truth, upload

VRU = Path(sys.executable).with_name("vru")
on_sqlite = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def vru(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VRU), *args], env=env, capture_output=True, text=True, timeout=600)


@on_sqlite
def test_run_gates_compare_and_report_from_the_command_line(stack, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    model = export_fixed_detector(stack.workdir / "models")
    project = stack.api("POST", "/api/projects", json={"name": f"cli-runs-{suffix}"}).json()
    for n in range(2):
        video = upload(stack, project["id"], clip(tmp_path / f"v{n}-{suffix}.avi", FRAMES, 40 + 35 * n))
        ground_truth(stack, project["id"], video, [("pedestrian", PERSON)])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VRU_")}, "VRU_URL": stack.base,
           "VRU_TOKEN": stack.token(), "VRU_CONFIG_DIR": str(tmp_path / "cfg"), "COLUMNS": "200"}
    common = ["run", "--project", project["id"], "--model", model, "--threshold", "0.5", "--class", "pedestrian"]

    passing = tmp_path / "pass.yaml"
    passing.write_text("- {metric: recall, min: 0.5}\n")
    r = vru(env, "--json", *common, "--name", "first", "--gates", str(passing))
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["run"]["status"] == "completed" and first["gate_status"] == "passed"
    assert first["metrics"]["overall"]["counts"]["videos"] == 2

    failing = tmp_path / "fail.json"
    failing.write_text(json.dumps({"gates": [{"metric": "recall", "min": 0.5},
                                             {"metric": "precision", "max": 0.5}]}))  # it is 1.0 here
    r = vru(env, *common, "--name", "second", "--gates", str(failing), "--baseline", first["run"]["id"])
    assert r.returncode == 1, (r.stdout, r.stderr)  # a gate failed: the pipeline stops
    assert "gates failed" in r.stdout and "precision" in r.stdout and "95% interval" in r.stdout

    runs = json.loads(vru(env, "--json", "runs", "list", "--project", project["id"]).stdout)
    second = next(x for x in runs if x["name"] == "second")
    r = vru(env, "--json", "compare", first["run"]["id"], second["id"])
    assert r.returncode == 0, r.stderr
    comparison = json.loads(r.stdout)
    assert comparison["comparison"]["metrics"]["ap50"]["verdict"] == "no detectable change"  # same model twice
    r = vru(env, "report", second["id"], "-o", str(tmp_path / "report.html"))
    assert r.returncode == 0 and "<html" in (tmp_path / "report.html").read_text()[:500].lower()

    bad = tmp_path / "bad.yaml"
    bad.write_text("- {metric: happiness, min: 1}\n")
    r = vru(env, *common, "--gates", str(bad))
    assert r.returncode == 2 and "gates.0.metric" in r.stderr and "--gates" in r.stderr  # refused, named
