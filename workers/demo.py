"""`make demo`: start the stack on embedded defaults, run the main job end to end, stop.

The main job: log in, create a project, upload a video, run a probe job on each pool and
watch both progress bars fill from live Socket.IO events; then run pedestrian detection
(OpenCV's HOG people detector, which needs no downloaded weights) on a real street video
when one is on this machine (``DEMO_VIDEO``, or Debian's ``opencv-doc`` sample), else on a
generated clip, with a live progress bar, a per-class summary and one annotated frame as PNG.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from settings import free_port, load_settings

from .pools import Supervisor, cpu_pool_spec, gpu_pool_specs


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def make_clip(path: Path, frames: int = 60, fps: float = 10.0) -> Path:
    """A short synthetic street clip (walking figures on a road) so the demo needs no data."""
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 360))
    for i in range(frames):
        img = np.full((360, 640, 3), (90, 90, 90), np.uint8)
        img[240:] = (60, 60, 60)
        for k, (x0, speed) in enumerate(((40, 6), (560, -4), (300, 3))):
            x = int(x0 + speed * i) % 640
            cv2.rectangle(img, (x, 150 + 20 * k), (x + 30, 240 + 20 * k), (40 + 60 * k, 160, 220 - 50 * k), -1)
            cv2.circle(img, (x + 15, 138 + 20 * k), 12, (200, 180, 160), -1)
        writer.write(img)
    writer.release()
    return path


#: A real pedestrian video shipped by Debian's opencv-doc package, used when present.
DEBIAN_SAMPLE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def demo_video(var_dir: Path) -> tuple[Path, str]:
    """The video detection runs on: DEMO_VIDEO, Debian's sample, or a generated clip."""
    chosen = os.environ.get("DEMO_VIDEO")
    if chosen and Path(chosen).is_file():
        return Path(chosen), "DEMO_VIDEO"
    if DEBIAN_SAMPLE.is_file():
        return DEBIAN_SAMPLE, "Debian's opencv-doc sample"
    return make_clip(var_dir / "demo" / "street.avi", frames=60), "a generated clip (set DEMO_VIDEO for a real one)"


def run_detection(s, base: str, token: str, project: dict, var_dir: Path) -> bool:
    """Upload the demo video, detect pedestrians with a live progress bar, summarize, draw one frame."""
    import cv2
    import socketio

    from vision.draw import draw_detections

    path, origin = demo_video(var_dir)
    with open(path, "rb") as fh:
        r = s.post(base + "/api/videos", data={"project_id": project["id"]},
                   files={"file": (path.name, fh, "video/x-msvideo")}, timeout=300)
    r.raise_for_status()
    video = r.json()
    print(f"\nDetection on {path.name} ({origin}): {video['frame_count']} frames, {video['width']}x{video['height']}")
    r = s.post(base + "/api/test-sessions", json={
        "project_id": project["id"], "video_id": video["id"], "name": "demo: HOG pedestrians",
        "model": {"name": "opencv/hog-people", "confidence_threshold": 0.4}, "batch_size": 4,
        "frame_stride": 2, "enable_tracking": True}, timeout=30)
    r.raise_for_status()
    ts = r.json()
    client = socketio.Client(reconnection=True)
    live = {"messages": 0, "boxes": 0}
    bars = Bars({ts["job_id"]: "det"})

    def on_event(data):
        live["messages"] += 1
        live["boxes"] += sum(len(f["detections"]) for f in data["frames"])

    client.on("job_progress", bars.update)
    client.on("job_snapshot", bars.update)
    client.on("detection_event", on_event)
    client.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    client.call("subscribe_job", {"job_id": ts["job_id"]}, timeout=10)
    client.call("detection_stream_subscribe", {"test_session_id": ts["id"]}, timeout=10)
    bars.done.wait(1800)
    print()
    client.disconnect()
    job = s.get(f"{base}/api/jobs/{ts['job_id']}", timeout=30).json()
    if job["status"] != "completed":
        print(f"  detection {job['status']}: {job.get('error')}")
        return False
    summary = job["result"]
    print(f"  {summary['frames_processed']} frames in {summary['wall_seconds']:.1f} s ({summary['fps']:.1f} fps "
          f"on {summary['device']}), {summary['detections']} detections, {summary['tracks']} tracks; "
          f"{live['boxes']} boxes arrived live in {live['messages']} messages")
    for label, count in summary["per_class"].items():
        print(f"    {label:<13} {count:6d}")
    if summary["mean_confidence"] is not None:
        print(f"    mean confidence {summary['mean_confidence']:.3f}")
    rows = s.get(f"{base}/api/test-sessions/{ts['id']}/detections", params={"per_page": 5000}, timeout=60).json()
    if rows["items"]:
        counts: dict[int, int] = {}
        for d in rows["items"]:
            counts[d["frame_number"]] = counts.get(d["frame_number"], 0) + 1
        best = max(counts, key=lambda k: (counts[k], -k))
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, best)
        ok, image = cap.read()
        cap.release()
        if ok:
            dets = [d for d in rows["items"] if d["frame_number"] == best]
            drawn = draw_detections(image, [d["bbox"] for d in dets], [d["class_label"] for d in dets],
                                    [d["confidence"] for d in dets], [d["track_id"] for d in dets],
                                    classes=project["labels"])
            out = var_dir / "demo" / "detections.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), drawn)
            print(f"  frame {best} with its {len(dets)} boxes drawn: {out}")
    return True


