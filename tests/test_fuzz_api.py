"""The API, fuzzed from its own OpenAPI document: whatever is sent, never a server error."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import schemathesis
from harness import own_stack

# Property-based fuzzing of the API.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the fuzzer's own run has 900 s


def test_no_request_makes_the_server_fail(tmp_path, unit_redis_url):
    """On a web process of its own: the fuzzer's jobs (hours of probe steps) must not clog shared workers."""
    with own_stack(tmp_path, unit_redis_url) as stack:
        _fuzz(stack, tmp_path)


def _fuzz(stack, tmp_path):
    st_cli = Path(sys.executable).with_name("st")
    token = stack.token()
    out = subprocess.run(
        [str(st_cli), "run", stack.base + "/openapi.json", "--url", stack.base,
         "--header", f"Authorization: Bearer {token}", "--checks", "not_a_server_error",
         "--max-examples", "5", "--generation-deterministic", "--request-timeout", "30",
         # Logging out or refreshing would revoke the token the fuzzer uses for everything else.
         "--exclude-path-regex", "auth/(logout|refresh)"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "NO_COLOR": "1"}, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-8000:]
    assert "Traceback" not in stack.log("web")


#: Bodies no client should send: what each JSON route must refuse, and how.
EXTREME_BODIES = (
    ("100,000 nested arrays", b"[" * 100_000, "application/json", 400),
    ("100,000 nested objects", b'{"a":' * 100_000, "application/json", 400),
    ("nested past the depth limit", json.dumps(json.loads("[" * 70 + "]" * 70)).encode(), "application/json", 400),
    ("2 MiB", json.dumps({"name": "x" * (2 * 1024 * 1024)}).encode(), "application/json", 413),
    ("30 MiB", b'{"camera_metadata": {"x": "' + b"x" * (30 * 1024 * 1024) + b'"}}', "application/json", 413),
    ("JSON sent as text", b'{"name": "x"}', "text/plain", 415),
)


def test_bodies_of_extreme_depth_and_size_are_refused_on_every_json_route(tmp_path, unit_redis_url):
    """Every operation of the OpenAPI document that takes a JSON body, with each extreme body:
    the error shape with 400, 413 or 415, never a server error, and the web process stays healthy."""
    with own_stack(tmp_path, unit_redis_url) as stack:
        token = stack.token()
        schema = schemathesis.openapi.from_url(stack.base + "/openapi.json")
        operations = [op for op in (r.ok() for r in schema.get_all_operations())
                      if op.body and any(b.media_type == "application/json" for b in op.body)]
        assert len(operations) > 20
        seen = []
        for op in operations:
            path = re.sub(r"{[^}]+}", lambda m: "1" if "frame" in m.group(0) else str(uuid.uuid4()), op.path)
            for name, body, ctype, status in EXTREME_BODIES:
                r = requests.request(op.method.upper(), stack.base + path, data=body, timeout=60,
                                     headers={"Content-Type": ctype, "Authorization": f"Bearer {token}"})
                seen.append((op.method, op.path, name, r.status_code))
                assert r.status_code == status, (op.method, op.path, name, r.status_code, r.text[:300])
                assert set(r.json()["error"]) == {"code", "message", "details"}
        assert {s for *_, s in seen} == {400, 413, 415}
        assert requests.get(stack.base + "/api/health", timeout=10).status_code == 200
        assert "Traceback" not in stack.log("web")
