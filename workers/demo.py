"""`make demo`: start the stack on embedded defaults, run the platform's main job end to end, stop.

The main job is a validation run: real footage with real ground truth, two real models run
over it as two validation runs on the GPU-queue pool, live progress bars, both metric tables
with their bootstrap intervals, the paired comparison, a regression gate, the HTML report.

The footage is OpenCV's ``vtest.avi`` (Debian's ``opencv-doc``; ``make demo`` installs it when
root), its first 150 frames cut into five 3-second clips so that intervals over videos mean
something; the ground truth is ``demo/vtest_ground_truth.csv``, made for this project (see
``demo/README.md``). The models are OpenCV's HOG people detector and its full-body Haar
cascade, both trained detectors shipped inside OpenCV; once ``make demo-model`` has converted the
trained SSDLite pedestrian detector, a third run validates it against HOG. Without ``vtest.avi``
the demo uses generated clips whose ground truth is known exactly, and says so.
"""
from __future__ import annotations

import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from settings import load_settings

from .embedded_redis import free_port
from .pools import Supervisor, cpu_pool_spec, gpu_pool_specs

ROOT = Path(__file__).resolve().parents[1]
GROUND_TRUTH = ROOT / "demo" / "vtest_ground_truth.csv"
#: A real pedestrian video shipped by Debian's opencv-doc package.
DEBIAN_SAMPLE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CLIPS, CLIP_FRAMES = 5, 30  # frames 0-149, the stretch the ground truth covers
MODELS = (("HOG people detector", {"name": "opencv/hog-people", "confidence_threshold": 0.3}),
          ("Haar full-body cascade", {"name": "opencv/haar-fullbody", "confidence_threshold": 0.3}))
GATES_FIRST = [{"metric": "recall", "min": 0.25}]
GATES_SECOND = [{"metric": "ap50", "max_drop": 0.05, "vs": "baseline", "significant": True}]


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


# ------------------------------------------------------------------------------ footage and ground truth


def demo_source() -> Path | None:
    """``DEMO_VIDEO`` when it names vtest.avi elsewhere, else Debian's copy, else none."""
    chosen = os.environ.get("DEMO_VIDEO")
    if chosen and Path(chosen).is_file():
        return Path(chosen)
    return DEBIAN_SAMPLE if DEBIAN_SAMPLE.is_file() else None


def read_ground_truth(path: Path) -> dict[int, list[dict[str, Any]]]:
    """The shipped CSV's keyframe rows, by track."""
    tracks: dict[int, list[dict[str, Any]]] = defaultdict(list)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            tracks[int(row["track_id"])].append({
                "frame": int(row["frame_number"]), "label": row["label"],
                "box": tuple(float(row[c]) for c in ("x1", "y1", "x2", "y2")),
                "outside": row.get("outside") in ("1", "true"), "occluded": row.get("occluded") in ("1", "true")})
    return tracks


def clip_ground_truth(tracks: dict[int, list[dict[str, Any]]], start: int, count: int, fps: float) -> list[list[Any]]:
    """Rows of one clip's ground truth: each track's box on every clip frame it is visible on.

    The boxes come from the platform's own interpolation between the shipped keyframes, so
    a clip carries exactly the ground truth the whole stretch has; a track's gap (an
    ``outside`` keyframe) ends its segment with an ``outside`` row.
    """
    import numpy as np

    from keyframes.timeline import Timeline
    from keyframes.tracks import Keyframe, interpolate

    end = start + count
    last_key = max(k["frame"] for keys in tracks.values() for k in keys)
    timeline = Timeline.constant(max(end, last_key + 1), fps)
    rows: list[list[Any]] = []
    for track_id, keys in sorted(tracks.items()):
        keys = sorted(keys, key=lambda k: k["frame"])
        first, last = keys[0]["frame"], max(k["frame"] for k in keys if not k["outside"])
        frames = np.arange(max(start, first), min(end, last + 1))
        if frames.size == 0:
            continue
        kfs = [Keyframe(k["frame"], k["box"], k["outside"]) for k in keys]
        boxes = interpolate(kfs, frames, timeline)
        occluded = {k["frame"] for k in keys if k["occluded"]}
        was_visible = False
        for f, box in zip(frames.tolist(), boxes, strict=True):
            if np.isnan(box[0]):
                if was_visible:
                    rows.append([f - start, track_id, keys[0]["label"], *rows[-1][3:7], 1, 1, 0])
                was_visible = False
                continue
            rows.append([f - start, track_id, keys[0]["label"], *(round(float(v), 2) for v in box), 1, 0,
                         int(f in occluded)])
            was_visible = True
    return rows


