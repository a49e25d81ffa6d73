"""Validation runs: aggregation over videos equals the reference tools on the concatenated set,
per-video rows equal a session's evaluation, bootstrap intervals behave, paired comparison."""
from __future__ import annotations

import json

import numpy as np
import pytest
from evaluation_refs import run_cocoeval
from run_worlds import CLASSES, coco_concat, video

from evaluation.coco import STAT_NAMES
from evaluation.runs import RunError, VideoMatches, aggregate, compare_runs, video_matches
from evaluation.session import evaluate_session

THRESH = 0.4


def _world(seeds, **kw):
    return [video(s, **kw) for s in seeds]


def _matches(world, tracking=True, prefix="v", **kw):
    return [video_matches(gt, dt, CLASSES, frames, ts, THRESH, 0.5, tracking=tracking, video_id=f"{prefix}{i}", **kw)
            for i, (gt, dt, frames, ts) in enumerate(world)]


@pytest.fixture(scope="module")
def world():
    return _world([11, 12, 13, 14])


@pytest.fixture(scope="module")
def result(world):
    attrs = {"v0": {"daylight": "day"}, "v1": {"daylight": "night"}, "v2": {"daylight": "day"},
             "v3": {"daylight": "night"}}
    return aggregate(_matches(world), attrs, resamples=200, seed=1, min_videos=2, min_objects=5)


def test_coco_over_the_set_equals_pycocotools_on_the_concatenated_dataset(world, result) -> None:
    gt_json, results = coco_concat([(g, d, f) for g, d, f, _ in world], len(CLASSES))
    ev = run_cocoeval(gt_json, results)
    ours = result["overall"]["coco"]
    assert [ours[k] for k in STAT_NAMES] == pytest.approx(list(ev.stats), abs=1e-12)
    for c, name in enumerate(CLASSES):
        ev.params.catIds = [c + 1]
        ev.evaluate()
        ev.accumulate()
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            ev.summarize()
        assert [result["per_class"][name]["coco"][k] for k in STAT_NAMES] == pytest.approx(list(ev.stats),
                                                                                            abs=1e-12), name


def test_slice_coco_equals_pycocotools_on_that_slice_alone(world, result) -> None:
    night = [(g, d, f) for i, (g, d, f, _) in enumerate(world) if i in (1, 3)]
    ev = run_cocoeval(*coco_concat(night, len(CLASSES)))
    ours = result["slices"]["daylight"]["night"]["coco"]
    assert [ours["AP"], ours["AP50"], ours["AP75"], ours["AR100"]] == pytest.approx(
        [ev.stats[0], ev.stats[1], ev.stats[2], ev.stats[8]], abs=1e-12)
    assert result["slices"]["daylight"]["night"]["counts"]["videos"] == 2


def test_tracking_equals_motmetrics_overall_over_every_video_and_class(world, result) -> None:
    import motmetrics as mm

    accs = []
    for gt, dt, _, _ in world:
        kept = dt.select(dt.confidence >= THRESH)
        for c in range(len(CLASSES)):
            g, h = gt.select(gt.class_id == c), kept.select(kept.class_id == c)
            if not (len(g) or len(h)):
                continue
            acc = mm.MOTAccumulator(auto_id=False)
            for f in np.union1d(g.frame_index, h.frame_index):
                gi, hi = np.nonzero(g.frame_index == f)[0], np.nonzero(h.frame_index == f)[0]
                gx, hx = g.xyxy[gi], h.xyxy[hi]
                dist = mm.distances.iou_matrix(np.c_[gx[:, :2], gx[:, 2:] - gx[:, :2]],
                                               np.c_[hx[:, :2], hx[:, 2:] - hx[:, :2]], max_iou=0.5)
                acc.update(g.tracker_id[gi].tolist(), h.tracker_id[hi].tolist(), dist, frameid=int(f))
            accs.append(acc)
    names = ["mota", "motp", "idf1", "idp", "idr", "num_switches", "num_fragmentations", "num_misses",
             "num_false_positives", "num_objects", "mostly_tracked", "mostly_lost"]
    ref = mm.metrics.create().compute_many(accs, metrics=names, names=[str(i) for i in range(len(accs))],
                                           generate_overall=True)
    for name in names:
        if name != "motp":
            assert result["overall"]["tracking"][name] == pytest.approx(float(ref.loc["OVERALL", name]),
                                                                        abs=1e-9), name
    # motmetrics' OVERALL motp is NaN once one accumulator has no match (a class seen only as false
    # positives); ours averages over the matched pairs there are, which is that row without them
    matched = [a for a in accs if mm.metrics.create().compute(a, metrics=["num_detections"]).iloc[0, 0] > 0]
    ref = mm.metrics.create().compute_many(matched, metrics=["motp"], names=[str(i) for i in range(len(matched))],
                                           generate_overall=True)
    assert result["overall"]["tracking"]["motp"] == pytest.approx(float(ref.loc["OVERALL", "motp"]), abs=1e-9)


