"""Real processes for tests: web, Celery workers, private Redis servers, Socket.IO clients."""
from __future__ import annotations

import fractions
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import socketio
from xdist_redis import db_offset

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


#: Redis for tests that start their own stack; ``TEST_REDIS_URL`` moves every test to another server.
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
UNIT_REDIS_URL = f"{REDIS_BASE}/{13 - db_offset()}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A private redis-server for tests that stop and restart Redis."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from workers.embedded_redis import redis_answers, redis_server_binary

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis_answers("127.0.0.1", self.port, 0.2), 10, what="private redis")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class PostgresServer:
    """A private PostgreSQL cluster (run as the ``postgres`` user) for tests that stop it."""

    def __init__(self) -> None:
        import glob
        import tempfile

        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.port = free_port()
        # Outside pytest's private (0700) temp tree, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="vru-pg-"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "pgdata"
        self.sock = self.root / "pgsock"

    def _as_postgres(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        for d in (self.data, self.sock):
            d.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(d, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.sock / "log"),
                          "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


class Stack:
    """The platform's processes for one database and one Redis, started as real subprocesses."""

    def __init__(self, workdir: Path, database_url: str, redis_url: str, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin_password = "admin-password-1"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VAR_DIR": str(workdir),
            "STORAGE_DIR": str(workdir / "storage"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "SOCKETIO_CHANNEL": f"test-{uuid.uuid4().hex[:8]}",
            "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": self.admin_password,
            "JOB_HEARTBEAT_SECONDS": "0.5",
            "JOB_STALE_AFTER_SECONDS": "8",
            "JOB_LOST_MESSAGE_AFTER_SECONDS": "5",
            "PROGRESS_DB_INTERVAL_SECONDS": "0.5",
            "PROGRESS_EMIT_INTERVAL_SECONDS": "0.1",
            "OUTBOX_INTERVAL_SECONDS": "0.5",
            "CORS_ORIGINS": "http://localhost",
            "RATE_LIMIT_DEFAULT": "100000 per minute",
            **env,
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis_url = redis_url
        self._starts: dict[str, int] = {}
        self.database_url = database_url
        self.redis_url = redis_url
        self._token: str | None = None

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, cmd: list[str], **extra_env: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_web(self, name: str = "web") -> str:
        """Start a web process; a second one (another name) shares the database and Redis."""
        port = self.port if name == "web" else free_port()
        base = f"http://127.0.0.1:{port}"
        self._spawn(name, [PYTHON, "-m", "webapp"], PORT=str(port))
        wait_until(lambda: self._web_up(name, base), 60, 0.2, f"{name} process")
        return base

    def _web_up(self, name: str, base: str) -> bool:
        if self.procs[name].poll() is not None:
            raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
        try:
            return requests.get(base + "/api/health", timeout=2).status_code in (200, 503)
        except requests.RequestException:
            return False

    def start_worker(self, queue: str, name: str, concurrency: int = 1, wait: bool = True) -> subprocess.Popen:
        """One Celery worker consuming ``queue``; pinned CPU-only like the real pools."""
        cmd = [PYTHON, "-m", "celery", "-A", "tasks", "worker", "-Q", queue, "-P", "prefork", "-c",
               str(concurrency), "--prefetch-multiplier", "1", "-E", "-n", f"{name}@%h", "--loglevel", "INFO",
               "--without-mingle", "--without-gossip"]
        self._starts[name] = self._starts.get(name, 0) + 1
        proc = self._spawn(name, cmd, CUDA_VISIBLE_DEVICES="")
        if wait:
            wait_until(lambda: self._ready(name), 60, 0.2, f"worker {name}")
        return proc

    def start_beat(self) -> subprocess.Popen:
        return self._spawn("beat", [PYTHON, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO",
                                    "-s", str(self.workdir / "celerybeat-schedule")])

    def kill_worker_hard(self, name: str) -> None:
        """SIGKILL a worker and its pool processes at once, as a lost host would."""
        import psutil

        proc = self.procs.pop(name)
        victims = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()

    def _ready(self, name: str) -> bool:
        if self.procs[name].poll() is not None:
            raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
        return self.log(name).count(f"{name}@") and self.log(name).count(" ready.") >= self._starts.get(name, 1)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    # ------------------------------------------------------------------ HTTP

    def token(self, username: str = "admin", password: str | None = None) -> str:
        if username == "admin" and password is None and self._token:
            return self._token
        r = self.api("POST", "/api/auth/token", token=None,
                     json={"username": username, "password": password or self.admin_password})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        if username == "admin" and password is None:
            self._token = token
        return token

    def api(self, method: str, path: str, token: str | None = "admin", **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token == "admin":
            token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base + path, headers=headers, timeout=kwargs.pop("timeout", 30),
                                **kwargs)

    def create_user(self, username: str, role: str, password: str = "password-123") -> tuple[str, str]:
        r = self.api("POST", "/api/users", json={"username": username, "password": password, "role": role})
        assert r.status_code == 201, r.text
        return r.json()["id"], self.token(username, password)

    def probe(self, queue: str, steps: int = 5, step_seconds: float = 0.1, token: str = "admin", **extra):
        return self.api("POST", "/api/jobs/probe", token=token,
                        json={"queue": queue, "steps": steps, "step_seconds": step_seconds, **extra})

    def job(self, job_id: str) -> dict:
        r = self.api("GET", f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, job_id: str, statuses=("completed", "failed", "cancelled"), timeout: float = 60) -> dict:
        return wait_until(lambda: (j := self.job(job_id))["status"] in statuses and j, timeout, 0.1,
                          f"job {job_id} to reach {statuses}")

    def wait_job_db(self, job_id: str, timeout: float = 60) -> str:
        """Wait for a terminal status reading the database directly (for when no web process runs)."""
        from sqlalchemy import create_engine, select

        from models import Job

        engine = create_engine(self.database_url)
        try:
            def status():
                with engine.connect() as conn:
                    value = conn.scalar(select(Job.status).where(Job.id == uuid.UUID(job_id)))
                return value if value in ("completed", "failed", "cancelled") else None
            return wait_until(status, timeout, 0.2, f"job {job_id} in the database")
        finally:
            engine.dispose()

    def video_path(self, video_id: str) -> str:
        """Where the stored copy of an uploaded video lies, relative to the storage directory."""
        from sqlalchemy import create_engine, select

        from models import Video

        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.scalar(select(Video.storage_path).where(Video.id == uuid.UUID(video_id)))
        finally:
            engine.dispose()

    def socket(self, token: str | None = "admin", base: str | None = None) -> EventClient:
        client = EventClient()
        client.connect(base or self.base, self.token() if token == "admin" else token)
        return client

    def refused_connection(self, token: str, base: str | None = None) -> Any:
        """Connect with a token the server should refuse; return the error it answered."""
        client = socketio.Client(reconnection=False)
        errors: list[Any] = []
        client.on("connect_error", lambda data=None: errors.append(data))
        try:
            client.connect(base or self.base, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            return errors[0] if errors else None
        client.disconnect()
        raise AssertionError("the server accepted the connection")


class EventClient:
    """A python-socketio client that records every event it receives."""

    def __init__(self) -> None:
        self.sio = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
        self.events: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

        @self.sio.on("*")
        def _any(event, data=None):
            with self._cond:
                self.events.append((event, data))
                self._cond.notify_all()

    def connect(self, url: str, token: str | None) -> None:
        self.sio.connect(url, auth={"token": token} if token else None, transports=["websocket"], wait_timeout=10)

    def call(self, event: str, data: dict, timeout: float = 10) -> Any:
        return self.sio.call(event, data, timeout=timeout)

    def of(self, event: str, **match) -> list[Any]:
        with self._cond:
            return [d for e, d in self.events if e == event and all(d.get(k) == v for k, v in match.items())]

    def wait_for(self, event: str, predicate: Callable[[Any], bool] = lambda _d: True, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e, d in self.events:
                    if e == event and predicate(d):
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {event} event matching within {timeout}s; got {self.events[-5:]}")
                self._cond.wait(left)

    def since(self, mark: int, event: str) -> list[Any]:
        """Events of that name received after the first ``mark`` events."""
        with self._cond:
            return [d for e, d in self.events[mark:] if e == event]

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def close(self) -> None:
        self.sio.disconnect()


@contextmanager
def own_stack(tmp_path: Path, redis_url: str = UNIT_REDIS_URL, *, database_url: str | None = None,
              workers: tuple[tuple[str, str], ...] = (), beat: bool = False, **env: str) -> Iterator[Stack]:
    """A stack of a test's own: a migrated database (a SQLite file unless ``database_url``), its web
    process, the given ``(queue, name)`` workers and beat if asked, on its own Socket.IO channel;
    every process stopped at the end."""
    from models import migrate

    url = database_url or f"sqlite:///{tmp_path / f'own-{uuid.uuid4().hex[:8]}.db'}"
    migrate(url)
    st = Stack(tmp_path, url, redis_url, **env)
    try:
        st.start_web()
        for queue, name in workers:
            st.start_worker(queue, name)
        if beat:
            st.start_beat()
        yield st
    finally:
        st.close()


def start_flower(stack: Stack, basic_auth: str) -> tuple[subprocess.Popen, str]:
    """``python -m workers flower`` on a free port for this stack; returns the process and its URL
    once it answers (its health check needs no credentials)."""
    port = free_port()
    env = {**stack.env, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": basic_auth}
    flower = subprocess.Popen([PYTHON, "-m", "workers", "flower"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(base + "/healthcheck", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    wait_until(up, 60, 0.3, "flower")
    return flower, base


def make_clip(path: Path, frames: int = 40, fps: float = 10.0, size: tuple[int, int] = (320, 240)) -> Path:
    """A small MJPG clip with a moving square, written with OpenCV."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 80, np.uint8)
        cv2.rectangle(img, (10 + 5 * i, 50), (40 + 5 * i, 120), (0, 200, 255), -1)
        writer.write(img)
    writer.release()
    return path


def project_with_video(stack: Stack, tmp_path: Path, token: str = "admin", frames: int = 40,
                       fps: float = 10.0) -> tuple[dict, dict]:
    project = stack.api("POST", "/api/projects", token=token, json={"name": f"p-{uuid.uuid4().hex[:6]}"}).json()
    clip = make_clip(tmp_path / f"clip-{uuid.uuid4().hex[:6]}.avi", frames, fps)
    with open(clip, "rb") as fh:
        r = stack.api("POST", "/api/videos", token=token, data={"project_id": project["id"]},
                      files={"file": (clip.name, fh, "video/x-msvideo")})
    assert r.status_code == 201, r.text
    return project, r.json()


def write_video(path: Path, pts_ms: list[int], draw: Callable[[int], Any], size=(160, 120)) -> Path:
    """Encode one frame per presentation time (milliseconds), so the file can have any timing."""
    import av
    import numpy as np

    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=30)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = fractions.Fraction(1, 1000)
    for i, pts in enumerate(pts_ms):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(draw(i)[..., ::-1]), format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path
