"""Following jobs to their end: live over Socket.IO, falling back to polling the API.

The socket path subscribes to ``job_{id}`` rooms and reads the snapshot each subscription
answers, so nothing that happened before the subscription is missed; when the socket cannot
connect (refused, blocked by a proxy) the same loop polls ``GET /api/jobs/{id}``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .errors import PlatformError
from .transport import Transport

TERMINAL = ("completed", "failed", "cancelled")
JobUpdate = Callable[[dict[str, Any]], None]


class JobWatcher:
    """Wait for a set of jobs; ``on_update`` receives every newer state (by ``seq``) of each."""

    def __init__(self, transport: Transport, *, live: bool = True, poll_interval: float = 1.0,
                 connect_timeout: float = 10.0, socketio_url: str | None = None) -> None:
        self.transport = transport
        self.socketio_url = socketio_url or transport.base_url
        self.live, self.poll_interval, self.connect_timeout = live, poll_interval, connect_timeout
        self.mode = "polling"  # which path the last wait used: scripts and tests read it

    def wait(self, job_ids: Iterable[str], on_update: JobUpdate | None = None,
             timeout: float | None = None) -> dict[str, dict[str, Any]]:
        ids = [str(j) for j in job_ids]
        states: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        finished = threading.Event()

        def take(state: dict[str, Any]) -> None:
            job_id = str(state.get("job_id") or state.get("id") or "")
            if job_id not in ids:
                return
            with lock:
                old = states.get(job_id)
                if old is not None and int(state.get("seq", 0)) < int(old.get("seq", 0)):
                    return
                states[job_id] = {**(old or {}), **state, "job_id": job_id}
                done = all(states.get(j, {}).get("status") in TERMINAL for j in ids)
            if on_update:
                on_update(states[job_id])
            if done:
                finished.set()

        deadline = None if timeout is None else time.monotonic() + timeout
        sio = self._connect(take) if self.live else None
        try:
            if sio is not None:
                self.mode = "socket"
                for job_id in ids:
                    answer = sio.call("subscribe_job", {"job_id": job_id}, timeout=self.connect_timeout)
                    if isinstance(answer, dict) and answer.get("error"):
                        err = answer["error"]
                        raise PlatformError(0, err.get("code", "error"), err.get("message", ""), err.get("details"))
                    if isinstance(answer, dict) and isinstance(answer.get("job"), dict):
                        take(answer["job"])
            else:
                self.mode = "polling"
            # Even on the socket path, poll now and then: pub/sub is best effort.
            interval = self.poll_interval if sio is None else max(5.0, self.poll_interval)
            while not finished.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"jobs still running after {timeout} s: "
                                       + ", ".join(j for j in ids if states.get(j, {}).get("status") not in TERMINAL))
                for job_id in ids:
                    if states.get(job_id, {}).get("status") not in TERMINAL:
                        take(_as_state(self.transport.json("GET", f"/api/jobs/{job_id}")))
                left = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
                finished.wait(left)
        finally:
            if sio is not None:
                try:
                    sio.disconnect()
                except Exception:  # noqa: BLE001 - already gone
                    pass
        # The final states come from the database: the job row is the source of truth.
        return {j: self.transport.json("GET", f"/api/jobs/{j}") for j in ids}

    def _connect(self, take: JobUpdate) -> Any | None:
        try:
            import socketio
        except ImportError:  # pragma: no cover - python-socketio is a dependency
            return None
        sio = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=5)
        sio.on("job_progress", take)
        sio.on("job_snapshot", take)
        try:
            sio.connect(self.socketio_url, auth={"token": self.transport.token} if self.transport.token else None,
                        transports=["websocket", "polling"], wait_timeout=self.connect_timeout)
        except Exception:  # noqa: BLE001 - refused or unreachable: poll instead
            return None
        return sio


def _as_state(job: dict[str, Any]) -> dict[str, Any]:
    """A job row from the API in the shape of a ``job_progress`` event."""
    return {**job, "job_id": str(job.get("id") or job.get("job_id")), "seq": int(job.get("seq") or 0)}
