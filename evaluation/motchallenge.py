"""The MOTChallenge evaluation protocol (MOT16/17/20), as TrackEval's MotChallenge2DBox runs it.

Ground truth of these benchmarks holds more than the objects to find: rows marked ``conf`` 0
("not to be evaluated") and boxes of distractor classes (static people, people on vehicles,
reflections, other distractors; in MOT20 also non-motorised vehicles; MOT15 has no classes and
so no distractors). Per frame:

1. detections are matched to *all* ground truth of the frame by Hungarian assignment on IoU
   (pairs below 0.5 cannot match); detections matched to a distractor are removed;
2. ground truth that is zero-marked or a distractor is removed.

What remains is scored; a detection on a zero-marked pedestrian is a false positive, as in the
benchmark. Optionally ground truth less visible than ``min_visibility`` is treated as a
distractor (TrackEval's default, 0, never does).

:func:`evaluate_clear` gives CLEAR-MOT and identity metrics with TrackEval's semantics, which
the benchmark publishes: previous-frame pairs are kept by a bonus inside one Hungarian
assignment, MOTP is the mean IoU of the matches (``motp`` here keeps the platform's
``1 - IoU`` convention, ``motp_iou`` is TrackEval's), mostly tracked means more than 80 % of
frames, fragmentations count tracked segments after the first.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import Boxes
from .hota import EPS, dense_ids, frame_slices, similarity
from .tracking import TrackingResult, _id_true_positives

PROTOCOLS = ("default", "motchallenge")
BENCHMARKS = ("MOT15", "MOT16", "MOT17", "MOT20")
MOT17_DISTRACTORS = ("person_on_vehicle", "static_person", "distractor", "reflection")
#: MOT20 adds non-motorised vehicles; TrackEval names them ``non_mot_vehicle``, datumaro and this
#: platform's MOT class list ``non_motorized_vehicle``.
MOT20_DISTRACTORS = (*MOT17_DISTRACTORS, "non_mot_vehicle", "non_motorized_vehicle")


def distractor_classes(benchmark: str = "MOT17") -> tuple[str, ...]:
    """MOT16 and MOT17 share their classes; MOT15 has none (only its zero-marked rows are dropped)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}")
    return {"MOT15": (), "MOT20": MOT20_DISTRACTORS}.get(benchmark, MOT17_DISTRACTORS)


@dataclass(frozen=True)
class Preprocessed:
    """Which rows survive: ``gt_keep`` and ``dt_keep`` masks over the inputs."""

    gt_keep: np.ndarray
    dt_keep: np.ndarray

    @property
    def removed_detections(self) -> int:
        return int((~self.dt_keep).sum())


def preprocess(gt: Boxes, distractor: np.ndarray, zero_marked: np.ndarray, dt: Boxes) -> Preprocessed:
    """TrackEval's MOTChallenge preprocessing, per frame and per detection class.

    ``gt`` is every ground-truth row (whatever its class: all take part in the matching),
    ``distractor`` and ``zero_marked`` flag its rows. Detections of each class are matched
    separately (the benchmark has one class, pedestrians).
    """
    distractor = np.asarray(distractor, dtype=bool)
    zero_marked = np.asarray(zero_marked, dtype=bool)
    dt_keep = np.ones(len(dt), dtype=bool)
    if distractor.any() and len(dt):
        frames = np.intersect1d(gt.frame_index[distractor], dt.frame_index)
        g_order, g_lo, g_hi = frame_slices(gt.frame_index, frames)
        d_order, d_lo, d_hi = frame_slices(dt.frame_index, frames)
        for fi in range(frames.size):
            gi = g_order[g_lo[fi]:g_hi[fi]]
            di_all = d_order[d_lo[fi]:d_hi[fi]]
            for c in np.unique(dt.class_id[di_all]):
                di = di_all[dt.class_id[di_all] == c]
                scores = similarity(gt.xyxy[gi], dt.xyxy[di])
                scores[scores < 0.5 - EPS] = 0
                rows, cols = linear_sum_assignment(-scores)
                ok = scores[rows, cols] > EPS
                rows, cols = rows[ok], cols[ok]
                dt_keep[di[cols[distractor[gi[rows]]]]] = False
    return Preprocessed(~zero_marked & ~distractor, dt_keep)


