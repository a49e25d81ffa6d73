"""The API, fuzzed from its own OpenAPI document: whatever is sent, never a server error."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from harness import Stack

from models import migrate


def test_no_request_makes_the_server_fail(tmp_path, unit_redis_url):
    """On a web process of its own: the fuzzer's jobs (hours of probe steps) must not clog shared workers."""
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    migrate(url)
    stack = Stack(tmp_path, url, unit_redis_url, SOCKETIO_CHANNEL=f"fuzz-{time.time_ns()}")
    try:
        stack.start_web()
        _fuzz(stack, tmp_path)
    finally:
        stack.close()


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
