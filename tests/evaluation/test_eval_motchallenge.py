"""The MOTChallenge protocol end to end: MOT17 files read by the platform's MOT reader and scored
by ``evaluate_session(protocol="motchallenge")`` equal TrackEval's MotChallenge2DBox evaluation
of the same files (its own reader, preprocessing and metrics)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import formats
from evaluation import Boxes
from evaluation.motchallenge import ground_truth_flags, preprocess
from evaluation.session import evaluate_session
from formats import ReadOptions, VideoInfo
from formats.mot import CLASS_ATTRIBUTE, IGNORE_ATTRIBUTE

trackeval = pytest.importorskip("trackeval")

SEQ = "MOT17-90-GEN"
W, H = 1920, 1080


def mot17_sequence(seed: int, n_frames: int = 40) -> tuple[list[str], list[str], list[str]]:
    """Ground truth with pedestrians (some zero-marked), static people, people on vehicles,
    reflections, distractors, cars and occluders; the tracker follows the pedestrians with
    misses and switches, also fires on static people and cars, and adds clutter.
    Returns gt lines, tracker lines, and the tracker lines that copy the pedestrian ground truth."""
    rng = np.random.default_rng(seed)
    gt, trk, copy = [], [], []
    next_tid = 1
    kinds = [(1, 1)] * 7 + [(1, 0), (7, 0), (7, 0), (2, 0), (12, 0), (8, 0), (3, 0), (9, 0)]
    for oid, (cls, conf) in enumerate(kinds, 1):
        start = int(rng.integers(0, n_frames // 3))
        end = int(rng.integers(start + 5, n_frames + 1))
        x, y = rng.uniform(50, W - 300), rng.uniform(50, H - 400)
        vx, vy = (0.0, 0.0) if cls == 7 else tuple(rng.uniform(-6, 6, 2))
        w, h = rng.uniform(30, 90), rng.uniform(80, 250)
        tid = next_tid
        next_tid += 1
        for f in range(start, end):
            bx, by = x + vx * f, y + vy * f
            vis = round(float(rng.uniform(0.05, 1.0)), 3)
            gt.append(f"{f + 1},{oid},{bx:.2f},{by:.2f},{w:.2f},{h:.2f},{conf},{cls},{vis}")
            if cls == 1 and conf == 1:
                copy.append(f"{f + 1},{oid},{bx:.2f},{by:.2f},{w:.2f},{h:.2f},1,-1,-1,-1")
            fires = (cls == 1) or (cls in (7, 3, 2) and rng.random() < 0.7)
            if not fires or rng.random() < 0.12:
                continue
            if rng.random() < 0.06:
                tid = next_tid
                next_tid += 1
            n = rng.normal(0, 0.07 * w, 4)
            trk.append(f"{f + 1},{tid},{bx + n[0]:.2f},{by + n[1]:.2f},{w + n[2]:.2f},{h + n[3]:.2f},"
                       f"{rng.uniform(0.3, 1):.3f},-1,-1,-1")
    for f in range(n_frames):
        if rng.random() < 0.4:
            trk.append(f"{f + 1},{900 + int(rng.integers(0, 3))},{rng.uniform(0, W - 100):.2f},"
                       f"{rng.uniform(0, H - 100):.2f},40,90,0.5,-1,-1,-1")
    return gt, trk, copy


def write_layout(root: Path, gt: list[str], trk: list[str], n_frames: int, benchmark: str = "MOT17") -> None:
    seq = root / "gt" / f"{benchmark}-train" / SEQ
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={SEQ}\nimDir=img1\nframeRate=30\nseqLength={n_frames}\n"
                                     f"imWidth={W}\nimHeight={H}\nimExt=.jpg\n")
    data = root / "trackers" / f"{benchmark}-train" / "trk" / "data"
    data.mkdir(parents=True)
    (data / f"{SEQ}.txt").write_text("\n".join(trk) + "\n")


def trackeval_mot17(root: Path, n_frames: int, benchmark: str = "MOT17") -> dict:
    from trackeval import Evaluator
    from trackeval.datasets import MotChallenge2DBox
    from trackeval.metrics import CLEAR, HOTA, Identity

    quiet = {k: False for k in ("PRINT_RESULTS", "PRINT_CONFIG", "TIME_PROGRESS", "OUTPUT_SUMMARY",
                                "OUTPUT_DETAILED", "PLOT_CURVES", "PRINT_ONLY_COMBINED")}
    evaluator = Evaluator({**quiet, "USE_PARALLEL": False, "LOG_ON_ERROR": None})
    dataset = MotChallenge2DBox({"GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"),
                                 "BENCHMARK": benchmark, "SPLIT_TO_EVAL": "train", "TRACKERS_TO_EVAL": ["trk"],
                                 "SEQ_INFO": {SEQ: n_frames}, "PRINT_CONFIG": False,
                                 "OUTPUT_FOLDER": str(root / "out")})
    metric_cfg = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
    res, _ = evaluator.evaluate([dataset], [HOTA(), CLEAR(metric_cfg), Identity(metric_cfg)])
    return res["MotChallenge2DBox"]["trk"][SEQ]["pedestrian"]


def platform_inputs(root: Path, n_frames: int, benchmark: str = "MOT17"):
    """The same files through the platform's MOT reader, as a ground-truth import stores them."""
    video = VideoInfo(W, H, n_frames)
    seq = root / "gt" / f"{benchmark}-train" / SEQ
    gt = list(formats.open_reader("mot", seq, video=video, classes=["pedestrian"],
                                  options=ReadOptions(add_missing_labels=True, default_label="pedestrian")))
    trk = list(formats.open_reader("mot", root / "trackers" / f"{benchmark}-train" / "trk" / "data" / f"{SEQ}.txt",
                                   video=video, classes=["pedestrian"],
                                   options=ReadOptions(kind="results", default_label="pedestrian")))
    g = Boxes.from_arrays([a.frame_number for a in gt], [0 if a.label == "pedestrian" else -1 for a in gt],
                          xyxy=[a.box for a in gt], tracker_id=[a.track_id for a in gt])
    distractor, zero = ground_truth_flags([a.attributes.get(CLASS_ATTRIBUTE, a.label) for a in gt],
                                          [bool(a.attributes.get(IGNORE_ATTRIBUTE)) for a in gt],
                                          [a.visibility for a in gt], benchmark)
    d = Boxes.from_arrays([r.frame_number for r in trk], np.zeros(len(trk)), xyxy=[r.box for r in trk],
                          confidence=[r.score for r in trk], tracker_id=[r.track_id for r in trk])
    return g, d, distractor, zero