def evaluate_clear(gt: Boxes, hyp: Boxes, threshold: float = 0.5) -> TrackingResult:
    """CLEAR-MOT and identity metrics of one class, exactly as TrackEval computes them."""
    g_id, n_g = dense_ids(gt.tracker_id)
    h_id, n_h = dense_ids(hyp.tracker_id)
    n_obj, n_pred = len(gt), len(hyp)
    if n_pred == 0 or n_obj == 0:
        return _result(n_obj, n_pred, 0, n_obj, n_pred, 0, 0.0, 0, 0, n_g, 0, 0)
    frames = np.union1d(gt.frame_index, hyp.frame_index)
    g_order, g_lo, g_hi = frame_slices(gt.frame_index, frames)
    h_order, h_lo, h_hi = frame_slices(hyp.frame_index, frames)
    seen = np.zeros(n_g)
    tracked = np.zeros(n_g)
    segments = np.zeros(n_g)
    last = np.full(n_g, -1)        # the tracker id each object was last matched to (for switches)
    previous = np.full(n_g, -1)    # ... in the previous scored frame (for keeping pairs)
    tp = fn = fp = switches = 0
    iou_sum = 0.0
    pair_o: list[np.ndarray] = []
    pair_h: list[np.ndarray] = []
    for fi in range(frames.size):
        gi, hi = g_order[g_lo[fi]:g_hi[fi]], h_order[h_lo[fi]:h_hi[fi]]
        gids, hids = g_id[gi], h_id[hi]
        if gids.size == 0:
            fp += hids.size
            continue
        if hids.size == 0:
            fn += gids.size
            seen[gids] += 1
            continue
        sim = similarity(gt.xyxy[gi], hyp.xyxy[hi])
        po, ph = np.nonzero(sim >= threshold)
        pair_o.append(gids[po])
        pair_h.append(hids[ph])
        score = 1000.0 * (hids[None, :] == previous[gids][:, None]) + sim
        score[sim < threshold - EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > EPS
        rows, cols = rows[ok], cols[ok]
        mo, mh = gids[rows], hids[cols]
        switches += int(np.sum((last[mo] >= 0) & (last[mo] != mh)))
        seen[gids] += 1
        tracked[mo] += 1
        before = previous < 0
        last[mo] = mh
        previous[:] = -1
        previous[mo] = mh
        segments += before & (previous >= 0)
        tp += rows.size
        fn += gids.size - rows.size
        fp += hids.size - rows.size
        iou_sum += float(sim[rows, cols].sum())
    ratio = tracked[seen > 0] / seen[seen > 0]
    mt = int(np.sum(ratio > 0.8))
    pt = int(np.sum(ratio >= 0.2)) - mt
    frag = int(np.sum(segments[segments > 0] - 1))
    idtp = _id_true_positives(np.concatenate(pair_o) if pair_o else np.zeros(0, int),
                              np.concatenate(pair_h) if pair_h else np.zeros(0, int))
    return _result(n_obj, n_pred, tp, fn, fp, switches, iou_sum, idtp, frag, n_g, mt, pt)


def _result(n_obj: int, n_pred: int, tp: int, fn: int, fp: int, switches: int, iou_sum: float, idtp: int,
            frag: int, n_ids: int, mt: int, pt: int) -> TrackingResult:
    def div(a: float, b: float) -> float | None:
        return None if b == 0 else float(a) / float(b)

    motp_iou = div(iou_sum, tp)
    return TrackingResult(
        mota=None if n_obj == 0 else 1.0 - (fn + fp + switches) / n_obj,
        motp=None if motp_iou is None else 1.0 - motp_iou,
        idf1=div(2 * idtp, n_obj + n_pred), idp=div(idtp, n_pred), idr=div(idtp, n_obj),
        idtp=idtp, idfp=n_pred - idtp, idfn=n_obj - idtp, num_switches=switches, num_fragmentations=frag,
        num_matches=tp - switches, num_misses=fn, num_false_positives=fp, num_objects=n_obj,
        num_predictions=n_pred, num_unique_objects=n_ids, mostly_tracked=mt, partially_tracked=pt,
        mostly_lost=n_ids - mt - pt)


def ground_truth_flags(mot_classes: Sequence[str], ignored: Sequence[bool], visibility: Sequence[float | None],
                       benchmark: str = "MOT17", min_visibility: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(distractor, zero_marked)`` per ground-truth row from its MOT class name, its ``conf`` 0
    mark and its visibility (None: unknown, never below the threshold)."""
    names = set(distractor_classes(benchmark))
    distractor = np.fromiter((c in names for c in mot_classes), dtype=bool, count=len(mot_classes))
    vis = np.asarray([np.nan if v is None else v for v in visibility], dtype=float)
    with np.errstate(invalid="ignore"):
        distractor |= vis < min_visibility
    return distractor, np.asarray(ignored, dtype=bool).reshape(-1)
