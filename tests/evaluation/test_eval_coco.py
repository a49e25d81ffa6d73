"""COCO metrics must equal COCOeval's to 1e-9, on the oracle data and on generated edge cases."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evaluation_refs import random_coco_case, run_cocoeval

from evaluation import Boxes, evaluate_coco, from_coco, from_coco_results

EXPECTED = [0.503647, 0.696973, 0.571667, 0.593252, 0.557991, 0.489363,
            0.386813, 0.593680, 0.595353, 0.654764, 0.603130, 0.553744]


def _ours(gt_json: dict[str, Any], results: list[dict[str, Any]]):
    gt = from_coco(gt_json)
    return evaluate_coco(gt.boxes, from_coco_results(results), gt.image_ids, gt.category_ids)


def _assert_same(gt_json: dict[str, Any], results: list[dict[str, Any]]) -> None:
    ref = run_cocoeval(gt_json, results)
    ours = _ours(gt_json, results)
    np.testing.assert_allclose(ours.overall.to_list(), ref.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.scores, ref.eval["scores"], rtol=0, atol=1e-9)


def test_oracle_matches_published_numbers(coco_eval_dir: Path) -> None:
    gt_json = json.loads((coco_eval_dir / "sampled_gts_bbox_area.json").read_text())
    results = json.loads((coco_eval_dir / "cocoapi_results.json").read_text())
    ours = _ours(gt_json, results)
    np.testing.assert_allclose(ours.overall.to_list(), EXPECTED, atol=5e-7)
    _assert_same(gt_json, results)
    json.dumps(ours.to_dict(), allow_nan=False)


@pytest.mark.parametrize("seed", range(25))
def test_random_cases_match_cocoeval(seed: int) -> None:
    gt_json, results = random_coco_case(seed, integer=seed % 2 == 0, crowd=0.3 if seed % 5 == 0 else 0.1)
    _assert_same(gt_json, results)


def test_more_than_max_dets_per_image() -> None:
    gt_json, results = random_coco_case(100, n_img=3, n_cat=1, dets_per_img=400)
    assert max(sum(r["image_id"] == i for r in results) for i in (1, 2, 3)) > 100
    _assert_same(gt_json, results)


def test_no_detections_matches_cocoeval() -> None:
    gt_json, _ = random_coco_case(7)
    _assert_same(gt_json, [])
    ours = _ours(gt_json, [])
    assert ours.overall.AP == 0.0
    assert ours.per_class[max(ours.per_class)].AP == -1.0  # class without ground truth


def test_no_ground_truth_at_all_is_minus_one() -> None:
    gt_json = {"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": []}
    results = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]
    _assert_same(gt_json, results)
    assert _ours(gt_json, results).overall.to_list() == [-1.0] * 12


def test_columnar_input_in_xyxy_equals_coco_input() -> None:
    gt_json, results = random_coco_case(3)
    ref = _ours(gt_json, results)
    g = from_coco(gt_json)
    d = from_coco_results(results)
    again = Boxes.from_arrays(d.frame_index, d.class_id, xyxy=d.xyxy, confidence=d.confidence)
    ours = evaluate_coco(g.boxes, again, g.image_ids, g.category_ids)
    assert ours.overall == ref.overall


def test_dense_image_matches_cocoeval() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 400, (150, 2))
    wh = rng.uniform(10, 80, (150, 2))
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [*map(float, xy[i]), *map(float, wh[i])],
             "area": float(wh[i, 0] * wh[i, 1]), "iscrowd": int(i % 37 == 0)} for i in range(150)]
    src = rng.integers(0, 150, 400)
    results = [{"image_id": 1, "category_id": 1, "score": float(rng.random()),
                "bbox": [*map(float, xy[s] + rng.normal(0, 5, 2)), *map(float, wh[s])]} for s in src]
    gt_json = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}], "annotations": anns}
    _assert_same(gt_json, results)


def test_builders_validate_and_convert() -> None:
    b = Boxes.from_records([{"frame": 3, "class_id": 2, "bbox": [1, 2, 5, 7], "track_id": 9}], box_format="xyxy")
    assert b.xyxy.tolist() == [[1, 2, 5, 7]] and b.area.tolist() == [20.0] and b.tracker_id.tolist() == [9]
    c = Boxes.from_records([{"image_id": 3, "category_id": 2, "bbox": [1, 2, 4, 5], "iscrowd": 1}])
    assert c.xyxy.tolist() == [[1, 2, 5, 7]] and bool(c.ignore[0])
    with pytest.raises(ValueError):
        Boxes.from_arrays([0], [0], xyxy=[[5, 5, 1, 1]])
    with pytest.raises(ValueError):
        Boxes.from_arrays([0, 1], [0], xyxy=[[0, 0, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(ValueError):
        evaluate_coco(b, Boxes.from_arrays([4], [2], xyxy=[[0, 0, 1, 1]], confidence=[0.5]), image_ids=[3])