def _bar(fraction: float, width: int = 24) -> str:
    full = int(round(fraction * width))
    return "#" * full + "." * (width - full)


class Bars:
    """Two progress bars on one terminal line, redrawn from live events."""

    def __init__(self, jobs: dict[str, str]) -> None:
        self.jobs = jobs  # job id -> label
        self.state = {job_id: {"progress_percent": 0.0, "status": "pending", "stage": "queued"} for job_id in jobs}
        self.lock = threading.Lock()
        self.done = threading.Event()

    def update(self, data: dict) -> None:
        with self.lock:
            if data.get("job_id") not in self.state:
                return
            self.state[data["job_id"]].update(data)
            line = "   ".join(
                f"{self.jobs[j]:<4}[{_bar(s['progress_percent'] / 100)}] "
                f"{s['progress_percent']:5.1f}% {s['status']:<10}" for j, s in self.state.items())
            sys.stdout.write("\r" + line)
            sys.stdout.flush()
            if all(s["status"] in ("completed", "failed", "cancelled") for s in self.state.values()):
                self.done.set()


def demo() -> int:
    import requests
    import socketio

    settings = load_settings()
    port = settings.port if _port_free(settings.port) else free_port()
    flower_port = settings.flower_port if _port_free(settings.flower_port) else free_port()
    os.environ.update(PORT=str(port), FLOWER_PORT=str(flower_port))
    base = f"http://127.0.0.1:{port}"
    log_dir = settings.var_dir / "logs"
    print(f"Starting the platform (database {settings.database_url}, Redis {os.environ['REDIS_URL']})")
    print(f"  logs in {log_dir}")
    from .__main__ import beat_spec, flower_spec, web_spec

    sup = Supervisor(str(log_dir))
    for spec in (web_spec(), *gpu_pool_specs(), cpu_pool_spec(), beat_spec(), flower_spec()):
        sup.start(spec)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or sup.procs["web"].poll() is not None:
                print(f"web did not come up; see {log_dir / 'web.log'}", file=sys.stderr)
                return 1
            time.sleep(0.3)

        s = requests.Session()
        r = s.post(base + "/api/auth/token", json={"username": settings.admin_username,
                                                   "password": settings.admin_password}, timeout=30)
        r.raise_for_status()
        token = r.json()["access_token"]
        s.headers["Authorization"] = f"Bearer {token}"
        print(f"Logged in as {settings.admin_username}")

        project = s.post(base + "/api/projects", json={"name": "Demo: pedestrians and cyclists",
                                                       "description": "created by make demo"}, timeout=30).json()
        print(f"Project {project['id']}  labels: {', '.join(project['labels'])}")
        clip = make_clip(settings.var_dir / "demo" / "street.avi")
        with open(clip, "rb") as fh:
            r = s.post(base + "/api/videos", data={"project_id": project["id"]},
                       files={"file": (clip.name, fh, "video/x-msvideo")}, timeout=120)
        r.raise_for_status()
        video = r.json()
        print(f"Video {video['id']}  {video['width']}x{video['height']}, {video['frame_count']} frames, "
              f"{video['fps']:.1f} fps, {video['duration']:.1f} s, codec {video['codec']}, "
              f"variable frame rate: {video['variable_frame_rate']}")

        client = socketio.Client(reconnection=True)
        connected = threading.Event()
        client.on("connection_status", lambda _d: connected.set())
        client.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        connected.wait(10)
        jobs = {}
        for queue in ("gpu", "cpu"):
            r = s.post(base + "/api/jobs/probe", json={"queue": queue, "steps": 20, "step_seconds": 0.15,
                                                       "project_id": project["id"]}, timeout=30)
            r.raise_for_status()
            jobs[r.json()["id"]] = queue
        print("Probe jobs on both pools, progress live over Socket.IO:")
        bars = Bars(jobs)
        client.on("job_progress", bars.update)
        client.on("job_snapshot", bars.update)
        for job_id in jobs:
            client.call("subscribe_job", {"job_id": job_id}, timeout=10)
        finished = bars.done.wait(120)
        print()
        client.disconnect()

        print("\nSummary")
        ok = finished
        for job_id, queue in jobs.items():
            job = s.get(f"{base}/api/jobs/{job_id}", timeout=30).json()
            ok = ok and job["status"] == "completed"
            print(f"  {queue} job {job_id}: {job['status']} on {job['worker']} after {job['attempts']} attempt(s)")
        ok = run_detection(s, base, token, project, settings.var_dir) and ok
        print("\nWhile `make up` runs:")
        print(f"  API       {base}/api  (OpenAPI document at {base}/openapi.json)")
        print(f"  Flower    http://127.0.0.1:{flower_port}/  (FLOWER_BASIC_AUTH, default admin:admin)")
        print(f"  Socket.IO {base}/socket.io  (auth: {{\"token\": ...}}; events job_progress, project_progress_update, "
              "detection_event)")
        return 0 if ok else 1
    finally:
        print("Stopping the platform...")
        sup.stop()
