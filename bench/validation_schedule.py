"""Validation-run scheduling: how well one run's detection jobs fill two GPU-queue workers.

A real stack (web, two GPU-queue worker processes of concurrency 1 each, pinned CPU-only, one
CPU worker of ``--cpu-concurrency`` processes (default 1), a private Redis, SQLite or PostgreSQL)
gets ``--videos`` generated clips of ``--min-frames``..``--max-frames`` frames (lengths spread
evenly, shuffled), each with ground truth imported as validated; then one validation run with
``opencv/hog-people`` over all of them, waited for. Every HTTP call goes through ``client.Client``.

From the jobs table afterwards:

* each detection job's duration (``finished_at - started_at``);
* the detection phase's makespan (first detection start -> last detection finish);
* the ratio ``makespan / (sum of detection durations / 2)``: 1.0 is two workers never idle while
  detections wait; the stated goal is within 1.15;
* the queue wait of each detection (``started_at - created_at``) and how the phase's work split
  across the two workers, to tell idle workers from slower jobs;
* the whole run's wall time (submit -> run completed) and the aggregation job's time.

    python bench/validation_schedule.py [--videos 40] [--database postgresql|sqlite]
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness import RedisServer, Stack  # noqa: E402
from sqlalchemy import create_engine, select  # noqa: E402

import formats  # noqa: E402
from bench.common import make_database  # noqa: E402
from client import Client  # noqa: E402
from models import Job, TestSession, ValidationRun, ValidationRunVideo, migrate  # noqa: E402

MODEL = "opencv/hog-people"
GPU_WORKERS = 2
SIZE = (160, 120)
FPS = 10.0


def clip(path: Path, frames: int, seed: int) -> tuple[Path, list[formats.Annotation]]:
    """A small MJPG clip with a figure walking across, and its box on every frame."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = SIZE
    bg = int(rng.integers(40, 160))
    x0, y0, dx = float(rng.uniform(0, w / 3)), float(rng.uniform(5, h / 3)), float(rng.uniform(0.5, 2.0))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    truth = []
    for i in range(frames):
        img = np.full((h, w, 3), bg, np.uint8)
        x = min(x0 + dx * i, w - 30.0)
        box = (x, y0, x + 25.0, y0 + 70.0)
        cv2.rectangle(img, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), (30, 30, 200), -1)
        cv2.circle(img, (int(x + 12), int(y0 - 6)), 7, (200, 180, 160), -1)
        writer.write(img)
        truth.append(formats.Annotation(i, "pedestrian", box, 1))
    writer.release()
    return path, truth


def seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--min-frames", type=int, default=30)
    ap.add_argument("--max-frames", type=int, default=60)
    ap.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--cpu-concurrency", type=int, default=1, help="processes of the CPU worker (evaluations)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the run")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-valsched-"))
    redis = RedisServer(tmp / "redis")
    url, drop = make_database(args.database, tmp, "vru_bench_sched")
    stack: Stack | None = None
    try:
        redis.start()
        migrate(url)
        stack = Stack(tmp, url, redis.url, RATE_LIMIT_UPLOAD="1000000 per hour")
        stack.start_web()
        for i in range(GPU_WORKERS):
            stack.start_worker("gpu", f"gpu{i}")
        stack.start_worker("cpu", "cpu0", concurrency=args.cpu_concurrency)
        api = Client(stack.base)
        api.login("admin", stack.admin_password)

        project = api.projects.create(f"schedule-{uuid.uuid4().hex[:6]}", labels=["pedestrian"])
        rng = random.Random(args.seed)
        span = max(0, args.max_frames - args.min_frames)
        lengths = [args.min_frames + (span * i // max(1, args.videos - 1)) for i in range(args.videos)]
        rng.shuffle(lengths)
        t0 = time.perf_counter()
        video_ids, import_jobs = [], []
        for i, frames in enumerate(lengths):
            path, truth = clip(tmp / f"clip-{i:03d}.avi", frames, args.seed * 1000 + i)
            video = api.videos.upload(path, project_id=project["id"])
            csv = tmp / f"truth-{i:03d}.csv"
            formats.write("csv", csv, truth)
            imp = api.imports.create(csv, import_type="annotations", source_format="csv", project_id=project["id"],
                                     video_id=video["id"], validation_status="validated")
            video_ids.append(video["id"])
            import_jobs.append(imp["job_id"])
        api.jobs.wait(import_jobs, timeout=600)
        setup_s = time.perf_counter() - t0

        submitted = time.perf_counter()
        run = api.validation_runs.create(project["id"], MODEL, name="schedule", videos=video_ids,
                                         evaluation={"classes": ["pedestrian"], "iou_threshold": 0.5})
        done = api.validation_runs.wait(run["id"], timeout=args.timeout)
        wall_s = time.perf_counter() - submitted
        if done["status"] != "completed":
            print(f"run ended {done['status']}: {done.get('error')}")
            return 1

        engine = create_engine(url)
        rid = uuid.UUID(run["id"])
        with engine.connect() as conn:
            det = conn.execute(
                select(Job.created_at, Job.started_at, Job.finished_at, Job.worker, Job.attempts)
                .join(TestSession, TestSession.job_id == Job.id)
                .join(ValidationRunVideo, ValidationRunVideo.test_session_id == TestSession.id)
                .where(ValidationRunVideo.run_id == rid)).all()
            evals = conn.execute(
                select(Job.created_at, Job.started_at, Job.finished_at)
                .join(ValidationRunVideo, ValidationRunVideo.evaluation_job_id == Job.id)
                .where(ValidationRunVideo.run_id == rid)).all()
            vr = conn.execute(select(ValidationRun.created_at, ValidationRun.finished_at,
                                     ValidationRun.aggregation_job_id).where(ValidationRun.id == rid)).one()
            agg = conn.execute(select(Job.created_at, Job.started_at, Job.finished_at)
                               .where(Job.id == vr.aggregation_job_id)).one()
        engine.dispose()

        durations = [seconds(r.started_at, r.finished_at) for r in det]
        first, last = min(r.started_at for r in det), max(r.finished_at for r in det)
        makespan = seconds(first, last)
        total = sum(durations)
        ideal = total / GPU_WORKERS
        waits = [seconds(r.created_at, r.started_at) for r in det]
        per_worker: dict[str, list[float]] = {}
        spans: dict[str, list] = {}
        for r, d in zip(det, durations, strict=True):
            name = (r.worker or "?").split("@")[0]
            per_worker.setdefault(name, []).append(d)
            spans.setdefault(name, []).append(r)
        # idle time on the GPU queue during the phase, per worker: before its first job, between its
        # jobs (hand-off: ack, next message, claim), after its last one
        idle_head = sum(seconds(first, min(r.started_at for r in rs)) for rs in spans.values())
        idle_tail = sum(seconds(max(r.finished_at for r in rs), last) for rs in spans.values())
        ordered = [sorted(rs, key=lambda r: r.started_at) for rs in spans.values()]
        gaps = [seconds(a.finished_at, b.started_at) for rs in ordered for a, b in zip(rs, rs[1:], strict=False)]
        idle = idle_head + idle_tail + sum(gaps)
        eval_durations = [seconds(r.started_at, r.finished_at) for r in evals]
        eval_in_phase = sum(1 for r in evals if r.finished_at <= last)

        print(f"validation schedule: {args.videos} videos of {args.min_frames}-{args.max_frames} frames "
              f"({sum(lengths)} in all, {SIZE[0]}x{SIZE[1]}), {MODEL}; database {args.database}; "
              f"{GPU_WORKERS} GPU-queue workers (CPU-only, concurrency 1) + 1 CPU worker "
              f"(concurrency {args.cpu_concurrency})")
        print(f"setup (upload + validated ground-truth import)   {setup_s:8.1f} s")
        print(f"detection jobs                                    {len(det):8d}  "
              f"(redelivered: {sum(1 for r in det if (r.attempts or 0) > 1)})")
        print(f"detection duration  min / median / max            {min(durations):8.2f} / "
              f"{statistics.median(durations):.2f} / {max(durations):.2f} s")
        print(f"sum of detection durations                        {total:8.1f} s   "
              f"/ {GPU_WORKERS} = {ideal:.1f} s")
        print(f"detection makespan (first start -> last finish)   {makespan:8.1f} s")
        print(f"ratio makespan / (sum / {GPU_WORKERS})                       {makespan / ideal:8.3f}   "
              f"(goal: within 1.15)")
        print("jobs and busy time per worker                     " + ", ".join(
            f"{w}: {len(ds)} jobs {sum(ds):.1f} s" for w, ds in sorted(per_worker.items())))
        print(f"GPU-worker idle time inside the phase             {idle:8.1f} s   (before the first job "
              f"{idle_head:.2f} s, between jobs {sum(gaps):.2f} s = {len(gaps)} hand-offs of median "
              f"{statistics.median(gaps) * 1000:.0f} ms, after the last {idle_tail:.2f} s)")
        print(f"queue wait of detections  median / max            {statistics.median(waits):8.1f} / "
              f"{max(waits):.1f} s")
        print(f"evaluation jobs                                   {len(evals):8d}  median "
              f"{statistics.median(eval_durations):.2f} s, {sum(eval_durations):.1f} s in all, "
              f"{eval_in_phase} finished inside the detection phase")
        print(f"aggregation job  queue wait / run time            {seconds(agg.created_at, agg.started_at):8.2f} / "
              f"{seconds(agg.started_at, agg.finished_at):.2f} s")
        print(f"last detection finish -> run completed            {seconds(last, vr.finished_at):8.1f} s")
        print(f"run wall time (submit -> run completed)           {wall_s:8.1f} s")
        return 0
    finally:
        if stack is not None:
            stack.close()
        redis.stop()
        drop()
        if args.keep:
            print(f"work folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
