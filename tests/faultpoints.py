"""The platform's Celery app with one fault point, for workers started by the fault tests.

``celery -A faultpoints worker`` runs the real tasks unchanged. When the file named by
``FAULT_HOLD_FILE`` holds a stage prefix, a job that announces a matching stage (written to
its row like any stage) stays at that progress point until someone cancels it, then notices
the cancellation right there, as a long stage would at its next progress point. The job's
heartbeat keeps beating meanwhile. A test can so cancel a job in a chosen stage, however
short that stage is, without racing it: it waits for the stage on the job row, then cancels.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from tasks import app, lifecycle

HOLD_FILE = os.environ.get("FAULT_HOLD_FILE")
#: A held job that nobody cancels goes on after this long (the test waiting for it fails).
HOLD_LIMIT_SECONDS = 120.0

_update = lifecycle.ProgressReporter.update


def _hold_prefix() -> str | None:
    if not HOLD_FILE:
        return None
    try:
        return Path(HOLD_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def _update_with_hold(self: lifecycle.ProgressReporter, percent: float, stage: str | None = None,
                      checkpoint: dict | None = None) -> None:
    entering = stage is not None and stage != self.stage
    _update(self, percent, stage, checkpoint)
    prefix = _hold_prefix() if entering else None
    if prefix is None or not stage.startswith(prefix):
        return
    beat = self.heartbeat
    deadline = time.monotonic() + HOLD_LIMIT_SECONDS
    while time.monotonic() < deadline:
        if beat is not None and beat.lost:
            raise lifecycle.JobLost(str(self.job.id))
        if beat is not None and beat.cancel_requested:
            raise lifecycle.JobCancelled(str(self.job.id))
        time.sleep(0.05)


lifecycle.ProgressReporter.update = _update_with_hold

__all__ = ["app"]