def test_per_video_rows_equal_the_session_evaluation_of_that_video(world, result) -> None:
    for i, (gt, dt, frames, ts) in enumerate(world):
        ref = evaluate_session(gt, dt, CLASSES, frames, ts, THRESH, 0.5, tracking=True)
        row = result["per_video"][i]
        assert row["video_id"] == f"v{i}"
        assert row["coco"] == pytest.approx(ref["coco"]["overall"], abs=1e-12)
        for k in ("tp", "fp", "fn", "precision", "recall", "f1"):
            assert row["operating_point"][k] == pytest.approx(ref["operating_point"][k]), k
        for k in ("objects", "missed_objects", "median_latency_seconds", "p90_latency_seconds",
                  "mean_detected_share"):
            assert row["temporal"][k] == pytest.approx(ref["temporal"]["overall"][k]), k
        for k, v in ref["tracking"]["overall"].items():
            assert row["tracking"][k] == pytest.approx(v, abs=1e-12), k


def test_operating_point_and_latency_over_the_set_pool_every_video(world, result) -> None:
    refs = [evaluate_session(gt, dt, CLASSES, frames, ts, THRESH, 0.5) for gt, dt, frames, ts in world]
    tp = sum(r["operating_point"]["tp"] for r in refs)
    fp = sum(r["operating_point"]["fp"] for r in refs)
    fn = sum(r["operating_point"]["fn"] for r in refs)
    op = result["overall"]["operating_point"]
    assert (op["tp"], op["fp"], op["fn"]) == (tp, fp, fn)
    assert op["precision"] == pytest.approx(tp / (tp + fp))
    lat = [o["latency_seconds"] for r in refs for o in r["temporal"]["objects"] if o["latency_seconds"] is not None]
    assert result["overall"]["temporal"]["median_latency_seconds"] == pytest.approx(np.percentile(lat, 50))
    assert result["overall"]["headline"]["latency_p90"] == pytest.approx(np.percentile(lat, 90))
    cyc = [r["operating_point"]["per_class"]["cyclist"] for r in refs]
    ctp, cfp = sum(c["tp"] for c in cyc), sum(c["fp"] for c in cyc)
    assert result["per_class"]["cyclist"]["headline"]["precision"] == pytest.approx(ctp / (ctp + cfp))


def test_result_is_json_safe_and_says_what_it_rests_on(result) -> None:
    json.dumps(result, allow_nan=False)
    counts = result["overall"]["counts"]
    assert counts["videos"] == 4 and counts["frames"] == 120
    assert set(result["slices"]) == {"daylight", "object_height"}


def test_a_thin_slice_says_insufficient_instead_of_a_number(world) -> None:
    attrs = {"v0": {"camera": "rear"}, "v1": {"camera": "front"}, "v2": {"camera": "front"}, "v3": {"camera": "front"}}
    res = aggregate(_matches(world), attrs, resamples=20, min_videos=2, min_objects=5)
    rear = res["slices"]["camera"]["rear"]
    assert rear["insufficient"] is True and "fewer than 2" in rear["reason"]
    assert "coco" not in rear
    assert "coco" in res["slices"]["camera"]["front"]
    # scooter never has ground truth: per class in a slice it is insufficient, not a number
    assert res["slices"]["camera"]["front"]["per_class"]["scooter"]["insufficient"] is True


