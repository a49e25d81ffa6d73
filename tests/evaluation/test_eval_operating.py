"""Operating-point counts, PR curves and confusion matrix, checked against a plain loop and
against COCOeval's recall at the same IoU."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from evaluation_refs import random_coco_case, run_cocoeval

from evaluation import Boxes, CocoParams, evaluate_coco, evaluate_operating_point, from_coco, from_coco_results


def _iou(a: list[float], b: list[float], crowd: bool) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a[2] * a[3] if crowd else a[2] * a[3] + b[2] * b[3] - inter)


def _loop_counts(gt_json: dict[str, Any], results: list[dict[str, Any]], thr: float, iou_thr: float):
    """Straightforward per (image, class) greedy matching, written independently."""
    counts: dict[int, list[int]] = {c["id"]: [0, 0, 0] for c in gt_json["categories"]}
    for img in gt_json["images"]:
        for cat in counts:
            gts = [a for a in gt_json["annotations"] if a["image_id"] == img["id"] and a["category_id"] == cat]
            dts = [r for r in results if r["image_id"] == img["id"] and r["category_id"] == cat and r["score"] >= thr]
            dts = sorted(dts, key=lambda r: -r["score"])
            used = [False] * len(gts)
            for d in dts:
                best, bi = min(iou_thr, 1 - 1e-10), -1
                for g in sorted(range(len(gts)), key=lambda i: gts[i]["iscrowd"]):
                    gg = gts[g]
                    if used[g] and not gg["iscrowd"]:
                        continue
                    if bi > -1 and not gts[bi]["iscrowd"] and gg["iscrowd"]:
                        break
                    v = _iou(d["bbox"], gg["bbox"], bool(gg["iscrowd"]))
                    if v < best:
                        continue
                    best, bi = v, g
                if bi == -1:
                    counts[cat][1] += 1
                elif not gts[bi]["iscrowd"]:
                    used[bi] = True
                    counts[cat][0] += 1
            counts[cat][2] += sum(1 for g, u in zip(gts, used, strict=True) if not u and not g["iscrowd"])
    return counts


@pytest.mark.parametrize("seed", range(8))
def test_counts_match_plain_loop(seed: int) -> None:
    gt_json, results = random_coco_case(seed)
    g, d = from_coco(gt_json), from_coco_results(results)
    for thr, iou_thr in ((0.0, 0.5), (0.5, 0.5), (0.3, 0.75)):
        res = evaluate_operating_point(g.boxes, d, thr, iou_thr, g.image_ids, g.category_ids)
        ref = _loop_counts(gt_json, results, thr, iou_thr)
        for c, (tp, fp, fn) in ref.items():
            pc = res.per_class[c]
            assert (pc.tp, pc.fp, pc.fn) == (tp, fp, fn), (c, thr)
        # the confusion matrix's diagonal is the true positives; its margins add up
        k = len(res.labels) - 1
        assert list(np.diag(res.confusion)[:k]) == [res.per_class[int(c)].tp for c in res.labels[:k]]
        assert res.confusion[:, :k].sum() == res.tp + res.fp
        assert res.confusion[:k, :].sum() == res.tp + res.fn
        json.dumps(res.to_dict(), allow_nan=False)


def test_pr_curve_end_equals_cocoeval_recall() -> None:
    gt_json, results = random_coco_case(11)
    g, d = from_coco(gt_json), from_coco_results(results)
    res = evaluate_operating_point(g.boxes, d, 0.0, 0.5, g.image_ids, g.category_ids)
    params = CocoParams(max_dets=(1, 10, 100000))
    coco = evaluate_coco(g.boxes, d, g.image_ids, g.category_ids, params)
    ref = run_cocoeval(gt_json, results)
    for k, c in enumerate(coco.category_ids):
        pc = res.per_class[int(c)]
        if coco.recall[0, k, 0, 2] < 0:
            assert pc.curve_recall.size == 0
            continue
        assert pc.curve_recall[-1] == pytest.approx(coco.recall[0, k, 0, 2], abs=1e-12)
        assert np.all(np.diff(pc.curve_recall) >= 0)
        assert np.all(np.diff(pc.curve_score) < 0)
    assert coco.overall.AR100 >= ref.stats[8] - 1e-12


def test_class_confusion_and_background() -> None:
    gt = Boxes.from_arrays([0, 0, 1], [1, 2, 1], xyxy=[[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]])
    dt = Boxes.from_arrays([0, 0, 1, 1], [1, 1, 1, 2], xyxy=[[0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90],
                                                            [0, 0, 10, 10]], confidence=[0.9, 0.8, 0.7, 0.2])
    res = evaluate_operating_point(gt, dt, 0.5, 0.5)
    assert list(res.labels) == [1, 2, -1]
    # frame 0: class 1 found, class 2 predicted as class 1; frame 1: the class-1 object is
    # missed (its class-2 detection is below threshold) and a class-1 false alarm appears
    assert res.confusion.tolist() == [[1, 0, 1], [1, 0, 0], [1, 0, 0]]
    assert (res.per_class[1].tp, res.per_class[1].fp, res.per_class[1].fn) == (1, 2, 1)
    assert res.per_class[2].recall == 0.0
    assert res.per_class[2].precision is None


def test_ignore_region_is_neither_hit_nor_miss() -> None:
    gt = Boxes.from_arrays([0, 0], [1, 1], xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]], ignore=[False, True])
    dt = Boxes.from_arrays([0, 0], [1, 1], xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]], confidence=[0.9, 0.8])
    res = evaluate_operating_point(gt, dt, 0.5)
    assert (res.tp, res.fp, res.fn) == (1, 0, 0)
    assert res.confusion.tolist() == [[1, 0], [0, 0]]
    coco = evaluate_coco(gt, dt)
    assert coco.overall.AP50 == pytest.approx(1.0)
