"""Queue overhead: jobs through our HTTP API versus raw Celery, on the same workers.

Both paths run side by side in one run against one private Redis and one database:

* ours: ``POST /api/jobs/probe {queue: cpu, steps: 0}`` — HTTP, validation, job row, outbox
  dispatch, claim, progress, result row;
* raw:  ``apply_async`` of ``maintenance.ping`` — a message and nothing else.

Reported: submit→processing latency (p50, p99) unloaded (one job at a time) and under load
(a burst of N jobs from several client threads), and completed jobs per second in the burst.

    python bench/queue_overhead.py [--jobs 2000] [--database postgresql|sqlite]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import redis  # noqa: E402
from harness import RedisServer, Stack, wait_until  # noqa: E402
from sqlalchemy import create_engine, func, select  # noqa: E402

from bench.common import make_database, pct  # noqa: E402
from models import Job, migrate  # noqa: E402


class Ours:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.engine = create_engine(stack.database_url)
        self.token = stack.token()

    def submit(self) -> tuple[str, float]:
        t0 = time.time()
        r = self.stack.api("POST", "/api/jobs/probe", token=self.token,
                           json={"queue": "cpu", "steps": 0, "step_seconds": 0})
        assert r.status_code == 202, r.text
        return r.json()["id"], t0

    def started(self, ids: list[str]) -> dict[str, float]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Job.id, Job.started_at).where(
                Job.id.in_([uuid.UUID(i) for i in ids]), Job.started_at.is_not(None))).all()
        return {str(i): s.timestamp() for i, s in rows}

    def completed(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Job).where(Job.status == "completed"))


class Raw:
    def __init__(self, redis_url: str) -> None:
        from tasks.app import app

        app.conf.broker_url = redis_url
        self.app = app
        self.key = f"bench:ping:{uuid.uuid4().hex}"
        self.redis = redis.Redis.from_url(redis_url)

    def submit(self) -> tuple[str, float]:
        t0 = time.time()
        res = self.app.send_task("maintenance.ping", args=[self.key], queue="cpu")
        return res.id, t0

    def started(self, ids: list[str]) -> dict[str, float]:
        return {k.decode(): float(v) for k, v in self.redis.hgetall(self.key).items()}

    def completed(self) -> int:
        return self.redis.hlen(self.key)


def unloaded(path, n: int) -> list[float]:
    """One job at a time: submit, wait until it is processing, next."""
    latencies = []
    for _ in range(n):
        job_id, t0 = path.submit()
        started = wait_until(lambda j=job_id: path.started([j]).get(j), 30, 0.002, "job start")
        latencies.append(started - t0)
    return latencies


def burst(path, n: int, clients: int) -> tuple[list[float], float]:
    base = path.completed()
    t0 = time.time()
    with ThreadPoolExecutor(clients) as pool:
        submitted = list(pool.map(lambda _i: path.submit(), range(n)))
    wait_until(lambda: path.completed() - base >= n, 600, 0.05, "burst to complete")
    elapsed = time.time() - t0
    started = path.started([i for i, _ in submitted])
    return [started[i] - t for i, t in submitted], n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--unloaded", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cpu-concurrency", type=int, default=2)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    server = RedisServer(tmp / "redis")
    server.start()
    url, drop = make_database(args.database, tmp, "vru_bench")
    migrate(url)
    stack = Stack(tmp, url, server.url, JOB_HEARTBEAT_SECONDS="2", PROGRESS_EMIT_INTERVAL_SECONDS="0.2",
                  PROGRESS_DB_INTERVAL_SECONDS="2", OUTBOX_INTERVAL_SECONDS="1")
    try:
        stack.start_web()
        stack.start_worker("cpu", "cpu1", concurrency=args.cpu_concurrency)
        ours, raw = Ours(stack), Raw(server.url)
        for path in (ours, raw):  # warm up connections and imports
            unloaded(path, 10)
        results = {}
        for name, path in (("ours", ours), ("raw", raw)):
            lat_idle = unloaded(path, args.unloaded)
            lat_load, rate = burst(path, args.jobs, args.clients)
            results[name] = (lat_idle, lat_load, rate)
        print(f"queue overhead: {args.jobs} jobs in a burst from {args.clients} clients, {args.unloaded} unloaded; "
              f"database {args.database}; one CPU worker, concurrency {args.cpu_concurrency}")
        print(f"{'':24}{'ours (HTTP job)':>18}{'raw Celery':>14}{'ratio':>10}")
        rows = [
            ("p50 latency, unloaded", lambda r: statistics.median(r[0]) * 1000, "ms"),
            ("p99 latency, unloaded", lambda r: pct(r[0], 0.99) * 1000, "ms"),
            ("p50 latency, burst", lambda r: statistics.median(r[1]) * 1000, "ms"),
            ("p99 latency, burst", lambda r: pct(r[1], 0.99) * 1000, "ms"),
            ("throughput, burst", lambda r: r[2], "jobs/s"),
        ]
        for label, fn, unit in rows:
            a, b = fn(results["ours"]), fn(results["raw"])
            print(f"{label:24}{a:>12.1f} {unit:<6}{b:>8.1f} {unit:<6}{a / b:>8.2f}x")
    finally:
        stack.close()
        server.stop()
        drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
