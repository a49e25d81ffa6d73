"""Soak under chaos: mixed jobs through the HTTP API while workers keep being killed.

One GPU-queue worker and two CPU workers (plus web and beat, whose reaper re-queues the jobs of a
worker that vanished) run on a private Redis and a fresh database. Jobs are submitted over HTTP,
at most ``--window`` unfinished at a time: probes on both queues, small CSV exports of an
annotation session, small CSV imports (each into a new annotation session), short HOG detections
on a real street video, and a few deliberately poisonous probes that kill their worker every time.
Meanwhile a chaos loop SIGKILLs a random worker every ``--chaos-interval`` seconds: either the
pool process running a job (Celery requeues its message) or the whole worker, parent and pool
(nothing requeues it; the reaper must), which is then restarted.

At the end every job must be ``completed`` (poison jobs ``failed`` with the redelivery-cap
reason), none missing, and nothing doubled: each detection session holds exactly the events of a
clean run and no (frame, index) twice, each import session exactly the file's annotations, each
export exactly one file whose size and digest match its record, no partial file anywhere.
Reported: jobs/s, p50/p99 of queue wait (started_at - created_at) and of end-to-end time
(finished_at - created_at), overall and per kind.

    python bench/soak.py [--jobs 10000] [--database postgresql|sqlite] [--chaos-interval 3]
"""
from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import psutil  # noqa: E402
from harness import RedisServer, Stack, make_clip, wait_until  # noqa: E402
from sqlalchemy import create_engine, func, insert, select  # noqa: E402

import formats  # noqa: E402
from bench.common import make_database, pct  # noqa: E402
from models import DetectionEvent, ExportJob, Job, VideoAnnotation, migrate  # noqa: E402

TERMINAL = ("completed", "failed", "cancelled")
KINDS = ("probe", "export", "import", "detection")
WORKERS = {"gpu0": "gpu", "cpu1": "cpu", "cpu2": "cpu"}
VTEST = ROOT.parent / "shared" / "data" / "video" / "vtest.avi"


class Fixtures:
    """What the jobs work on: a project, a clip with an annotation session, a street video, a CSV."""

    def __init__(self, stack: Stack, tmp: Path, engine) -> None:
        self.stack = stack
        self.project = stack.api("POST", "/api/projects", json={"name": "soak"}).json()
        self.clip = self._upload(make_clip(tmp / "clip.avi", 30, 10.0))
        self.street = self._upload(VTEST)
        self.session = stack.api("POST", "/api/annotations/sessions", json={
            "project_id": self.project["id"], "video_id": self.clip["id"], "session_name": "soak",
            "annotation_type": "temporal"}).json()
        with engine.begin() as conn:
            conn.execute(insert(VideoAnnotation), [
                {"annotation_session_id": uuid.UUID(self.session["id"]), "video_id": uuid.UUID(self.clip["id"]),
                 "start_timestamp": 0.1 * i, "end_timestamp": 0.1 * i + 1.0, "annotation_type": "temporal",
                 "class_label": "pedestrian", "bounding_box": {"x1": 10.0 + i, "y1": 20.0, "x2": 60.0 + i, "y2": 90.0}}
                for i in range(20)])
        rows = [formats.Annotation(f, "pedestrian", (1.0 + 5 * t, 2.0, 30.0 + 5 * t, 40.0), t) for f in range(10)
                for t in range(1, 4)]
        self.csv = tmp / "import.csv"
        formats.write("csv", self.csv, rows)
        self.csv_bytes = self.csv.read_bytes()

    def _upload(self, path: Path) -> dict:
        with open(path, "rb") as fh:
            r = self.stack.api("POST", "/api/videos", data={"project_id": self.project["id"]},
                               files={"file": (path.name, fh)})
        assert r.status_code == 201, r.text
        return r.json()

    def submit(self, kind: str, token: str) -> tuple[str, str | None]:
        """Submit one job over HTTP; returns (job id, id of its export/import/test session record)."""
        st = self.stack
        if kind in ("probe", "probe-gpu", "poison"):
            body = {"queue": "gpu" if kind == "probe-gpu" else "cpu", "steps": 3, "step_seconds": 0.02}
            if kind == "poison":
                body["crash_at_step"] = 1
            r = st.api("POST", "/api/jobs/probe", token=token, json=body)
            assert r.status_code == 202, r.text
            return r.json()["id"], None
        if kind == "export":
            r = st.api("POST", "/api/export/jobs", token=token, json={
                "job_name": "soak", "export_type": "annotations", "format": "csv",
                "scope_filter": {"annotation_session_ids": [self.session["id"]]}})
        elif kind == "import":
            r = st.api("POST", "/api/import/jobs", token=token, data={
                "job_name": "soak", "import_type": "annotations", "source_format": "csv",
                "project_id": self.project["id"], "video_id": self.clip["id"]},
                files={"file": ("import.csv", self.csv_bytes)})
        else:
            r = st.api("POST", "/api/test-sessions", token=token, json={
                "project_id": self.project["id"], "video_id": self.street["id"], "model": "opencv/hog-people",
                "batch_size": 2, "frame_to": 1})
        assert r.status_code == 202, r.text
        return r.json()["job_id"], r.json()["id"]


