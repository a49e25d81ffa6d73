"""Format engine: export and import throughput and peak memory per format, streaming vs in-memory.

Generated data: ``--count`` annotations (default 200,000; the issue's figure is 1,000,000),
10 per frame on a 1920x1080 video, 10 tracks, fractional boxes. Every phase runs in a fresh
subprocess so that its peak resident memory (``ru_maxrss``) is its own; the table shows it
above the interpreter's baseline. The straightforward approach (build the whole document in
memory, then ``json.dump``; ``json.load`` to read) runs side by side for COCO and the JSON
document, and memory is measured at ``--small`` (100,000) and ``--count`` to show whether it
grows with the data.

    .venv/bin/python bench/formats.py --count 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_FRAME = 10
CLASSES = ["pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter"]
FORMATS = ["coco", "csv", "mot", "yolo", "cvat_video", "json"]


def _video(count: int):
    from formats import VideoInfo
    return VideoInfo(1920, 1080, count // PER_FRAME + 1, 30.0, "bench", "v1")


def _annotations(count: int, by_track: bool = False):
    """Generated lazily: the data set itself never sits in memory."""
    from formats import Annotation
    frames = count // PER_FRAME + (count % PER_FRAME > 0)
    if by_track:  # CVAT wants records ordered by track
        order = ((f, t) for t in range(PER_FRAME) for f in range(frames))
    else:
        order = ((f, t) for f in range(frames) for t in range(PER_FRAME))
    n = 0
    for f, t in order:
        if f * PER_FRAME + t >= count:
            continue
        x = (t * 173.3 + f * 0.37) % 1800
        y = (t * 91.7 + f * 0.11) % 1000
        yield Annotation(f, CLASSES[t % 5], (x, y, x + 40.25, y + 70.5), track_id=t, timestamp=f / 30,
                         video_id="v1")
        n += 1


def _rows(count: int):
    for a in _annotations(count):
        yield {"frame_number": a.frame_number, "class_label": a.label, "track_id": a.track_id,
               "timestamp": a.timestamp, "bounding_box": {"x1": a.box[0], "y1": a.box[1], "x2": a.box[2],
                                                          "y2": a.box[3]}}


def _naive_coco(count: int) -> dict[str, Any]:
    video = _video(count)
    cat = {c: i + 1 for i, c in enumerate(CLASSES)}
    images = {}
    anns = []
    for i, a in enumerate(_annotations(count)):
        iid = a.frame_number + 1
        images.setdefault(iid, {"id": iid, "width": video.width, "height": video.height,
                                "file_name": f"frame_{a.frame_number:06d}.jpg", "video_id": "v1",
                                "frame_number": a.frame_number, "timestamp": a.timestamp})
        x1, y1, x2, y2 = a.box
        anns.append({"id": i + 1, "image_id": iid, "category_id": cat[a.label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                     "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "segmentation": [], "track_id": a.track_id})
    return {"info": {}, "licenses": [], "categories": [{"id": v, "name": k} for k, v in cat.items()],
            "images": list(images.values()), "annotations": anns}


def child(phase: str, fmt: str, count: int, path: str) -> dict[str, Any]:
    import formats
    from formats import FrameInfo, ReadOptions
    video = _video(count)
    t0 = time.perf_counter()
    n = 0
    if phase == "baseline":
        pass
    elif phase == "export":
        if fmt == "json":
            formats.write_document(path, [("annotations", _rows(count))], meta={"bench": True})
            n = count
        else:
            # COCO gets the evaluated frames up front, as an export job has them: images come first
            frames = (FrameInfo(f, f / 30, "v1") for f in range(video.frame_count)) if fmt == "coco" else None
            n = formats.write(fmt, path, _annotations(count, by_track=fmt == "cvat_video"), video=video,
                              classes=CLASSES, frames=frames)
    elif phase == "import":
        if fmt == "json":
            for _ in formats.read_document(path):
                n += 1
        else:
            reader = formats.open_reader(fmt, path, video=video, classes=CLASSES, options=ReadOptions(on_error="skip"))
            for _ in reader:
                n += 1
    elif phase == "naive_export":
        doc = _naive_coco(count) if fmt == "coco" else {"format": "vru-platform", "version": 1,
                                                        "sections": {"annotations": list(_rows(count))}}
        with open(path, "w") as fp:
            json.dump(doc, fp)
        n = count
    elif phase == "naive_import":
        with open(path) as fp:
            doc = json.load(fp)
        rows = doc["annotations"] if fmt == "coco" else doc["sections"]["annotations"]
        for _ in rows:
            n += 1
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(phase: str, fmt: str, count: int, path: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", phase, fmt, str(count), path],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200_000, help="annotations in the large run")
    ap.add_argument("--small", type=int, default=100_000, help="annotations in the small run (memory growth)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--child", nargs=4, metavar=("PHASE", "FORMAT", "COUNT", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        phase, fmt, count, path = args.child
        print(json.dumps(child(phase, fmt, int(count), path)))
        return
    fmts = [f for f in args.formats.split(",") if f]
    base = run("baseline", "csv", 0, os.devnull)["rss_mb"]
    print(f"format engine: {args.count:,} annotations ({PER_FRAME} per frame), memory at {args.small:,} vs "
          f"{args.count:,}; peak RSS above the {base:.0f} MB interpreter baseline; python {sys.version.split()[0]}")
    print(f"{'format':<11}{'approach':<10}{'export ann/s':>14}{'import ann/s':>14}{'file MB':>9}"
          f"{'exp MB small':>13}{'exp MB large':>13}{'imp MB small':>13}{'imp MB large':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in fmts:
            approaches = ["stream"] + (["in-memory"] if fmt in ("coco", "json") else [])
            for approach in approaches:
                pre = "" if approach == "stream" else "naive_"
                row: dict[str, dict[str, Any]] = {}
                size = 0.0
                for label, count in (("small", args.small), ("large", args.count)):
                    path = str(Path(tmp) / f"{fmt}-{approach}-{label}.out")
                    row[f"export_{label}"] = run(pre + "export", fmt, count, path)
                    row[f"import_{label}"] = run(pre + "import", fmt, count, path)
                    assert row[f"import_{label}"]["n"] == count, (fmt, approach, row[f"import_{label}"])
                    size = os.path.getsize(path) / 1e6
                    os.unlink(path)
                ex, im = row["export_large"], row["import_large"]
                print(f"{fmt:<11}{approach:<10}{ex['n'] / ex['seconds']:>14,.0f}{im['n'] / im['seconds']:>14,.0f}"
                      f"{size:>9.1f}"
                      + "".join(f"{row[k]['rss_mb'] - base:>13.1f}"
                                for k in ("export_small", "export_large", "import_small", "import_large")),
                      flush=True)


if __name__ == "__main__":
    main()
