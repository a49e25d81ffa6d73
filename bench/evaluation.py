"""COCO bbox evaluation: our engine against pycocotools, side by side in one run.

Seeded data: 50,000 ground-truth boxes and 100,000 detections over 5,000 frames and
20 classes (some crowd regions, all area ranges). Both must give the same 12 numbers.

    .venv/bin/python bench/evaluation.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import run_pycocotools  # noqa: E402
from evaluation import evaluate_coco, from_coco, from_coco_results  # noqa: E402


def make_data(seed: int = 0, n_img: int = 5000, n_gt: int = 50_000, n_dt: int = 100_000,
              n_cat: int = 20) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    gt_img = rng.integers(1, n_img + 1, n_gt)
    wh = rng.uniform(4, 200, (n_gt, 2))
    xy = rng.uniform(0, 1000, (n_gt, 2))
    gt_cat = rng.integers(1, n_cat + 1, n_gt)
    crowd = rng.random(n_gt) < 0.01
    anns = [{"id": i + 1, "image_id": int(gt_img[i]), "category_id": int(gt_cat[i]),
             "bbox": [float(xy[i, 0]), float(xy[i, 1]), float(wh[i, 0]), float(wh[i, 1])],
             "area": float(wh[i, 0] * wh[i, 1]), "iscrowd": int(crowd[i])} for i in range(n_gt)]
    # Most detections are noisy copies of ground truth (some with the wrong class), the rest clutter.
    src = rng.integers(0, n_gt, n_dt)
    near = rng.random(n_dt) < 0.8
    d_xy = np.where(near[:, None], xy[src] + rng.normal(0, 6, (n_dt, 2)), rng.uniform(0, 1000, (n_dt, 2)))
    d_wh = np.where(near[:, None], wh[src] * rng.uniform(0.8, 1.2, (n_dt, 2)), rng.uniform(4, 200, (n_dt, 2)))
    d_img = np.where(near, gt_img[src], rng.integers(1, n_img + 1, n_dt))
    d_cat = np.where(near & (rng.random(n_dt) < 0.9), gt_cat[src], rng.integers(1, n_cat + 1, n_dt))
    score = np.round(rng.random(n_dt), 3)  # rounded so score ties occur, as with real detectors
    results = [{"image_id": int(d_img[i]), "category_id": int(d_cat[i]),
                "bbox": [float(d_xy[i, 0]), float(d_xy[i, 1]), float(d_wh[i, 0]), float(d_wh[i, 1])],
                "score": float(score[i])} for i in range(n_dt)]
    gt_json = {"images": [{"id": i} for i in range(1, n_img + 1)],
               "categories": [{"id": c} for c in range(1, n_cat + 1)], "annotations": anns}
    return gt_json, results


def run_ours(gt_json: dict[str, Any], results: list[dict[str, Any]]) -> np.ndarray:
    gt = from_coco(gt_json)
    return np.asarray(evaluate_coco(gt.boxes, from_coco_results(results), gt.image_ids, gt.category_ids)
                      .overall.to_list())


def main() -> None:
    gt_json, results = make_data()
    print(f"ground truth boxes: {len(gt_json['annotations'])}, detections: {len(results)}")
    t0 = time.perf_counter()
    ours = run_ours(gt_json, results)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = run_pycocotools(gt_json, results)
    t_ref = time.perf_counter() - t0
    diff = float(np.abs(ours - ref).max())
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    for n, a, b in zip(names, ours, ref, strict=True):
        print(f"  {n:6s} ours {a:.9f}  pycocotools {b:.9f}")
    print(f"max abs difference: {diff:.3e} ({'identical within 1e-9' if diff <= 1e-9 else 'MISMATCH'})")
    print(f"ours (from COCO dicts, end to end): {t_ours:.2f} s")
    print(f"pycocotools (loadRes + evaluate + accumulate + summarize): {t_ref:.2f} s")
    print(f"speed ratio: {t_ref / t_ours:.1f}x")
    if diff > 1e-9:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