def cut_clips(source: Path, out_dir: Path) -> list[Path]:
    """Frames 0-149 of ``source`` as five MJPG clips of 30 frames (10 fps, the source's rate)."""
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    paths = []
    for i in range(CLIPS):
        path = out_dir / f"vtest-{i * CLIP_FRAMES:03d}-{(i + 1) * CLIP_FRAMES - 1:03d}.avi"
        writer = None
        for _ in range(CLIP_FRAMES):
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError(f"{source} ended before frame {(i + 1) * CLIP_FRAMES}")
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
            writer.write(frame)
        writer.release()
        paths.append(path)
    cap.release()
    return paths


def generated_clips(out_dir: Path) -> list[tuple[Path, list[list[Any]]]]:
    """Clips of walking figures drawn here, with their exact boxes as ground truth."""
    import cv2
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for c in range(CLIPS):
        path = out_dir / f"street-{c}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 360))
        rows: list[list[Any]] = []
        for i in range(CLIP_FRAMES):
            img = np.full((360, 640, 3), (90, 90, 90), np.uint8)
            img[240:] = (60, 60, 60)
            for k, (x0, speed) in enumerate(((40 + 30 * c, 6), (560, -4), (300, 3))):
                x, top = x0 + speed * i, 126 + 20 * k
                cv2.rectangle(img, (x, 150 + 20 * k), (x + 30, 240 + 20 * k), (40 + 60 * k, 160, 220 - 50 * k), -1)
                cv2.circle(img, (x + 15, 138 + 20 * k), 12, (200, 180, 160), -1)
                rows.append([i, k + 1, "pedestrian", float(x), float(top), float(x + 31), float(241 + 20 * k), 1, 0, 0])
            writer.write(img)
        writer.release()
        made.append((path, rows))
    return made


