"""Storage backends side by side, in one run against a real S3-compatible server (``rclone serve s3``).

1. A detection (OpenCV HOG through the detection pipeline, as a GPU-queue job runs it) on a video
   read from local storage, from the object store not yet cached (fetched into the worker's
   checksum cache), and from the object store cached (digest checked, then read locally).
2. Publishing a large file into the object store through the storage module (streamed multipart
   upload, as the web front does after an upload) against ``rclone copy`` of the same file to the
   same server; the peak memory of the uploading process is reported beside the file size.

    python bench/storage.py [--frames 60] [--upload-mib 512] [--repeat 3]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from objectstore import ACCESS_KEY, SECRET_KEY, ObjectStoreServer, rclone_binary  # noqa: E402

from storage import open_store  # noqa: E402


def detect(path: Path, frames: int) -> int:
    from vision.detectors import ModelSpec, load_detector
    from vision.pipeline import DetectionPipeline

    spec = ModelSpec.parse({"name": "opencv/hog-people"})
    pipeline = DetectionPipeline.from_spec(load_detector(spec, ROOT / "var" / "models"), spec, batch_size=4,
                                           end_frame=frames)
    return sum(len(r.detections) for r in pipeline.run(path))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def rss_during(fn) -> tuple[float, float, float]:
    """(seconds, RSS at start, highest RSS sampled while ``fn`` ran), in MiB."""
    import threading

    import psutil

    proc, top, done = psutil.Process(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            top[0] = max(top[0], proc.memory_info().rss / 2**20)
            time.sleep(0.02)

    start = proc.memory_info().rss / 2**20
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        seconds, _ = timed(fn)
    finally:
        done.set()
        thread.join()
    return seconds, start, top[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(ROOT.parent / "shared" / "data" / "video" / "vtest.avi"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--upload-mib", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    server = ObjectStoreServer(work / "objects").start()
    os.environ.update(server.env("bench"))
    try:
        video = Path(args.video)
        digest = hashlib.sha256(video.read_bytes()).hexdigest()
        local = open_store(None, work / "local")
        local.put_file("videos/v.avi", video)
        s3 = open_store("s3://bench/p", work / "host-b", endpoint_url=server.endpoint)
        s3.put_file("videos/v.avi", video)
        detect(local.local_path("videos/v.avi"), 4)  # load the model and warm the decoder once

        rows = {"local": [], "s3 uncached": [], "s3 cached": []}
        for _ in range(args.repeat):
            rows["local"].append(timed(lambda: detect(local.local_path("videos/v.avi", digest), args.frames)))
            shutil.rmtree(s3.cache.root, ignore_errors=True)
            rows["s3 uncached"].append(timed(lambda: detect(s3.local_path("videos/v.avi", digest), args.frames)))
            rows["s3 cached"].append(timed(lambda: detect(s3.local_path("videos/v.avi", digest), args.frames)))
        best = {k: min(t for t, _ in v) for k, v in rows.items()}
        found = {k: {n for _, n in v} for k, v in rows.items()}
        assert len({n for v in found.values() for n in v}) == 1, f"detections differ: {found}"
        print(f"detection, HOG, {args.frames} frames of {video.name} ({video.stat().st_size / 2**20:.1f} MiB), "
              f"best of {args.repeat}:")
        for k, t in best.items():
            print(f"  {k:12s} {t:7.3f} s   ratio to local {t / best['local']:.3f}x")

        big = work / "big.bin"
        with open(big, "wb") as fh:
            for _ in range(args.upload_mib):
                fh.write(os.urandom(1 << 20))
        t_store, rss_start, rss_top = rss_during(lambda: s3.put_file("videos/big.bin", big))
        assert s3.size("videos/big.bin") == big.stat().st_size
        env = {**os.environ, "RCLONE_CONFIG": "/dev/null", "RCLONE_CONFIG_B_TYPE": "s3",
               "RCLONE_CONFIG_B_PROVIDER": "Other", "RCLONE_CONFIG_B_ENDPOINT": server.endpoint,
               "RCLONE_CONFIG_B_ACCESS_KEY_ID": ACCESS_KEY, "RCLONE_CONFIG_B_SECRET_ACCESS_KEY": SECRET_KEY}
        t_rclone, _ = timed(lambda: subprocess.run([rclone_binary(), "copyto", str(big), "b:bench/p/videos/rc.bin"],
                                                   env=env, check=True))
        assert s3.size("videos/rc.bin") == big.stat().st_size
        mib = args.upload_mib
        print(f"upload of {mib} MiB into the object store:")
        print(f"  storage module (sha256 + multipart) {t_store:7.2f} s  {mib / t_store:7.1f} MiB/s   "
              f"RSS {rss_start:.0f} MiB at start, at most {rss_top:.0f} MiB while uploading")
        print(f"  rclone copyto                       {t_rclone:7.2f} s  {mib / t_rclone:7.1f} MiB/s")
        print(f"  ratio storage module / rclone: {t_store / t_rclone:.2f}x")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
