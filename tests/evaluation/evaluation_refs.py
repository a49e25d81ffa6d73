"""Reference implementations driven the way the evaluation tests need them."""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

# motmetrics 1.4.0 still calls np.asfarray, which numpy 2 removed.
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]


def run_cocoeval(gt_json: dict[str, Any], results: list[dict[str, Any]]) -> Any:
    """COCOeval with its printing silenced; returns the evaluator after summarize."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_json
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        if not results:
            dt.dataset = {"images": gt_json["images"], "categories": gt_json["categories"], "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def run_motmetrics(gt_rows: list[tuple[int, int, list[float]]], hyp_rows: list[tuple[int, int, list[float]]]) -> dict:
    """Feed motmetrics frame by frame with rows (frame, id, xywh) in the given order."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    frames = sorted({f for f, _, _ in gt_rows} | {f for f, _, _ in hyp_rows})
    for f in frames:
        g = [r for r in gt_rows if r[0] == f]
        h = [r for r in hyp_rows if r[0] == f]
        dist = mm.distances.iou_matrix(np.array([r[2] for r in g]).reshape(-1, 4),
                                       np.array([r[2] for r in h]).reshape(-1, 4), max_iou=0.5)
        acc.update([r[1] for r in g], [r[1] for r in h], dist, frameid=f)
    mh = mm.metrics.create()
    names = ["mota", "motp", "idf1", "idp", "idr", "idtp", "idfp", "idfn", "num_switches", "num_fragmentations",
             "num_matches", "num_misses", "num_false_positives", "num_objects", "num_predictions",
             "num_unique_objects", "mostly_tracked", "partially_tracked", "mostly_lost"]
    summary = mh.compute(acc, metrics=names, name="x")
    return {n: float(summary[n].iloc[0]) for n in names}


def random_coco_case(seed: int, n_img: int = 12, n_cat: int = 4, crowd: float = 0.1,
                 dets_per_img: int = 15, integer: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A small world full of edge cases: empty images, classes without ground truth, crowd
    regions, duplicate and tied detections, boxes straddling the area-range limits."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1} for i in range(n_img)]
    cats = [{"id": c + 1} for c in range(n_cat + 1)]  # the last class never has ground truth
    anns: list[dict[str, Any]] = []
    for img in images[: n_img - 2]:  # the last two images have no ground truth
        for _ in range(rng.integers(0, 8)):
            w, h = rng.choice([4.0, 31.0, 32.0, 33.0, 60.0, 96.0, 97.0, 150.0]), rng.uniform(5, 120)
            if integer:
                h = float(int(h))
            x, y = float(rng.integers(0, 200)), float(rng.integers(0, 200))
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": int(rng.integers(1, n_cat + 1)),
                         "bbox": [x, y, w, h], "area": w * h * float(rng.choice([1.0, 0.9, 1.1])),
                         "iscrowd": int(rng.random() < crowd)})
    results: list[dict[str, Any]] = []
    for img in images:
        mine = [a for a in anns if a["image_id"] == img["id"]]
        for _ in range(rng.integers(0, dets_per_img)):
            if mine and rng.random() < 0.7:
                a = mine[rng.integers(len(mine))]
                jitter = rng.normal(0, 4, 4) if not integer else rng.integers(-3, 4, 4)
                box = [a["bbox"][0] + jitter[0], a["bbox"][1] + jitter[1],
                       max(1.0, a["bbox"][2] + jitter[2]), max(1.0, a["bbox"][3] + jitter[3])]
                cat = a["category_id"] if rng.random() < 0.85 else int(rng.integers(1, n_cat + 2))
            else:
                box = [float(rng.integers(0, 200)), float(rng.integers(0, 200)), float(rng.integers(2, 120)),
                       float(rng.integers(2, 120))]
                cat = int(rng.integers(1, n_cat + 2))
            score = float(rng.choice([0.5, 0.9, 0.3])) if rng.random() < 0.3 else float(rng.random())
            box = [float(v) for v in box]
            results.append({"image_id": img["id"], "category_id": cat, "bbox": box, "score": score})
            if rng.random() < 0.1:  # exact duplicate
                results.append(dict(results[-1]))
    return {"images": images, "categories": cats, "annotations": anns}, results
