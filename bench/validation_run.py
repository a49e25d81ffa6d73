"""Validation-run aggregation: memory flat in the number of videos, COCO part against pycocotools.

Synthetic test set: ``--videos`` videos of ``--frames`` frames, about 10 ground-truth boxes
(moving tracks of 3 classes, heights 20-300 px) and 15 detections (jittered, missed, clutter,
tracked) per frame. Per-video matches are built once (``video_matches``, like an evaluation job
does) and stored as npz files; then ``aggregate`` reads them one at a time, with slices (two
video attributes, object height) and ``--resamples`` bootstrap resamples.

It reports: the aggregation's wall time and peak memory at several prefixes of the set (each in a
fresh process, so peaks do not mix), and the COCO part (12 numbers over the concatenated set,
every class) side by side with pycocotools (evaluate + accumulate + summarize on the same
concatenated set, loaded from the same detections), with the numbers checked equal.

Full size: ``python bench/validation_run.py --videos 200 --frames 1000 --sizes 50,100,200 --coco-videos 50``
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import run_pycocotools  # noqa: E402
from evaluation import Boxes  # noqa: E402
from evaluation.coco import STAT_NAMES  # noqa: E402
from evaluation.runs import VideoMatches, aggregate, video_matches  # noqa: E402

CLASSES = ["pedestrian", "cyclist", "car"]
THRESHOLD = 0.5


def synthetic_video(seed: int, n_frames: int) -> tuple[Boxes, Boxes, np.ndarray, np.ndarray]:
    """~10 ground-truth and ~15 detected boxes per frame, vectorized."""
    rng = np.random.default_rng(seed)
    n_obj = 20
    starts = rng.integers(0, n_frames, n_obj)
    lengths = rng.integers(n_frames // 4, n_frames, n_obj)
    ends = np.minimum(starts + lengths, n_frames)
    obj = np.repeat(np.arange(n_obj), ends - starts)
    frame = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
    t = frame - starts[obj]
    x0, y0 = rng.uniform(0, 1500, n_obj), rng.uniform(0, 800, n_obj)
    vx, vy = rng.uniform(-1, 1, n_obj), rng.uniform(-0.3, 0.3, n_obj)
    h = rng.uniform(20, 300, n_obj)[obj] * (1 + 0.3 * np.sin(t / 50.0 + obj))
    w = h * rng.uniform(0.3, 0.8, n_obj)[obj]
    x, y = x0[obj] + vx[obj] * t, y0[obj] + vy[obj] * t
    gxyxy = np.c_[x, y, x + w, y + h]
    gcls = rng.integers(0, 3, n_obj)[obj]
    gt = Boxes.from_arrays(frame, gcls, xyxy=gxyxy, tracker_id=obj)
    # detections: 85 % of the ground truth, jittered; a quality per object; clutter on top
    keep = rng.random(frame.size) < 0.85
    q = rng.uniform(0.3, 1.0, n_obj)[obj[keep]]
    jitter = rng.normal(0, 0.06, (keep.sum(), 4)) * np.c_[w[keep], h[keep], w[keep], h[keep]]
    dxyxy = gxyxy[keep] + jitter
    dxyxy[:, 2:] = np.maximum(dxyxy[:, 2:], dxyxy[:, :2] + 1)
    dcls = np.where(rng.random(keep.sum()) < 0.95, gcls[keep], rng.integers(0, 3, keep.sum()))
    dscore = np.clip(q * rng.uniform(0.6, 1.0, keep.sum()), 0, 1)
    dtrack = obj[keep] + 1000 * (rng.random(keep.sum()) < 0.02)
    n_clutter = int(frame.size * 0.65)
    cf = rng.integers(0, n_frames, n_clutter)
    cx, cy = rng.uniform(0, 1800, n_clutter), rng.uniform(0, 1000, n_clutter)
    ch = rng.uniform(15, 250, n_clutter)
    cxyxy = np.c_[cx, cy, cx + ch * 0.5, cy + ch]
    dt = Boxes.from_arrays(np.r_[frame[keep], cf], np.r_[dcls, rng.integers(0, 3, n_clutter)],
                           xyxy=np.r_[dxyxy, cxyxy], confidence=np.r_[dscore, rng.uniform(0, 0.8, n_clutter)],
                           tracker_id=np.r_[dtrack, 5000 + np.arange(n_clutter)])
    return gt, dt, np.arange(n_frames), np.arange(n_frames) / 30.0


def attributes(n: int) -> dict[str, dict[str, str]]:
    return {f"video-{i:04d}": {"daylight": "night" if i % 3 == 0 else "day", "camera": f"cam{i % 4}"}
            for i in range(n)}


def build(store: Path, n_videos: int, n_frames: int, tracking: bool) -> float:
    t0 = time.perf_counter()
    for i in range(n_videos):
        path = store / f"video-{i:04d}.npz"
        if path.exists():
            continue
        gt, dt, frames, ts = synthetic_video(i, n_frames)
        vm = video_matches(gt, dt, CLASSES, frames, ts, THRESHOLD, 0.5, tracking=tracking, video_id=f"video-{i:04d}")
        path.write_bytes(vm.to_bytes())
    return time.perf_counter() - t0


def run_aggregate(store: Path, n_videos: int, resamples: int) -> dict:
    paths = [store / f"video-{i:04d}.npz" for i in range(n_videos)]
    t0 = time.perf_counter()
    res = aggregate(lambda: (VideoMatches.from_bytes(p.read_bytes()) for p in paths), attributes(n_videos),
                    resamples=resamples, seed=0)
    wall = time.perf_counter() - t0
    return {"videos": n_videos, "seconds": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 1024, "coco": res["overall"]["coco"], "per_class": {k: v["coco"] for k, v in res["per_class"].items()},
            "ap50_interval": res["overall"]["intervals"]["ap50"], "frames": res["counts"]["frames"]}


def pycocotools_side_by_side(store: Path, n_videos: int, n_frames: int, ours: dict) -> dict:
    """pycocotools on the concatenated set, and our COCO part alone on the same matches."""
    images, anns, results = [], [], []
    for v in range(n_videos):
        gt, dt, frames, _ = synthetic_video(v, n_frames)
        base = 10_000_000 * v + 1
        images += [{"id": int(base + f)} for f in frames]
        xywh = np.c_[gt.xyxy[:, :2], gt.xyxy[:, 2:] - gt.xyxy[:, :2]].tolist()
        for i in range(len(gt)):
            anns.append({"id": len(anns) + 1, "image_id": int(base + gt.frame_index[i]),
                         "category_id": int(gt.class_id[i]) + 1, "bbox": xywh[i], "area": float(gt.area[i]),
                         "iscrowd": 0})
        dxywh = np.c_[dt.xyxy[:, :2], dt.xyxy[:, 2:] - dt.xyxy[:, :2]].tolist()
        results += [{"image_id": int(base + dt.frame_index[i]), "category_id": int(dt.class_id[i]) + 1,
                     "bbox": dxywh[i], "score": float(dt.confidence[i])} for i in range(len(dt))]
    gt_json = {"images": images, "categories": [{"id": c + 1} for c in range(len(CLASSES))], "annotations": anns}
    t0 = time.perf_counter()
    stats = run_pycocotools(gt_json, results).tolist()
    ref_seconds = time.perf_counter() - t0
    del images, anns, results, gt_json
    # our COCO part: aggregation of the stored matches with no slices and no resamples
    paths = [store / f"video-{i:04d}.npz" for i in range(n_videos)]
    t0 = time.perf_counter()
    mine = aggregate(lambda: (VideoMatches.from_bytes(p.read_bytes()) for p in paths), resamples=0)
    our_seconds = time.perf_counter() - t0
    diff = max(abs(mine["overall"]["coco"][k] - s) for k, s in zip(STAT_NAMES, stats, strict=True))
    # and the matching itself, done per video by the evaluation jobs (COCO, operating point, latency)
    t0 = time.perf_counter()
    for v in range(n_videos):
        gt, dt, frames, ts = synthetic_video(v, n_frames)
        video_matches(gt, dt, CLASSES, frames, ts, THRESHOLD, 0.5, video_id=str(v))
    match_seconds = time.perf_counter() - t0
    return {"pycocotools_seconds": ref_seconds, "ours_seconds": our_seconds, "max_abs_difference": diff,
            "match_seconds": match_seconds,
            "stats": dict(zip(STAT_NAMES, stats, strict=True))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--sizes", default="50,100,200", help="prefixes of the set to aggregate (memory curve)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--coco-videos", type=int, default=None, help="videos for the pycocotools comparison "
                    "(default: all)")
    ap.add_argument("--no-tracking", action="store_true")
    ap.add_argument("--skip-coco", action="store_true", help="no pycocotools side by side")
    ap.add_argument("--store", default=None, help="folder for the per-video npz files (kept between runs)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    store = Path(args.store or tempfile.mkdtemp(prefix="vru_valrun_"))
    store.mkdir(parents=True, exist_ok=True)
    if args.child:
        kind, n = args.child.split(":")
        if kind == "aggregate":
            out = run_aggregate(store, int(n), args.resamples)
        else:
            out = pycocotools_side_by_side(store, int(n), args.frames, {})
            out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    build_s = build(store, args.videos, args.frames, not args.no_tracking)
    print(f"validation run: {args.videos} videos x {args.frames} frames, {args.resamples} resamples; "
          f"per-video matches built in {build_s:.1f} s (skipped when already stored) under {store}")

    def child(spec: str) -> dict:
        cmd = [sys.executable, __file__, "--store", str(store), "--frames", str(args.frames), "--resamples",
               str(args.resamples), "--child", spec]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    print(f"{'videos':>8} {'frames':>9} {'aggregate s':>12} {'peak RSS MiB':>13}  AP50 [95 % interval]")
    for n in [int(s) for s in args.sizes.split(",")]:
        r = child(f"aggregate:{n}")
        iv = r["ap50_interval"]
        print(f"{n:>8} {r['frames']:>9} {r['seconds']:>12.1f} {r['peak_rss_mib']:>13.0f}  "
              f"{r['coco']['AP50']:.4f} [{iv['low']:.4f}, {iv['high']:.4f}]")
    if args.skip_coco:
        return
    n = args.coco_videos or args.videos
    c = child(f"coco:{n}")
    print(f"COCO part, {n} videos ({n * args.frames} images), the 12 numbers over the concatenated set:")
    print(f"  pycocotools on the concatenated set  {c['pycocotools_seconds']:8.1f} s")
    print(f"  aggregate(resamples=0) from matches  {c['ours_seconds']:8.1f} s   "
          f"ratio {c['pycocotools_seconds'] / c['ours_seconds']:.1f}x   "
          f"largest difference {c['max_abs_difference']:.1e}")
    both = c["match_seconds"] + c["ours_seconds"]
    print(f"  with the per-video matching (video_matches, no tracking) {c['match_seconds']:.1f} s: {both:.1f} s, "
          f"ratio {c['pycocotools_seconds'] / both:.1f}x")


if __name__ == "__main__":
    main()
