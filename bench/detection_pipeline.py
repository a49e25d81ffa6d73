"""The detection pipeline against its ceiling and against a naive loop, side by side in one run.

Same model, same frames, same post-processing for all three:
  (a) pipeline  - reader thread + bounded queue + batched inference + NMS (vision.pipeline);
  (b) ceiling   - inference alone on frames decoded in advance, in the same batches;
  (c) naive     - read one frame, infer, post-process, repeat.
Goals: (a) >= 0.9 x (b) and (a) >= 1.3 x (c). Each mode runs ``--repeats`` times, interleaved;
the median is reported. Peak memory of (a) is measured in fresh
processes on the clip and on the clip looped 4x: it must not grow with the video's length.

The torchvision model uses random weights saved to a file (nothing downloads here); its
inference cost is that of the trained model, its boxes are not. ``pedestrian-ssdlite`` is a real
trained detector (SSDLite-MobileNetV2, converted by ``python -m models fetch-demo-model``'s
converter into ``var/cache``) run by ONNX Runtime.

    .venv/bin/python bench/detection_pipeline.py [--frames 200] [--video path] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vision.detectors import ModelSpec, load_detector  # noqa: E402
from vision.pipeline import DetectionPipeline  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "video" / "vtest.avi"


def model_spec(name: str, workdir: Path) -> dict:
    if name == "pedestrian-ssdlite":
        from models import demo_model

        path = demo_model.convert(ROOT / "var" / "cache")
        return {"name": name, "weights": str(path), "format": "onnx", "model_classes": demo_model.CLASSES,
                "input_size": demo_model.INPUT_SIZE, "confidence_threshold": demo_model.CONFIDENCE_THRESHOLD}
    if name.startswith("torchvision/"):
        import torch
        import torchvision.models.detection as tvd

        arch = name.split("/", 1)[1]
        path = workdir / f"{arch}.pth"
        if not path.exists():
            torch.manual_seed(0)
            torch.save(getattr(tvd, arch)(weights=None, weights_backbone=None, num_classes=91).state_dict(), path)
        return {"name": name, "weights": str(path), "confidence_threshold": 0.05}
    return {"name": name, "confidence_threshold": 0.3}


def read_frames(video: Path, frames: int) -> list:
    """The first ``frames`` decoded frames, held in memory."""
    cap = cv2.VideoCapture(str(video))
    images = []
    while len(images) < frames:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    return images


def run_pipeline(spec: dict, video: Path, frames: int, batch: int) -> tuple[float, int]:
    spec_obj = ModelSpec.parse(spec)
    detector = load_detector(spec_obj)
    pipeline = DetectionPipeline.from_spec(detector, spec_obj, batch_size=batch, end_frame=frames)
    t0 = time.perf_counter()
    boxes = sum(len(r.detections) for r in pipeline.run(video))
    return time.perf_counter() - t0, boxes


def run_ceiling(spec: dict, video: Path, frames: int, batch: int) -> tuple[float, int]:
    spec_obj = ModelSpec.parse(spec)
    detector = load_detector(spec_obj)
    pipeline = DetectionPipeline.from_spec(detector, spec_obj, batch_size=batch)
    images = read_frames(video, frames)
    t0 = time.perf_counter()
    boxes = 0
    for i in range(0, len(images), batch):
        boxes += sum(len(d) for d in pipeline.postprocess(detector.predict(images[i:i + batch])))
    return time.perf_counter() - t0, boxes


def run_naive(spec: dict, video: Path, frames: int, batch: int) -> tuple[float, int]:
    spec_obj = ModelSpec.parse(spec)
    detector = load_detector(spec_obj)
    pipeline = DetectionPipeline.from_spec(detector, spec_obj, batch_size=1)
    t0 = time.perf_counter()
    cap = cv2.VideoCapture(str(video))
    boxes = n = 0
    while n < frames:
        ok, image = cap.read()
        if not ok:
            break
        boxes += sum(len(d) for d in pipeline.postprocess(detector.predict([image])))
        n += 1
    cap.release()
    return time.perf_counter() - t0, boxes


def loop_video(src: Path, dst: Path, frames: int, times: int) -> Path:
    """The first ``frames`` frames of ``src`` repeated ``times`` times (MJPG, same size)."""
    images = read_frames(src, frames)
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for _ in range(times):
        for image in images:
            writer.write(image)
    writer.release()
    return dst


def peak_memory_child(spec: dict, video: Path, batch: int) -> dict:
    """Run (a) over a whole file in a fresh process; report its peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec), "--video", str(video),
                          "--batch", str(batch)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(spec: dict, video: Path, batch: int) -> None:
    seconds, boxes = run_pipeline(spec, video, 10**9, batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "boxes": boxes, "peak_rss_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=200, help="frames per timed run")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode; the median is reported")
    parser.add_argument("--models",
                        default="opencv/hog-people,pedestrian-ssdlite,torchvision/ssdlite320_mobilenet_v3_large")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the GPU when usable)")
    parser.add_argument("--half", action="store_true", help="half precision for torchvision models on a GPU")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child), args.video, args.batch)
    work = Path(tempfile.mkdtemp(prefix="bench-detection-"))
    import torch

    print(f"video {args.video.name}, {args.frames} frames per run, batch {args.batch}, {os.cpu_count()} cpus "
          f"(opencv threads {cv2.getNumThreads()}, torch threads {torch.get_num_threads()})")
    one = loop_video(args.video, work / "x1.avi", args.frames, 1)
    four = loop_video(args.video, work / "x4.avi", args.frames, 4)
    rows = []
    for name in args.models.split(","):
        spec = {**model_spec(name, work), "device": args.device, "half": args.half}
        run_naive(spec, args.video, 8, args.batch)  # warm-up: model load, allocator, caches
        runs: dict[str, list[float]] = {"pipeline": [], "ceiling": [], "naive": []}
        boxes = {}
        for _ in range(args.repeats):  # interleaved, so a busy moment of the machine hits all three
            for label, fn in (("pipeline", run_pipeline), ("ceiling", run_ceiling), ("naive", run_naive)):
                seconds, boxes[label] = fn(spec, args.video, args.frames, args.batch)
                runs[label].append(seconds)
        fps = {k: args.frames / statistics.median(v) for k, v in runs.items()}
        mem1 = peak_memory_child(spec, one, args.batch)
        mem4 = peak_memory_child(spec, four, args.batch)
        row = {
            "model": name, "device": load_detector(spec).device,
            "fps_pipeline": fps["pipeline"], "fps_ceiling": fps["ceiling"], "fps_naive": fps["naive"],
            "pipeline_vs_ceiling": fps["pipeline"] / fps["ceiling"],
            "pipeline_vs_naive": fps["pipeline"] / fps["naive"],
            "boxes": boxes, "repeats": args.repeats,
            "peak_rss_mb_1x": mem1["peak_rss_mb"], "peak_rss_mb_4x": mem4["peak_rss_mb"],
        }
        rows.append(row)
        print(f"\n{name} on {row['device']}")
        print(f"  (a) pipeline {fps['pipeline']:7.2f} fps   (b) ceiling {fps['ceiling']:7.2f} fps   "
              f"(c) naive {fps['naive']:7.2f} fps")
        print(f"  (a)/(b) = {row['pipeline_vs_ceiling']:.3f}  (goal >= 0.9)   "
              f"(a)/(c) = {row['pipeline_vs_naive']:.3f}  (goal >= 1.3)")
        print(f"  boxes: {row['boxes']} (must be equal: same frames, same post-processing)")
        print(f"  peak RSS of (a): {args.frames} frames {mem1['peak_rss_mb']:.0f} MB, "
              f"{4 * args.frames} frames {mem4['peak_rss_mb']:.0f} MB "
              f"(ratio {mem4['peak_rss_mb'] / mem1['peak_rss_mb']:.3f})")
    print("\n" + json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