class Chaos(threading.Thread):
    """Every few seconds SIGKILL a random worker: its busy pool process, or the whole worker."""

    def __init__(self, stack: Stack, interval: float, rng: random.Random) -> None:
        super().__init__(name="chaos", daemon=True)
        self.stack, self.interval, self.rng = stack, interval, rng
        self.stop = threading.Event()
        self.kills: Counter[str] = Counter()
        self.lock = threading.Lock()  # held while a worker is down, so the end waits for its restart

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            name = self.rng.choice(sorted(WORKERS))
            with self.lock:
                if self.rng.random() < 0.5:
                    proc = self.stack.procs.get(name)
                    children = psutil.Process(proc.pid).children() if proc and proc.poll() is None else []
                    if children:
                        try:
                            children[0].send_signal(signal.SIGKILL)
                            self.kills["pool process"] += 1
                        except psutil.NoSuchProcess:
                            pass
                else:
                    self.stack.kill_worker_hard(name)
                    self.kills["whole worker"] += 1
                    self.stack.start_worker(WORKERS[name], name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--chaos-interval", type=float, default=3.0, help="seconds between kills (0: no chaos)")
    ap.add_argument("--window", type=int, default=24, help="most unfinished jobs at a time")
    ap.add_argument("--poison", type=int, default=None, help="poison probes among the jobs (default jobs/500)")
    ap.add_argument("--mix", default="probe=4,export=2,import=2,detection=2", help="relative weights per kind")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    weights = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    poison = max(1, args.jobs // 500) if args.poison is None else args.poison
    plan = rng.choices(sorted(weights), [weights[k] for k in sorted(weights)], k=args.jobs - poison)
    plan = [("probe-gpu" if k == "probe" and rng.random() < 0.5 else k) for k in plan]
    for _ in range(poison):
        plan.insert(rng.randrange(len(plan) + 1), "poison")

    tmp = Path(tempfile.mkdtemp(prefix="vru-soak-"))
    server = RedisServer(tmp / "redis")
    server.start()
    url, drop = make_database(args.database, tmp, "vru_soak")
    migrate(url)
    engine = create_engine(url)
    stack = Stack(tmp, url, server.url, JOB_STALE_AFTER_SECONDS="6", RATE_LIMIT_UPLOAD="1000000 per hour",
                  RATE_LIMIT_DEFAULT="1000000 per minute")
    chaos = Chaos(stack, args.chaos_interval, rng)
    try:
        stack.start_web()
        for name, queue in WORKERS.items():
            stack.start_worker(queue, name)
        stack.start_beat()
        fx = Fixtures(stack, tmp, engine)
        token = stack.token()
        print(f"soak: {args.jobs} jobs ({dict(Counter(plan))}) on {args.database}, "
              f"chaos every {args.chaos_interval}s, window {args.window}", flush=True)
        submitted: dict[str, tuple[str, str | None]] = {}  # job id -> (kind, record id)
        t_start = time.time()
        if args.chaos_interval > 0:
            chaos.start()

        def unfinished() -> int:
            with engine.connect() as conn:
                done = conn.scalar(select(func.count()).select_from(Job).where(Job.status.in_(TERMINAL)))
            return len(submitted) - done

        with ThreadPoolExecutor(4) as pool:
            i = 0
            last_report = time.time()
            while i < len(plan):
                free = args.window - unfinished()
                if free <= 0:
                    time.sleep(0.05)
                    continue
                batch = plan[i:i + free]
                for kind, (job_id, record) in zip(batch, pool.map(lambda k: fx.submit(k, token), batch),
                                                  strict=True):
                    submitted[job_id] = (kind, record)
                i += len(batch)
                if time.time() - last_report > 30:
                    last_report = time.time()
                    print(f"  {i}/{len(plan)} submitted after {last_report - t_start:.0f}s, kills {dict(chaos.kills)}",
                          flush=True)

        def all_terminal() -> bool:
            with engine.connect() as conn:
                return conn.scalar(select(func.count()).select_from(Job).where(Job.status.in_(TERMINAL))) \
                    >= len(submitted)
        try:
            wait_until(all_terminal, args.drain_timeout, 0.5, "every job to end")
        except AssertionError:
            pass  # reported below as unfinished
        t_end = time.time()
        chaos.stop.set()
        if chaos.is_alive():
            chaos.join()
        return report(args, stack, engine, fx, submitted, chaos, t_start, t_end)
    finally:
        chaos.stop.set()
        stack.close()
        engine.dispose()
        server.stop()
        drop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args, stack: Stack, engine, fx: Fixtures, submitted: dict, chaos: Chaos, t_start: float,
           t_end: float) -> int:
    problems: list[str] = []
    ids = [uuid.UUID(j) for j in submitted]
    with engine.connect() as conn:
        rows = {str(r.id): r for r in conn.execute(
            select(Job.id, Job.status, Job.error, Job.attempts, Job.created_at, Job.started_at, Job.finished_at)
            .where(Job.id.in_(ids))).all()}
    missing = [j for j in submitted if j not in rows]
    if missing:
        problems.append(f"{len(missing)} job(s) missing from the database")
    status = Counter(r.status for r in rows.values())
    for job_id, (kind, _) in submitted.items():
        r = rows.get(job_id)
        if r is None:
            continue
        if kind == "poison":
            if r.status != "failed" or "giving up after" not in (r.error or ""):
                problems.append(f"poison job {job_id} ended {r.status}: {r.error}")
        elif r.status != "completed":
            problems.append(f"{kind} job {job_id} ended {r.status}: {r.error}")

    # Nothing doubled.
    by_kind: dict[str, list[str]] = {}
    for job_id, (kind, record) in submitted.items():
        if rows.get(job_id) is not None and rows[job_id].status == "completed" and record:
            by_kind.setdefault(kind, []).append(record)
    with engine.connect() as conn:
        counts = dict(conn.execute(select(DetectionEvent.test_session_id, func.count())
                                   .group_by(DetectionEvent.test_session_id)).all())
        dupes = conn.execute(select(DetectionEvent.test_session_id).group_by(
            DetectionEvent.test_session_id, DetectionEvent.frame_number, DetectionEvent.detection_index)
            .having(func.count() > 1)).all()
        exports = {str(e.id): e for e in conn.execute(select(ExportJob)).all()}
    if dupes:
        problems.append(f"{len(dupes)} duplicated detection (frame, index) keys")
    det_counts = Counter(counts.get(uuid.UUID(ts), 0) for ts in by_kind.get("detection", []))
    if len(det_counts) > 1:
        problems.append(f"detection sessions differ in their number of events: {dict(det_counts)}")
    export_dir = stack.workdir / "storage" / "exports"
    files = sorted(p.name for p in export_dir.iterdir()) if export_dir.exists() else []
    partial = [f for f in files if f.startswith(".")]
    if partial:
        problems.append(f"{len(partial)} partial export file(s) left: {partial[:3]}")
    completed_exports = by_kind.get("export", [])
    if len([f for f in files if not f.startswith(".")]) != len(completed_exports):
        problems.append(f"{len(files)} export files for {len(completed_exports)} completed exports")
    digests = set()
    for export_id in completed_exports:
        e = exports[export_id]
        data = (stack.workdir / "storage" / e.file_path).read_bytes() if e.file_path else b""
        if e.status != "completed" or e.file_size != len(data) or e.sha256 != hashlib.sha256(data).hexdigest():
            problems.append(f"export {export_id} record does not match its file ({e.status})")
        digests.add(e.sha256)
    if len(digests) > 1:
        problems.append(f"exports of the same session differ: {len(digests)} distinct files")
    token = stack.token()
    import_counts = Counter()
    for import_id in by_kind.get("import", []):
        imp = stack.api("GET", f"/api/import/jobs/{import_id}", token=token).json()
        session_id = imp.get("annotation_session_id")
        with engine.connect() as conn:
            import_counts[conn.scalar(select(func.count()).select_from(VideoAnnotation).where(
                VideoAnnotation.annotation_session_id == uuid.UUID(session_id))) if session_id else -1] += 1
    if len(import_counts) > 1:
        problems.append(f"import sessions differ in their number of annotations: {dict(import_counts)}")

    # Timings.
    done = [r for r in rows.values() if r.started_at and r.finished_at]
    waits = {k: [] for k in ("all", *KINDS)}
    e2e = {k: [] for k in ("all", *KINDS)}
    for job_id, (kind, _) in submitted.items():
        r = rows.get(job_id)
        if r is None or not (r.started_at and r.finished_at) or kind == "poison":
            continue
        k = "probe" if kind.startswith("probe") else kind
        for key in ("all", k):
            waits[key].append((r.started_at - r.created_at).total_seconds())
            e2e[key].append((r.finished_at - r.created_at).total_seconds())
    attempts = Counter(r.attempts for r in rows.values())
    print()
    print(f"jobs submitted {len(submitted)}, in the database {len(rows)}, statuses {dict(status)}")
    print(f"attempts per job {dict(sorted(attempts.items()))}; kills {dict(chaos.kills)}")
    print(f"detection events per session {dict(det_counts)}; annotations per import {dict(import_counts)}; "
          f"export files {len(files)} for {len(completed_exports)} exports")
    elapsed = t_end - t_start
    span = (max(r.finished_at for r in done) - min(r.created_at for r in rows.values())).total_seconds() \
        if done else float("nan")
    print(f"wall {elapsed:.1f}s; {len(done)} jobs ended in {span:.1f}s from the first submission: "
          f"{len(done) / span:.2f} jobs/s")
    print(f"{'kind':<10} {'n':>6} {'wait p50':>9} {'wait p99':>9} {'e2e p50':>9} {'e2e p99':>9}")
    for k in ("all", *KINDS):
        if waits[k]:
            print(f"{k:<10} {len(waits[k]):>6} {pct(waits[k], .5):>8.2f}s {pct(waits[k], .99):>8.2f}s "
                  f"{pct(e2e[k], .5):>8.2f}s {pct(e2e[k], .99):>8.2f}s")
    if waits["all"]:
        print(f"mean end-to-end {statistics.fmean(e2e['all']):.2f}s")
    if problems:
        print(f"\nFAILED: {len(problems)} problem(s)")
        for p in problems[:30]:
            print("  " + p)
        return 1
    print("\nOK: every job ended as expected, none lost, none doubled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
