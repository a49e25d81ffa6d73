"""A session's metrics at once: names instead of ids, tracking totals as motmetrics' OVERALL row,
side-by-side comparison, and the report's PNG plots."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from test_eval_tracking import _rows_to_boxes, _world

from evaluation import NO_SCORE, Boxes
from evaluation.report import PLOTS, render_plot, render_report
from evaluation.session import compare_metrics, evaluate_session, unique_track_ids_per_frame


def _with_class(rows, cls: int, shift: float) -> Boxes:
    b = _rows_to_boxes(rows)
    return Boxes.from_arrays(b.frame_index, np.full(len(b), cls), xyxy=b.xyxy + [shift, 0, shift, 0],
                             tracker_id=b.tracker_id)


def _concat(a: Boxes, b: Boxes) -> Boxes:
    return Boxes.from_arrays(np.r_[a.frame_index, b.frame_index], np.r_[a.class_id, b.class_id],
                             xyxy=np.r_[a.xyxy, b.xyxy], tracker_id=np.r_[a.tracker_id, b.tracker_id])


def test_tracking_totals_equal_motmetrics_overall_over_per_class_accumulators() -> None:
    import motmetrics as mm

    worlds = [_world(3), _world(7)]
    gt = _concat(*(_with_class(g, c, 1000.0 * c) for c, (g, _) in enumerate(worlds)))
    hyp = _concat(*(_with_class(h, c, 1000.0 * c) for c, (_, h) in enumerate(worlds)))
    out = evaluate_session(gt, hyp, ["a", "b"], np.arange(40), None, 0.0, 0.5, tracking=True)["tracking"]
    accs = []
    for g_rows, h_rows in worlds:
        acc = mm.MOTAccumulator(auto_id=False)
        for f in sorted({r[0] for r in g_rows} | {r[0] for r in h_rows}):
            g = [r for r in g_rows if r[0] == f]
            h = [r for r in h_rows if r[0] == f]
            acc.update([r[1] for r in g], [r[1] for r in h],
                       mm.distances.iou_matrix(np.array([r[2] for r in g]).reshape(-1, 4),
                                               np.array([r[2] for r in h]).reshape(-1, 4), max_iou=0.5), frameid=f)
        accs.append(acc)
    names = ["mota", "motp", "idf1", "idp", "idr", "num_switches", "num_fragmentations", "num_misses",
             "num_false_positives", "mostly_tracked", "mostly_lost"]
    ref = mm.metrics.create().compute_many(accs, metrics=names, names=["a", "b"], generate_overall=True)
    for name in names:
        assert out["overall"][name] == pytest.approx(float(ref.loc["OVERALL", name]), abs=1e-9), name
        assert out["per_class"]["b"][name] == pytest.approx(float(ref.loc["b", name]), abs=1e-9), name


def test_results_are_keyed_by_class_name_and_json_safe() -> None:
    gt = Boxes.from_arrays([0, 1, 1], [0, 0, 1], xyxy=[[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 70, 70]])
    dt = Boxes.from_arrays([0, 1, 2], [0, 1, 1], xyxy=[[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 9, 9]],
                           confidence=[0.9, 0.8, 0.7])
    out = evaluate_session(gt, dt, ["pedestrian", "cyclist", "scooter"], np.arange(3), np.arange(3) / 10.0, 0.5)
    json.dumps(out, allow_nan=False)
    assert set(out["coco"]["per_class"]) == {"pedestrian", "cyclist", "scooter"}
    assert out["coco"]["per_class"]["scooter"]["AP"] == -1.0  # no ground truth to judge by
    cm = out["operating_point"]["confusion_matrix"]
    assert cm["labels"] == ["pedestrian", "cyclist", "scooter", "background"]
    # frame 1: the pedestrian seen as a cyclist; the cyclist on frame 1 missed; frame 2 a false cyclist.
    assert cm["matrix"][0] == [1, 1, 0, 0] and cm["matrix"][1] == [0, 0, 0, 1] and cm["matrix"][3] == [0, 1, 0, 0]
    assert out["tracking"] is None
    assert out["temporal"]["overall"]["objects"] == 3


def test_duplicate_track_ids_on_a_frame_are_detected() -> None:
    ok = Boxes.from_arrays([0, 0, 1], [0, 1, 0], xyxy=np.zeros((3, 4)), tracker_id=[1, 1, 1])
    bad = Boxes.from_arrays([0, 0], [0, 0], xyxy=np.zeros((2, 4)), tracker_id=[4, 4])
    assert unique_track_ids_per_frame(ok) and not unique_track_ids_per_frame(bad)


def test_compare_rows_differences_and_best() -> None:
    a = {"coco": {"overall": {"AP": 0.5}, "per_class": {"x": {"AP": -1.0, "AP50": 0.4}}},
         "operating_point": {"fp": 3, "recall": None}}
    b = {"coco": {"overall": {"AP": 0.75}, "per_class": {"x": {"AP": -1.0, "AP50": 0.4}}},
         "operating_point": {"fp": 1, "recall": 0.5}}
    rows = {r["metric"]: r for r in compare_metrics([a, b])}
    assert rows["coco.overall.AP"] == {"metric": "coco.overall.AP", "label": "AP (IoU 0.50:0.95)",
                                       "higher_is_better": True, "values": [0.5, 0.75],
                                       "differences": [0.0, 0.25], "best": 1, "tied": []}
    assert rows["operating_point.fp"]["best"] == 1 and rows["operating_point.fp"]["differences"] == [0.0, -2.0]
    assert rows["operating_point.recall"]["differences"] == [None, None] and rows["operating_point.recall"]["best"] == 1
    assert "coco.per_class.x.AP" not in rows  # -1 on both sides: nothing to compare
    tie = rows["coco.per_class.x.AP50"]
    assert tie["best"] is None and tie["tied"] == [0, 1]  # a tie is nobody's win
    assert tie["label"] == "x: AP at IoU 0.50"
    against_b = {r["metric"]: r for r in compare_metrics([a, b], reference=1)}
    assert against_b["coco.overall.AP"]["differences"] == [-0.25, 0.0]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("empty", [False, True])
def test_report_plots_are_png(empty: bool) -> None:
    if empty:
        metrics = evaluate_session(Boxes.empty(), Boxes.empty(), [], np.arange(5), None, 0.5)
    else:
        frames = np.arange(20)
        gt = Boxes.from_arrays(frames, frames % 2, xyxy=np.c_[frames, frames, frames + 20, frames + 30],
                               tracker_id=frames % 2)
        dt = Boxes.from_arrays(frames[3:], frames[3:] % 2, xyxy=np.c_[frames, frames, frames + 20, frames + 30][3:],
                               confidence=np.linspace(0.3, 0.95, 17), tracker_id=frames[3:] % 2)
        metrics = evaluate_session(gt, dt, ["pedestrian", "cyclist"], frames, frames / 10.0, 0.5, tracking=True)
    plots = render_report(metrics)
    assert set(plots) == set(PLOTS)
    for data in plots.values():
        w, h = _png_size(data)
        assert w >= 300 and h >= 300
    with pytest.raises(KeyError):
        render_plot("nope", metrics)


def test_unscored_detections_rank_last_and_pass_every_threshold() -> None:
    a, b, far = (0.0, 0.0, 10.0, 10.0), (20.0, 0.0, 30.0, 10.0), (50.0, 50.0, 60.0, 60.0)
    gt = Boxes.from_arrays([0, 0], [0, 0], xyxy=[a, b], tracker_id=[1, 2])
    dt = Boxes.from_arrays([0, 0, 0], [0, 0, 0], xyxy=[a, far, b], confidence=[0.9, 0.3, NO_SCORE],
                           tracker_id=[5, 6, 7])
    out = evaluate_session(gt, dt, ["pedestrian"], np.array([0]), None, 0.5, tracking=True)
    op = out["operating_point"]
    assert (op["tp"], op["fp"], op["fn"]) == (2, 0, 0)
    assert out["tracking"]["overall"]["mota"] == 1.0
    # ranked 0.9 (hit), 0.3 (miss), none (hit): precision 1/2 at full recall
    assert out["voc"]["all_point"]["mAP"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert out["notes"] == ["1 detection(s) have no score (-1): ranked below every scored detection in AP, "
                            "kept at every score threshold"]
