"""Generated test sets for validation-run tests: videos with tracks, a detector with known noise."""
from __future__ import annotations

from typing import Any

import numpy as np

from evaluation import Boxes

CLASSES = ["pedestrian", "cyclist", "car", "scooter"]  # scooter never has ground truth


def video(seed: int, n_frames: int = 30, n_obj: int = 6, miss: float = 0.2, clutter: float = 0.6,
          crowd: bool = True) -> tuple[Boxes, Boxes, np.ndarray, np.ndarray]:
    """Ground truth, detections (with track ids), evaluated frames and frame timestamps."""
    rng = np.random.default_rng(seed)  # the ground truth depends on the seed alone
    det = np.random.default_rng([seed, int(miss * 1000), int(clutter * 1000)])
    g: dict[str, list[Any]] = {"frame": [], "cls": [], "box": [], "tid": [], "crowd": []}
    d: dict[str, list[Any]] = {"frame": [], "cls": [], "box": [], "tid": [], "score": []}
    next_hid = 100
    for o in range(n_obj):
        start = int(rng.integers(0, n_frames // 2))
        end = int(rng.integers(start + 1, n_frames))
        x, y = rng.uniform(0, 400, 2)
        vx, vy = rng.uniform(-3, 3, 2)
        w, h = rng.uniform(10, 80), float(rng.choice([20.0, 40.0, 49.0, 50.0, 75.0, 120.0, 230.0]))
        cls = int(rng.integers(0, 3))
        hid, quality, delay = next_hid, det.uniform(0.3, 1.0), int(det.integers(0, 8))
        next_hid += 1
        for f in range(start, end):
            box = [x + vx * f, y + vy * f, x + vx * f + w, y + vy * f + h]
            g["frame"].append(f), g["cls"].append(cls), g["box"].append(box), g["tid"].append(o)
            g["crowd"].append(False)
            if f < start + delay or det.random() < miss:
                continue  # seen late, then missed now and then
            if det.random() < 0.05:
                hid = next_hid  # the tracker re-initialises: an id switch
                next_hid += 1
            noise = det.normal(0, 2.5, 4)
            b = [box[0] + noise[0], box[1] + noise[1], max(box[0] + noise[0] + 1, box[2] + noise[2]),
                 max(box[1] + noise[1] + 1, box[3] + noise[3])]
            d["frame"].append(f), d["cls"].append(cls if det.random() < 0.92 else int(det.integers(0, 4)))
            d["box"].append(b), d["tid"].append(hid)
            d["score"].append(float(np.clip(quality * det.uniform(0.5, 1.0), 0, 1)) if det.random() > 0.2
                              else float(det.choice([0.5, 0.9])))
    if crowd:
        g["frame"].append(1), g["cls"].append(0), g["box"].append([500.0, 500.0, 600.0, 650.0])
        g["tid"].append(-1), g["crowd"].append(True)
    for f in range(n_frames):
        if det.random() < clutter:
            x, y = det.uniform(0, 600, 2)
            d["frame"].append(f), d["cls"].append(int(det.integers(0, 4)))
            d["box"].append([x, y, x + det.uniform(5, 60), y + det.uniform(10, 150)])
            d["tid"].append(int(det.integers(900, 905)) + 10 * f), d["score"].append(float(det.uniform(0, 0.7)))
    gt = Boxes.from_arrays(g["frame"], g["cls"], xyxy=np.asarray(g["box"]).reshape(-1, 4), tracker_id=g["tid"],
                           iscrowd=g["crowd"])
    dt = Boxes.from_arrays(d["frame"], d["cls"], xyxy=np.asarray(d["box"]).reshape(-1, 4), tracker_id=d["tid"],
                           confidence=d["score"])
    frames = np.arange(n_frames)
    timestamps = np.cumsum(rng.uniform(0.03, 0.05, n_frames))  # of the video, not the detector
    return gt, dt, frames, timestamps


def coco_concat(videos: list[tuple[Boxes, Boxes, np.ndarray]], n_cls: int) -> tuple[dict[str, Any], list[dict]]:
    """One COCO dataset of every video: image id = 100000 * video + frame + 1."""
    images, anns, results = [], [], []
    for v, (gt, dt, frames) in enumerate(videos):
        for f in np.union1d(frames, dt.frame_index):
            images.append({"id": int(100000 * v + f + 1)})
        for i in range(len(gt)):
            x1, y1, x2, y2 = gt.xyxy[i].tolist()
            anns.append({"id": len(anns) + 1, "image_id": int(100000 * v + gt.frame_index[i] + 1),
                         "category_id": int(gt.class_id[i]) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": float(gt.area[i]), "iscrowd": int(gt.iscrowd[i])})
        for i in range(len(dt)):
            x1, y1, x2, y2 = dt.xyxy[i].tolist()
            results.append({"image_id": int(100000 * v + dt.frame_index[i] + 1), "category_id": int(dt.class_id[i]) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(dt.confidence[i])})
    return {"images": images, "categories": [{"id": c + 1} for c in range(n_cls)], "annotations": anns}, results
