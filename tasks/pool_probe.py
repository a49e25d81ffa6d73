"""``probe``: a job that only reports progress, for checking a pool end to end."""
from __future__ import annotations

import os
import signal
from typing import Any

from celery import Task

from .app import app
from .lifecycle import JobContext, run_job


def probe_body(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.params.get("steps", 10))
    step_seconds = float(ctx.params.get("step_seconds", 0.5))
    start = int((ctx.checkpoint or {}).get("step", 0))
    crash_at = ctx.params.get("crash_at_step")
    for step in range(start, steps):
        if crash_at is not None and step >= crash_at:
            # Lets operators rehearse a worker dying mid-job: redelivery, resume, the cap.
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.sleep(step_seconds)
        ctx.progress((step + 1) * 100.0 / steps, f"step {step + 1}/{steps}", checkpoint={"step": step + 1})
    return {"steps": steps, "resumed_from_step": start, "attempt": ctx.attempt, "worker": ctx.worker,
            "queue": ctx.queue}


@app.task(name="jobs.probe", bind=True)
def probe(self: Task, job_id: str) -> dict[str, Any]:
    return run_job(self, job_id, probe_body)
