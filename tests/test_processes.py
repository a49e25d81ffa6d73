"""Process-level behaviour: schema checks, embedded Redis, GPU pinning, Flower, compose file."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
import requests
from harness import ROOT, UNIT_REDIS_URL, free_port, start_flower, wait_until

from workers.embedded_redis import redis_answers, start_redis_server
from workers.pools import cpu_pool_spec, gpu_pool_specs, visible_gpus


def _env(tmp_path, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "REDIS_URL": UNIT_REDIS_URL, **extra}


def test_web_and_worker_refuse_an_out_of_date_schema(tmp_path):
    env = _env(tmp_path, PORT=str(free_port()))
    web = subprocess.run([sys.executable, "-m", "webapp"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert web.returncode == 3
    assert "refusing to start" in web.stderr and "make migrate" in web.stderr
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", "cpu", "-c", "1",
                             "-n", "schema@%h"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert worker.returncode != 0
    assert "make migrate" in worker.stdout + worker.stderr


def test_embedded_redis_answers_and_dies_with_its_owner(tmp_path):
    proc, url = start_redis_server(workdir=tmp_path / "r1")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert redis_answers("127.0.0.1", port)
    proc.terminate()
    proc.wait(10)
    # Owned by the process group that started it: an owner killed with SIGKILL takes it along.
    script = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
              "from workers.embedded_redis import start_redis_server\n"
              f"p, url = start_redis_server(workdir={str(tmp_path / 'r2')!r})\n"
              "print(url, flush=True); time.sleep(60)")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    url = owner.stdout.readline().strip()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert redis_answers("127.0.0.1", port)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    wait_until(lambda: not redis_answers("127.0.0.1", port, 0.2), 10, what="embedded redis to stop")


def test_gpu_pool_pins_one_worker_per_device_and_falls_back_to_cpu(monkeypatch):
    monkeypatch.setenv("GPU_DEVICES", "0,1,3")
    specs = gpu_pool_specs()
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["0", "1", "3"]
    assert [s.cmd[s.cmd.index("-n") + 1] for s in specs] == ["gpu0@%h", "gpu1@%h", "gpu2@%h"]
    for s in specs:
        assert s.cmd[s.cmd.index("-Q") + 1] == "gpu" and s.cmd[s.cmd.index("-c") + 1] == "1"
        assert "prefork" in s.cmd
    monkeypatch.setenv("GPU_DEVICES", "")
    (only,) = gpu_pool_specs()
    assert only.env == {"CUDA_VISIBLE_DEVICES": "", "WORKER_DEVICE": "cpu"}
    monkeypatch.delenv("GPU_DEVICES")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    assert visible_gpus() == ["2"]
    cpu = cpu_pool_spec(name="cpu7", autoscale="8,2")
    assert "--autoscale=8,2" in cpu.cmd and "cpu7@%h" in cpu.cmd and cpu.cmd[cpu.cmd.index("-Q") + 1] == "cpu"


def test_flower_sees_the_pools_behind_basic_auth(stack):
    flower, base = start_flower(stack, "ops:secret-pass")
    try:
        assert requests.get(base + "/api/workers", timeout=10).status_code == 401
        job = stack.probe("cpu", steps=2, step_seconds=0.05).json()
        stack.wait_job(job["id"])

        def workers():
            r = requests.get(base + "/api/workers", params={"refresh": "1"}, auth=("ops", "secret-pass"), timeout=10)
            names = {n.split("@")[0] for n in r.json()} if r.status_code == 200 else set()
            return {"gpu0", "cpu1"} <= names and names
        wait_until(workers, 60, 1.0, "flower to list both pools")
        later = stack.probe("gpu", steps=2, step_seconds=0.1).json()
        stack.wait_job(later["id"])

        def task_seen():
            r = requests.get(f"{base}/api/task/info/{later['id']}", auth=("ops", "secret-pass"), timeout=10)
            return r.status_code == 200 and r.json().get("state") == "SUCCESS" and r.json()
        info = wait_until(task_seen, 30, 0.5, "flower to record the job")
        assert info["name"] == "jobs.probe" and info["worker"].startswith("gpu0@")
    finally:
        flower.terminate()
        flower.wait(20)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is installed by .ci/run")
def test_compose_file_is_valid_and_wires_every_service():
    out = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for service in ("redis:", "postgres:", "minio:", "web:", "worker-gpu:", "worker-cpu:", "beat:", "flower:"):
        assert f"  {service}" in out.stdout, service
    # Pools on several hosts share the object store; the model folder is named as settings.py reads it.
    assert "STORAGE_URL: s3://" in out.stdout and "S3_ENDPOINT_URL: http://minio:9000" in out.stdout
    assert "VISION_MODEL_DIR: /data/models" in out.stdout and " MODEL_DIR:" not in out.stdout
    assert "noeviction" in out.stdout and "appendonly" in out.stdout
    assert "driver: nvidia" in out.stdout


def test_no_cuda_call_in_the_parent_of_the_gpu_pool():
    """Starting the pool must not import torch (and so cannot touch CUDA) in the parent."""
    code = ("import sys; sys.argv=['x']; import workers.pools as p; p.gpu_pool_specs(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False", out.stderr


def test_web_process_makes_psycopg2_cooperative(pg_database):
    """Under the web server's patching, one greenlet's slow query does not block another's."""
    url = pg_database().replace("postgresql+psycopg2://", "postgresql://")
    script = f"""
import webapp.__main__  # noqa: F401 - applies gevent's monkey patching and psycogreen, as `python -m webapp` does
import gevent, psycopg2
slow = psycopg2.connect({url!r})
fast = psycopg2.connect({url!r})
def sleeper():
    slow.cursor().execute("SELECT pg_sleep(3)")
def observer():
    gevent.sleep(0.5)
    cur = fast.cursor()
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'")
    return cur.fetchone()[0]
a, b = gevent.spawn(sleeper), gevent.spawn(observer)
gevent.joinall([a, b])
print("seen", b.value)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    # The observer ran its query while the sleeper's was still in progress.
    assert out.stdout.strip() == "seen 1", out.stdout + out.stderr
