"""A pool on two hosts sharing nothing but the network: the web front on this host, a GPU-queue
worker as a second host in its own network namespace, with its own empty storage directory.

Videos reach the worker through the object store (``rclone serve s3``), jobs through Redis and
rows through PostgreSQL, all over the veth pair. Where a namespace cannot be made, the same test
runs on one host with separate directories and says so (a warning in the test report).
"""
from __future__ import annotations

import hashlib
import subprocess
import uuid
import warnings
from pathlib import Path

import pytest
from harness import PYTHON, EventClient, Stack, wait_until
from netns import Namespace, NamespaceUnavailable, TcpForwarder
from objectstore import ObjectStoreServer

pytestmark = pytest.mark.slow
BUCKET, PREFIX = "pool", "site-a"


class RedisOn:
    """A private redis-server listening on loopback and on ``host`` (the veth address)."""

    def __init__(self, workdir: Path, host: str) -> None:
        from harness import free_port

        self.port, self.host = free_port(), host
        # Loopback and the private veth only; the second host has no password to give.
        binds = ["127.0.0.1"] + ([host] if host != "127.0.0.1" else [])
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", *binds, "--save", "",
                                      "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from workers.embedded_redis import redis_answers

        wait_until(lambda: redis_answers("127.0.0.1", self.port, 0.2), 10, what="private redis")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def pool(tmp_path_factory, pg_database):
    from models import migrate

    tmp = tmp_path_factory.mktemp("two-hosts")
    ns: Namespace | None = Namespace()
    try:
        ns.create()
        mode = f"second host in network namespace {ns.name} ({ns.ns_ip}), services at {ns.host_ip}"
    except NamespaceUnavailable as exc:
        ns, mode = None, f"ONE HOST with separate directories: no network namespace ({exc})"
        warnings.warn(mode, stacklevel=1)
    host_ip = ns.host_ip if ns else "127.0.0.1"
    cleanup = []
    try:
        redis = RedisOn(tmp, host_ip)
        cleanup.append(redis.stop)
        store = ObjectStoreServer(tmp / "objects", host=host_ip).start()
        cleanup.append(store.stop)
        url = pg_database()
        migrate(url)
        pg = TcpForwarder((host_ip, 0), ("127.0.0.1", 5432))
        cleanup.append(pg.close)
        stack = Stack(tmp / "host-a", url, f"redis://127.0.0.1:{redis.port}/0", **store.env(BUCKET, PREFIX))
        (tmp / "host-a").mkdir()
        cleanup.append(stack.close)
        stack.start_web()
        host_b = tmp / "host-b"
        host_b.mkdir()
        name = "gpu-b"
        cmd = [PYTHON, "-m", "celery", "-A", "tasks", "worker", "-Q", "gpu", "-P", "prefork", "-c", "1",
               "--prefetch-multiplier", "1", "-E", "-n", f"{name}@%h", "--loglevel", "INFO",
               "--without-mingle", "--without-gossip"]
        stack._starts[name] = 1
        stack._spawn(name, ns.wrap(cmd) if ns else cmd, CUDA_VISIBLE_DEVICES="",
                     REDIS_URL=f"redis://{host_ip}:{redis.port}/0",
                     DATABASE_URL=url.replace("127.0.0.1:5432", f"{host_ip}:{pg.address[1]}"),
                     VAR_DIR=str(host_b), STORAGE_DIR=str(host_b / "storage"))
        wait_until(lambda: stack._ready(name), 90, 0.2, "the second host's worker")
        yield {"stack": stack, "store": store, "ns": ns, "mode": mode, "host_b": host_b, "worker": name}
    finally:
        for step in reversed(cleanup):
            step()
        if ns is not None:
            ns.delete()
            assert ns.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def objects(pool, folder: str) -> list[Path]:
    base = pool["store"].root / BUCKET / PREFIX / folder
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []


def test_a_detection_job_runs_on_the_second_host_from_the_object_store(pool, shared_data, record_property):
    stack, host_b = pool["stack"], pool["host_b"]
    record_property("hosts", pool["mode"])
    print(pool["mode"])
    if pool["ns"] is not None:  # the worker really is elsewhere: it cannot reach this host's loopback
        probe = subprocess.run(pool["ns"].wrap(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"]),
                               capture_output=True, text=True, timeout=10)
        assert "PONG" not in probe.stdout
    project = stack.api("POST", "/api/projects", json={"name": f"two-hosts-{uuid.uuid4().hex[:6]}"}).json()
    video_file = shared_data / "video" / "vtest.avi"
    with open(video_file, "rb") as fh:
        r = stack.api("POST", "/api/videos", data={"project_id": project["id"]}, files={"file": (video_file.name, fh)})
    assert r.status_code == 201, r.text
    video = r.json()
    checksum = hashlib.sha256(video_file.read_bytes()).hexdigest()
    # The bytes live in the object store, not on either host's disk.
    stored = objects(pool, "videos")
    assert {p.name for p in stored} >= {f"{video['id']}.avi", f"{video['id']}.avi.timestamps.npy"}
    assert not (stack.workdir / "storage" / "videos").exists()
    assert not (host_b / "storage" / "cache").exists()

    events = EventClient()
    events.connect(stack.base, stack.token())
    try:
        r = stack.api("POST", "/api/test-sessions", json={
            "project_id": project["id"], "video_id": video["id"], "model": "opencv/hog-people",
            "batch_size": 4, "frame_stride": 2, "frame_to": 19})
        assert r.status_code == 202, r.text
        ts = r.json()
        events.call("detection_stream_subscribe", {"test_session_id": ts["id"]})
        job = stack.wait_job(ts["job_id"], timeout=240)
        assert job["status"] == "completed", (job, stack.log(pool["worker"])[-3000:])
        events.wait_for("detection_event", lambda d: d["test_session_id"] == ts["id"] and d["final"], timeout=60)
    finally:
        events.close()
    summary = job["result"]
    assert summary["frames_processed"] == 10 and summary["per_class"].get("pedestrian", 0) >= 5
    got = stack.api("GET", f"/api/test-sessions/{ts['id']}/detections", params={"per_page": 500}).json()
    assert got["total"] == summary["events_stored"] > 0
    # It ran on the second host, which read the video through its cache, verified by checksum.
    assert ts["job_id"] in stack.log(pool["worker"])
    cached = host_b / "storage" / "cache" / checksum / f"{video['id']}.avi"
    assert cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == checksum
    # Frames are served by the web front from the store too.
    frame = stack.api("GET", f"/api/videos/{video['id']}/frames/3.jpg")
    assert frame.status_code == 200 and frame.headers["Content-Type"] == "image/jpeg"


def test_an_upload_while_the_object_store_is_down_answers_503_and_leaves_nothing(pool, shared_data):
    stack, store = pool["stack"], pool["store"]
    project = stack.api("POST", "/api/projects", json={"name": f"down-{uuid.uuid4().hex[:6]}"}).json()
    before = objects(pool, "videos")
    store.stop()
    try:
        with open(shared_data / "video" / "vtest.avi", "rb") as fh:
            r = stack.api("POST", "/api/videos", data={"project_id": project["id"]},
                          files={"file": ("vtest.avi", fh)})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "service_unavailable"
    finally:
        store.start()
    assert objects(pool, "videos") == before
    assert stack.api("GET", "/api/videos", params={"project_id": project["id"]}).json()["total"] == 0
    assert not list((stack.workdir / "storage" / "tmp").glob("*"))
