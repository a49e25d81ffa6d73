"""Regression gates: bad gates are located field errors; good gates pass and fail as specified."""
from __future__ import annotations

import pytest
from run_worlds import CLASSES, video

from evaluation.gates import evaluate_gates, validate_gates
from evaluation.runs import aggregate, compare_runs, slice_keys, video_matches

ATTRS = {f"v{i}": {"daylight": "night" if i % 2 else "day"} for i in range(8)}


def _run(miss: float):
    out = []
    for i in range(8):
        gt, dt, frames, ts = video(500 + i, miss=miss)
        out.append(video_matches(gt, dt, CLASSES, frames, ts, 0.4, tracking=True, video_id=f"v{i}"))
    return out


@pytest.fixture(scope="module")
def runs():
    good, bad = _run(0.05), _run(0.6)
    return {"good": aggregate(good, ATTRS, resamples=200, min_objects=5),
            "bad": aggregate(bad, ATTRS, resamples=200, min_objects=5),
            "good_vs_bad": compare_runs(bad, good, ATTRS, resamples=200),
            "bad_vs_good": compare_runs(good, bad, ATTRS, resamples=200)}


def test_bad_gates_are_field_errors_located_by_index() -> None:
    gates = [
        {"metric": "recall", "class": "cyclist", "slice": {"daylight": "night"}, "min": 0.85},  # good
        {"metric": "recal", "min": 0.5},
        {"metric": "recall", "class": "truck", "min": 0.5},
        {"metric": "recall", "slice": {"weather": "rain"}, "min": 0.5},
        {"metric": "recall"},
        {"metric": "ap50", "max_drop": 0.01, "vs": "baseline"},
        {"metric": "ap50", "max_drop": 0.01},
        {"metric": "ap50", "min": "high", "significant": "yes"},
        "recall >= 0.5",
        {"metric": "f1", "slice": {"daylight": "dusk"}, "max": 1},
    ]
    errors = validate_gates(gates, CLASSES, slice_keys(ATTRS), has_baseline=False)
    assert not any(k.startswith("gates.0") for k in errors)
    assert "unknown metric" in errors["gates.1.metric"][0]
    assert "unknown class" in errors["gates.2.class"][0]
    assert "unknown slice key" in errors["gates.3.slice"][0]
    assert "at least one of" in errors["gates.4"][0]
    assert "no baseline" in errors["gates.5.vs"][0]
    assert "needs vs: baseline" in errors["gates.6.vs"][0]
    assert errors["gates.7.min"] == ["must be a number"] and errors["gates.7.significant"]
    assert errors["gates.8"] == ["must be an object"]
    assert "unknown value" in errors["gates.9.slice"][0]
    assert validate_gates(gates[:1] + gates[5:6], CLASSES, slice_keys(ATTRS), has_baseline=True) == {}
    assert validate_gates({"metric": "ap"}, CLASSES, [], True) == {"gates": ["must be a list of gates"]}


def test_min_and_max_gates_pass_and_fail_on_the_value(runs) -> None:
    good = runs["good"]
    recall = good["overall"]["headline"]["recall"]
    gates = [{"metric": "recall", "min": recall - 0.01}, {"metric": "recall", "min": recall + 0.01},
             {"metric": "latency_p90", "max": 10.0}, {"metric": "latency_p90", "max": 0.0}]
    res = evaluate_gates(gates, good, None)
    assert [g["status"] for g in res["gates"]] == ["passed", "failed", "passed", "failed"]
    assert res["gate_status"] == "failed"
    assert res["gates"][0]["value"] == recall and res["gates"][0]["interval"]["low"] <= recall
    assert "below min" in res["gates"][1]["reason"]
    assert evaluate_gates(gates[:1] + gates[2:3], good, None)["gate_status"] == "passed"


def test_significant_min_fails_only_when_the_whole_interval_is_below(runs) -> None:
    good = runs["good"]
    iv = good["overall"]["intervals"]["recall"]
    value = good["overall"]["headline"]["recall"]
    inside = {"metric": "recall", "min": (value + iv["high"]) / 2, "significant": True}
    above = {"metric": "recall", "min": iv["high"] + 0.01, "significant": True}
    res = evaluate_gates([inside, above, {**inside, "significant": False}], good, None)
    assert [g["status"] for g in res["gates"]] == ["passed", "failed", "failed"]


def test_class_and_slice_gates_read_their_own_numbers(runs) -> None:
    good = runs["good"]
    night = good["slices"]["daylight"]["night"]["per_class"]["cyclist"]["headline"]["recall"]
    res = evaluate_gates([{"metric": "recall", "class": "cyclist", "slice": {"daylight": "night"}, "min": 0}], good,
                         None)
    assert res["gates"][0]["value"] == night
    # scooter has no ground truth: a gate on it cannot pass on no data
    res = evaluate_gates([{"metric": "recall", "class": "scooter", "slice": {"daylight": "night"}, "min": 0}], good,
                         None)
    assert res["gates"][0]["status"] == "failed" and "insufficient" in res["gates"][0]["reason"]


def test_max_drop_against_the_baseline(runs) -> None:
    gate = {"metric": "ap50", "max_drop": 0.01, "vs": "baseline", "significant": True}
    better = evaluate_gates([gate], runs["good"], runs["good_vs_bad"])
    assert better["gate_status"] == "passed"
    worse = evaluate_gates([gate, {**gate, "class": "pedestrian"}], runs["bad"], runs["bad_vs_good"])
    assert worse["gate_status"] == "failed"
    assert worse["gates"][0]["verdict"] == "regressed" and "dropped by" in worse["gates"][0]["reason"]
    assert worse["gates"][0]["difference"] < -0.01
    huge = evaluate_gates([{**gate, "max_drop": 1.0}], runs["bad"], runs["bad_vs_good"])
    assert huge["gate_status"] == "passed"
    none = evaluate_gates([gate], runs["bad"], None)
    assert none["gates"][0]["reason"] == "no baseline comparison"