def test_height_slice_is_pycocotools_with_height_as_the_area_range(world, result) -> None:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sl = result["slices"]["object_height"]
    assert sum(s["counts"]["ground_truth_boxes"] for s in sl.values()) == \
        result["overall"]["counts"]["ground_truth_boxes"]
    gt_json, results = coco_concat([(g, d, f) for g, d, f, _ in world], len(CLASSES))
    for a in gt_json["annotations"]:
        a["area"] = a["bbox"][3]  # judge ground truth by height
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_json
        gt.createIndex()
        dt = gt.loadRes(results)
        for d in dt.anns.values():
            d["area"] = d["bbox"][3]  # and detections too
        ev = COCOeval(gt, dt, "bbox")
        ev.params.areaRng = [[50.0, float(np.nextafter(100.0, 0))]] + [[0.0, 0.0]] * 3  # [50, 100)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = sl["50-100"]["coco"]
    assert [ours["AP"], ours["AP50"], ours["AP75"], ours["AR100"]] == pytest.approx(
        [ev.stats[0], ev.stats[1], ev.stats[2], ev.stats[8]], abs=1e-12)


def test_round_trip_through_bytes_keeps_every_array(world) -> None:
    vm = _matches(world[:1])[0]
    back = VideoMatches.from_bytes(vm.to_bytes())
    assert back.video_id == vm.video_id and back.class_names == vm.class_names
    for name in ("det_score", "det_tp", "det_ig", "gt_count", "op_tp", "obj_latency", "trk_counts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(vm, name))
        assert getattr(back, name).dtype == getattr(vm, name).dtype
    a = aggregate([vm], resamples=10)
    b = aggregate(lambda: (VideoMatches.from_bytes(vm.to_bytes()) for _ in range(1)), resamples=10)
    assert a == b


def test_intervals_contain_the_estimate_are_seeded_and_shrink_with_more_videos() -> None:
    small = _matches(_world(range(100, 106), miss=0.2))
    large = _matches(_world(range(100, 148), miss=0.2))
    r1 = aggregate(small, resamples=300, seed=5)
    r2 = aggregate(small, resamples=300, seed=5)
    r3 = aggregate(small, resamples=300, seed=6)
    assert r1["overall"]["intervals"] == r2["overall"]["intervals"]
    assert r1["overall"]["intervals"] != r3["overall"]["intervals"]
    big = aggregate(large, resamples=300, seed=5)
    for metric in ("ap", "ap50", "precision", "recall", "f1", "mota", "idf1", "hota", "latency_median",
                   "latency_p90"):
        for res in (r1, big):
            iv, value = res["overall"]["intervals"][metric], res["overall"]["headline"][metric]
            assert iv["low"] <= value <= iv["high"], metric
        lo, hi = (big["overall"]["intervals"][metric][k] for k in ("low", "high"))
        lo1, hi1 = (r1["overall"]["intervals"][metric][k] for k in ("low", "high"))
        assert hi - lo < hi1 - lo1, metric


def test_comparing_a_run_with_itself_detects_no_change() -> None:
    vms = _matches(_world(range(200, 208)))
    cmp = compare_runs(vms, list(reversed(vms)), resamples=200)
    for metric, row in cmp["metrics"].items():
        if row["difference"] is not None:
            assert row["difference"] == 0 and row["verdict"] == "no detectable change", metric


def test_a_better_detector_is_improved_and_a_worse_one_regressed() -> None:
    seeds = range(300, 312)
    good = _matches(_world(seeds, miss=0.05), prefix="v")
    bad = _matches(_world(seeds, miss=0.6), prefix="v")
    cmp = compare_runs(bad, good, resamples=300)
    json.dumps(cmp, allow_nan=False)
    assert cmp["metrics"]["recall"]["verdict"] == "improved"
    assert cmp["metrics"]["recall"]["difference"] > 0
    back = compare_runs(good, bad, resamples=300)
    assert back["metrics"]["recall"]["verdict"] == "regressed"
    assert back["metrics"]["ap50"]["verdict"] == "regressed"
    diffs = [abs(r["differences"]["ap"]) for r in back["per_video"]]
    assert diffs == sorted(diffs, reverse=True)


def test_comparison_refuses_other_videos_or_ground_truth() -> None:
    w = _world(range(400, 403))
    a = _matches(w)
    with pytest.raises(RunError, match="different videos"):
        compare_runs(a, a[:2])
    other = _world([400, 401, 999])
    b = [a[0], a[1], video_matches(other[2][0], w[2][1], CLASSES, w[2][2], w[2][3], THRESH, video_id="v2",
                                   tracking=True)]
    with pytest.raises(RunError, match="ground truth"):
        compare_runs(a, b)


def test_reading_detections_in_small_score_windows_changes_no_number(world, result) -> None:
    attrs = {"v0": {"daylight": "day"}, "v1": {"daylight": "night"}, "v2": {"daylight": "day"},
             "v3": {"daylight": "night"}}
    vms = _matches(world)
    assert sum(v.det_score.size for v in vms) > 8 * 20  # many windows, ties on their edges
    small = aggregate(vms, attrs, resamples=200, seed=1, min_videos=2, min_objects=5, window=20)
    assert small == result


def test_crowded_frames_cap_detections_per_frame_like_cocoeval() -> None:
    # more than 10 detections of a class on a frame: AR1 < AR10 < AR100 as COCOeval caps them
    world = [video(s, n_frames=12, n_obj=120) for s in (31, 32, 33)]
    ev = run_cocoeval(*coco_concat([(g, d, f) for g, d, f, _ in world], len(CLASSES)))
    for window in (400_000, 150):
        res = aggregate(_matches(world, tracking=False), resamples=0, window=window)
        ours = res["overall"]["coco"]
        assert [ours[k] for k in STAT_NAMES] == pytest.approx(list(ev.stats), abs=1e-12)
    assert ours["AR10"] < ours["AR100"]


def test_visibility_slices_give_recall_of_the_ground_truth_in_each_bucket(world) -> None:
    from evaluation import Boxes, evaluate_operating_point

    rng = np.random.default_rng(7)
    vis = [rng.choice([0.1, 0.3, 0.5, 0.6, 0.9, 1.0], len(gt)) for gt, _, _, _ in world]
    vms = [video_matches(gt, dt, CLASSES, frames, ts, THRESH, 0.5, video_id=f"v{i}", visibility=vis[i])
           for i, (gt, dt, frames, ts) in enumerate(world)]
    back = VideoMatches.from_bytes(vms[0].to_bytes())
    assert back.visibility_edges == (0.25, 0.5, 0.75)
    res = aggregate(vms, resamples=100, min_objects=1)
    sl = res["slices"]["visibility"]
    assert list(sl) == ["<0.25", "0.25-0.5", "0.5-0.75", ">=0.75"]
    for label, lo, hi in [("<0.25", 0, 0.25), ("0.25-0.5", 0.25, 0.5), ("0.5-0.75", 0.5, 0.75), (">=0.75", 0.75, 2)]:
        tp = npos = 0
        for (gt, dt, frames, _), v in zip(world, vis, strict=True):
            other = (v < lo) | (v >= hi)
            g = Boxes.from_arrays(gt.frame_index, gt.class_id, xyxy=gt.xyxy, tracker_id=gt.tracker_id,
                                  iscrowd=gt.iscrowd, ignore=gt.ignore | other)
            op = evaluate_operating_point(g, dt, THRESH, 0.5, np.union1d(frames, dt.frame_index),
                                          np.arange(len(CLASSES)))
            tp, npos = tp + op.tp, npos + op.tp + op.fn
        part = sl[label]
        assert part["operating_point"]["recall"] == pytest.approx(tp / npos), label
        assert part["headline"]["precision"] is None and part["coco"] is None
        assert part["intervals"]["recall"]["low"] <= part["headline"]["recall"] <= part["intervals"]["recall"]["high"]
    assert sum(s["counts"]["objects"] for s in sl.values()) == res["overall"]["counts"]["objects"]
    json.dumps(res, allow_nan=False)
