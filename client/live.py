"""Following jobs and validation runs to their end: live over Socket.IO, else by polling.

The socket path joins the thing's room and reads the snapshot the subscription answers, so
nothing that happened before it is missed; when the socket cannot connect (refused, blocked by
a proxy) the same loop polls the API. Either way the final state is read from the API: the
database is the source of truth, live events are best effort.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import PlatformError
from .transport import Transport

JobUpdate = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Followed:
    """What to follow: its room's subscribe event, its live events, how to poll it."""

    kind: str
    subscribe_event: str
    id_field: str  # the id's key in the subscribe payload and in events
    events: tuple[str, ...]
    terminal: tuple[str, ...]
    path: str  # API path of one, with {id}
    state_of: Callable[[dict[str, Any]], dict[str, Any]]  # API object -> event-shaped state


JOBS = Followed("job", "subscribe_job", "job_id", ("job_progress", "job_snapshot"),
                ("completed", "failed", "cancelled"), "/api/jobs/{id}",
                lambda job: {**job, "job_id": str(job.get("id") or job.get("job_id")), "seq": int(job.get("seq") or 0)})
RUNS = Followed("validation run", "validation_run_subscribe", "run_id",
                ("validation_run_progress", "validation_run_snapshot"),
                ("completed", "partial", "failed", "cancelled"), "/api/validation-runs/{id}",
                lambda run: {**(run.get("progress") or {}), "run_id": str(run.get("id")), "status": run.get("status"),
                             "seq": int((run.get("progress") or {}).get("seq") or 0)})


class Watcher:
    """Wait for a set of jobs (or runs); ``on_update`` receives every newer state (by ``seq``)."""

    def __init__(self, transport: Transport, followed: Followed = JOBS, *, live: bool = True,
                 poll_interval: float = 1.0, connect_timeout: float = 10.0, socketio_url: str | None = None) -> None:
        self.transport, self.followed = transport, followed
        self.live, self.poll_interval, self.connect_timeout = live, poll_interval, connect_timeout
        self.socketio_url = socketio_url or transport.base_url
        self.mode = "polling"  # which path the last wait used: scripts and tests read it

    def wait(self, ids: Iterable[str], on_update: JobUpdate | None = None,
             timeout: float | None = None) -> dict[str, dict[str, Any]]:
        f = self.followed
        ids = [str(i) for i in ids]
        states: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        finished = threading.Event()

        def take(state: dict[str, Any]) -> None:
            key = str(state.get(f.id_field) or "")
            if key not in ids:
                return
            with lock:
                old = states.get(key)
                if old is not None and int(state.get("seq", 0) or 0) < int(old.get("seq", 0) or 0):
                    return
                states[key] = {**(old or {}), **state, f.id_field: key}
                done = all(states.get(i, {}).get("status") in f.terminal for i in ids)
            if on_update:
                on_update(states[key])
            if done:
                finished.set()

        deadline = None if timeout is None else time.monotonic() + timeout
        sio = self._connect(take) if self.live else None
        try:
            self.mode = "socket" if sio is not None else "polling"
            if sio is not None:
                for key in ids:
                    answer = sio.call(f.subscribe_event, {f.id_field: key}, timeout=self.connect_timeout)
                    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                        e = answer["error"]
                        raise PlatformError(0, e.get("code", "error"), e.get("message", ""), e.get("details"))
            # On the socket path too, poll now and then: pub/sub is best effort.
            interval = self.poll_interval if sio is None else max(5.0, self.poll_interval)
            while not finished.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    left = [i for i in ids if states.get(i, {}).get("status") not in f.terminal]
                    raise TimeoutError(f"{f.kind}s still running after {timeout} s: {', '.join(left)}")
                for key in ids:
                    if states.get(key, {}).get("status") not in f.terminal:
                        take(f.state_of(self.transport.json("GET", f.path.format(id=key))))
                finished.wait(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        finally:
            if sio is not None:
                try:
                    sio.disconnect()
                except Exception:  # noqa: BLE001 - already gone
                    pass
        return {i: self.transport.json("GET", f.path.format(id=i)) for i in ids}

    def _connect(self, take: JobUpdate) -> Any | None:
        import socketio

        sio = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=5)
        for event in self.followed.events:
            sio.on(event, take)
        try:
            sio.connect(self.socketio_url, auth={"token": self.transport.token} if self.transport.token else None,
                        transports=["websocket", "polling"], wait_timeout=self.connect_timeout)
        except Exception:  # noqa: BLE001 - refused or unreachable: poll instead
            return None
        return sio