def assert_same_as_trackeval(out: dict, ref: dict) -> None:
    hota, clear, ident = out["hota"]["overall"], ref["CLEAR"], ref["Identity"]
    for f in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr"):
        assert hota[f] == pytest.approx(float(np.mean(ref["HOTA"][f])), abs=1e-6), f
    assert hota["HOTA(0)"] == pytest.approx(float(ref["HOTA"]["HOTA(0)"]), abs=1e-6)
    assert hota["LocA(0)"] == pytest.approx(float(ref["HOTA"]["LocA(0)"]), abs=1e-6)
    t = out["tracking"]["overall"]
    assert out["tracking"]["semantics"] == "TrackEval"
    assert t["mota"] == pytest.approx(float(clear["MOTA"]), abs=1e-6)
    assert 1 - t["motp"] == pytest.approx(float(clear["MOTP"]), abs=1e-6)
    assert t["idf1"] == pytest.approx(float(ident["IDF1"]), abs=1e-6)
    assert (t["num_false_positives"], t["num_misses"], t["num_switches"], t["num_fragmentations"],
            t["mostly_tracked"], t["partially_tracked"], t["mostly_lost"]) == tuple(
        int(clear[k]) for k in ("CLR_FP", "CLR_FN", "IDSW", "Frag", "MT", "PT", "ML"))
    assert (t["idtp"], t["idfp"], t["idfn"]) == tuple(int(ident[k]) for k in ("IDTP", "IDFP", "IDFN"))


def _session(g, d, distractor, zero, n_frames, protocol="motchallenge"):
    return evaluate_session(g, d, ["pedestrian"], np.arange(n_frames), None, 0.0, 0.5, tracking=True,
                            protocol=protocol, gt_distractor=distractor, gt_zero_marked=zero)


@pytest.mark.parametrize("seed", range(4))
def test_mot17_protocol_equals_trackeval(tmp_path: Path, seed: int) -> None:
    n = 40
    gt, trk, _ = mot17_sequence(seed, n)
    write_layout(tmp_path, gt, trk, n)
    ref = trackeval_mot17(tmp_path, n)
    g, d, distractor, zero = platform_inputs(tmp_path, n)
    out = _session(g, d, distractor, zero, n)
    assert_same_as_trackeval(out, ref)
    # the preprocessing did something: detections on static people and people on vehicles went
    assert out["protocol"]["tracking_detections_removed"] > 0
    assert out["protocol"]["name"] == "motchallenge"