def write_rows(path: Path, rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame_number", "track_id", "label", "x1", "y1", "x2", "y2", "keyframe", "outside", "occluded"])
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------ the main job


def trained_model(var_dir: Path, out) -> str | None:
    """The trained pedestrian detector as a registered model, when ``make demo-model`` has converted
    it (TensorFlow is needed for that, in a throw-away environment: the demo never converts)."""
    from models.demo_model import CACHE_NAME, register

    path = var_dir / "cache" / CACHE_NAME
    if not path.is_file():
        out.print("\n[dim]The trained pedestrian detector (SSDLite-MobileNetV2) is not converted here: "
                  "`make demo-model` converts and registers it once (a few minutes), and the demo then "
                  "validates it too.[/]")
        return None
    settings = load_settings()
    ref, status = register(settings.database_url, settings.storage_dir, path, log=lambda _m: None)
    if status != "ready":
        out.print(f"[yellow]The trained pedestrian detector is {status}: left out[/]")
        return None
    return ref


def validate(base: str, username: str, password: str, var_dir: Path, flower_port: int) -> bool:
    """Upload, import ground truth, run both models as validation runs, compare, gate, report."""
    from rich.console import Console

    from client import Client
    from client.cli import State, comparison_table, gates_table, metrics_table, watch_run

    out = Console()
    api = Client(base, poll_interval=0.5)
    api.login(username, password)
    demo_dir = var_dir / "demo"
    project = api.projects.create(f"Demo: pedestrians {time.strftime('%H:%M:%S')}",
                                  description="created by make demo")
    out.print(f"Project {project['name']} ({project['id']}), labels: {', '.join(project['labels'])}")

    source = demo_source()
    if source is not None and GROUND_TRUTH.is_file():
        tracks = read_ground_truth(GROUND_TRUTH)
        clips = [(p, clip_ground_truth(tracks, i * CLIP_FRAMES, CLIP_FRAMES, 10.0))
                 for i, p in enumerate(cut_clips(source, demo_dir / "clips"))]
        out.print(f"Footage: {source} frames 0-149 as {CLIPS} clips; ground truth {GROUND_TRUTH.relative_to(ROOT)} "
                  f"({len(tracks)} people, made for this project: see demo/README.md)")
    else:
        clips = generated_clips(demo_dir / "clips")
        out.print("[yellow]vtest.avi not found (install Debian's opencv-doc, or set DEMO_VIDEO): using generated "
                  "clips whose ground truth is known exactly[/]")

    videos = []
    for path, rows in clips:
        video = api.videos.upload(path, project_id=project["id"])
        gt = write_rows(demo_dir / f"{path.stem}.csv", rows)
        imp = api.imports.create(gt, import_type="annotations", source_format="csv", project_id=project["id"],
                                 video_id=video["id"], validation_status="validated",
                                 job_name=f"ground truth {path.stem}")
        api.jobs.wait(imp["job_id"], timeout=300)
        done = api.imports.get(imp["id"])
        api.annotation_sessions.update(done["annotation_session_id"], status="completed")
        videos.append(video)
        out.print(f"  {path.name}: {video['frame_count']} frames, {len(rows)} ground-truth boxes imported as validated")

    state = State(base, api.token, as_json=False)
    runs = []
    for (title, model), gates in zip(MODELS, (GATES_FIRST, GATES_SECOND), strict=True):
        out.print(f"\nValidation run: {title} ({model['name']}) on {len(videos)} videos")
        run = api.validation_runs.create(project["id"], model, name=title, videos=[v["id"] for v in videos],
                                         gates=gates, baseline_run_id=runs[-1]["id"] if runs else None,
                                         enable_tracking=True)
        runs.append(watch_run(state, api, run, timeout=1200))

    trained = trained_model(var_dir, out)
    if trained is not None:
        title = "Trained pedestrian detector (SSDLite)"
        out.print(f"\nValidation run: {title} ({trained}) on {len(videos)} videos, against {runs[0]['name']}")
        run = api.validation_runs.create(project["id"], {"name": trained, "confidence_threshold": 0.3}, name=title,
                                         videos=[v["id"] for v in videos], baseline_run_id=runs[0]["id"],
                                         enable_tracking=True)
        runs.append(watch_run(state, api, run, timeout=1200))

    ok = True
    for run in runs:
        body = api.validation_runs.metrics(run["id"])
        metrics = body.get("metrics") or {}
        out.print(metrics_table(f"\n{run['name']}: {run['status']}", metrics.get("overall") or {}))
        if body.get("gates"):
            out.print(gates_table(body["gates"], body.get("gate_status")))
        ok = ok and run["status"] == "completed"
    for other in runs[1:]:
        comparison = api.validation_runs.compare(runs[0]["id"], other["id"])
        out.print(comparison_table(comparison.get("comparison", comparison), runs[0]["name"], other["name"]))
    for run in runs:
        path = api.validation_runs.report(run["id"], demo_dir / f"report-{run['name'].split()[0].lower()}.html")
        out.print(f"HTML report of {run['name']}: {path}")
    out.print(f"\nIn the dashboard ({base}/): project {project['name']}; "
              f"in Flower (http://127.0.0.1:{flower_port}/, FLOWER_BASIC_AUTH): the detection and aggregation tasks")
    out.print(f"From a shell: vru --url {base} login --username {username}; vru runs list --project {project['id']}")
    return ok


def demo() -> int:
    import requests

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
    started = time.monotonic()
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
        ok = validate(base, settings.admin_username, settings.admin_password, settings.var_dir, flower_port)
        print(f"\nThe main job took {time.monotonic() - started:.0f} s. `make up` keeps the stack running: "
              f"API {base}/api, OpenAPI {base}/openapi.json, Flower http://127.0.0.1:{flower_port}/")
        return 0 if ok else 1
    finally:
        print("Stopping the platform...")
        sup.stop()
