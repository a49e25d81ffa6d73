"""How the pools start: one pinned worker process per GPU, an autoscaled CPU pool.

The parent never touches CUDA: it counts GPUs with ``nvidia-smi`` (or trusts
``GPU_DEVICES``/``CUDA_VISIBLE_DEVICES``) and sets ``CUDA_VISIBLE_DEVICES`` in each child's
environment before that child's Python starts, so each worker sees exactly one device.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field


def die_with_parent() -> None:
    """Make the child get SIGTERM when its starter dies, even on SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover - not Linux
        pass


def visible_gpus(env: dict[str, str] | None = None) -> list[str]:
    """Device ids to pin one worker to each; empty when there is no GPU."""
    env = os.environ if env is None else env
    for key in ("GPU_DEVICES", "CUDA_VISIBLE_DEVICES"):
        if key in env:
            ids = [d.strip() for d in env[key].split(",") if d.strip()]
            return [] if ids in ([], ["-1"], ["none"]) else ids
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, _ in enumerate(row for row in out.splitlines() if row.startswith("GPU "))]


def celery_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "tasks", *args]


@dataclass
class ProcessSpec:
    name: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)


def gpu_pool_specs(loglevel: str = "INFO") -> list[ProcessSpec]:
    gpus = visible_gpus()
    common = ["worker", "-Q", "gpu", "-P", "prefork", "-c", "1", "--prefetch-multiplier", "1", "-E",
              "--loglevel", loglevel, "--without-mingle", "--without-gossip"]
    if not gpus:
        # No GPU: detection still runs, on the CPU, in a worker that sees no device at all.
        return [ProcessSpec("gpu0", celery_cmd(*common, "-n", "gpu0@%h"),
                            {"CUDA_VISIBLE_DEVICES": "", "WORKER_DEVICE": "cpu"})]
    return [ProcessSpec(f"gpu{i}", celery_cmd(*common, "-n", f"gpu{i}@%h"),
                        {"CUDA_VISIBLE_DEVICES": dev, "WORKER_DEVICE": "cuda:0"})
            for i, dev in enumerate(gpus)]


def cpu_pool_spec(name: str | None = None, autoscale: str | None = None, loglevel: str = "INFO") -> ProcessSpec:
    autoscale = autoscale or os.environ.get("CPU_AUTOSCALE") or "4,1"
    name = name or os.environ.get("CPU_WORKER_NAME") or "cpu"
    return ProcessSpec(name, celery_cmd("worker", "-Q", "cpu", "-P", "prefork", f"--autoscale={autoscale}", "-E",
                                        "--prefetch-multiplier", "1", "--loglevel", loglevel, "-n", f"{name}@%h",
                                        "--without-mingle", "--without-gossip"),
                       {"CUDA_VISIBLE_DEVICES": "", "WORKER_DEVICE": "cpu"})


class Supervisor:
    """Start processes, forward SIGTERM/SIGINT to them, and stop them all together."""

    def __init__(self, log_dir: str | None = None) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.log_dir = log_dir
        self.stopping = False

    def start(self, spec: ProcessSpec) -> subprocess.Popen:
        env = {**os.environ, **spec.env}
        out = None
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f"{spec.name}.log"), "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(spec.cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                preexec_fn=die_with_parent)
        self.procs[spec.name] = proc
        return proc

    def install_signal_handlers(self) -> None:
        def _handler(signum, _frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def wait(self) -> int:
        """Block until a signal or until any process exits; then stop the rest."""
        code = 0
        while not self.stopping:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping everything", file=sys.stderr)
                    code = proc.returncode or 1
                    self.stopping = True
                    break
            time.sleep(0.2)
        self.stop()
        return code

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