@pytest.mark.parametrize("seed", range(2))
def test_mot15_world_coordinates_equal_trackeval(tmp_path: Path, seed: int) -> None:
    """2D MOT 2015: 10 columns, world coordinates instead of class and visibility, no distractors;
    TrackEval drops only zero-marked rows."""
    n = 30
    gt, trk, _ = mot17_sequence(seed, n)
    rng = np.random.default_rng(seed)
    mot15 = []
    for line in gt:
        f, tid, x, y, w, h, conf, cls, _vis = line.split(",")
        if cls in ("1", "7"):  # people; a few rows not to be evaluated
            flag = "0" if rng.random() < 0.1 else "1"
            mot15.append(f"{f},{tid},{x},{y},{w},{h},{flag},{rng.uniform(-5, 5):.4f},{rng.uniform(0, 20):.4f},0")
    write_layout(tmp_path, mot15, trk, n, "MOT15")
    ref = trackeval_mot17(tmp_path, n, "MOT15")
    g, d, distractor, zero = platform_inputs(tmp_path, n, "MOT15")
    assert not distractor.any() and zero.any() and (g.class_id == 0).all()
    assert_same_as_trackeval(_session(g, d, distractor, zero, n), ref)


def test_pedestrian_ground_truth_as_detections_is_perfect_only_under_the_protocol(tmp_path: Path) -> None:
    n = 8
    gt, trk, copy = mot17_sequence(5, n)
    # the pedestrian ground truth itself, plus the detector firing on the static people
    static = [line for line in gt if line.split(",")[7] == "7"]
    submitted = copy + [",".join(s.split(",")[:6]) + ",0.9,-1,-1,-1" for s in static]
    write_layout(tmp_path, gt, submitted, n)
    g, d, distractor, zero = platform_inputs(tmp_path, n)
    assert distractor.sum() > 0 and zero.sum() > 0 and len(d) > len(copy)
    out = _session(g, d, distractor, zero, n)
    t = out["tracking"]["overall"]
    assert (t["mota"], t["num_false_positives"], t["num_misses"], t["num_switches"]) == (1.0, 0, 0, 0)
    assert out["hota"]["overall"]["HOTA"] == pytest.approx(1.0)
    assert out["operating_point"]["fp"] == 0 and out["operating_point"]["recall"] == 1.0
    assert out["coco"]["overall"]["AP"] == pytest.approx(1.0) and out["voc"]["all_point"]["mAP"] == 1.0
    assert out["protocol"]["detections_removed"] == len(static)
    ref = trackeval_mot17(tmp_path, n)
    assert float(ref["CLEAR"]["MOTA"]) == 1.0 and int(ref["CLEAR"]["CLR_FP"]) == 0
    # without the protocol the detections on static people are false positives
    default = _session(g.select(g.class_id >= 0), d, None, None, n, protocol="default")["tracking"]["overall"]
    assert default["num_false_positives"] > 0 and default["mota"] < 1.0


def test_zero_marked_pedestrians_are_not_objects_but_detections_on_them_count(tmp_path: Path) -> None:
    # TrackEval: only distractor matches are removed; a zero-marked pedestrian is simply no object
    box = (100.0, 100.0, 150.0, 250.0)
    g = Boxes.from_arrays([0, 0], [0, 0], xyxy=[box, (400.0, 100.0, 450.0, 250.0)], tracker_id=[1, 2])
    d = Boxes.from_arrays([0], [0], xyxy=[(400.0, 100.0, 450.0, 250.0)], tracker_id=[7])
    distractor, zero = np.array([False, False]), np.array([False, True])
    pre = preprocess(g, distractor, zero, d)
    assert pre.gt_keep.tolist() == [True, False] and pre.dt_keep.tolist() == [True]
    out = _session(g, d, distractor, zero, 1)["tracking"]["overall"]
    assert (out["num_objects"], out["num_misses"], out["num_false_positives"]) == (1, 1, 1)


def test_visibility_threshold_turns_faint_ground_truth_into_distractors() -> None:
    _, zero = ground_truth_flags(["pedestrian"] * 3, [False] * 3, [0.1, None, 0.9], min_visibility=0.25)
    distractor, _ = ground_truth_flags(["pedestrian"] * 3, [False] * 3, [0.1, None, 0.9], min_visibility=0.25)
    assert distractor.tolist() == [True, False, False] and not zero.any()
    mot20, _ = ground_truth_flags(["non_mot_vehicle", "static_person", "car"], [False] * 3, [None] * 3,
                                  benchmark="MOT20")
    mot17, _ = ground_truth_flags(["non_mot_vehicle", "static_person", "car"], [False] * 3, [None] * 3)
    assert mot20.tolist() == [True, True, False] and mot17.tolist() == [False, True, False]
