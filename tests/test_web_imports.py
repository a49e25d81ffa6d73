"""The web process stays light: building the app imports neither torch nor the detectors."""
from __future__ import annotations

import subprocess
import sys

from harness import ROOT

PROBE = """
import sys
from models import migrate
from settings import load_settings
migrate(load_settings().database_url)
from webapp.factory import create_app
app = create_app(redis_url="redis://127.0.0.1:1/0")
client = app.test_client()
assert client.get("/api/health").status_code in (200, 503)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "onnxruntime")
               or m == "vision.detectors")
print("HEAVY", heavy)
"""


def test_creating_the_web_app_does_not_import_torch(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
           "STORAGE_DIR": str(tmp_path / "storage"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout, done.stdout
