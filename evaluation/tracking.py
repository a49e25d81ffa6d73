"""CLEAR-MOT and identity metrics with py-motmetrics' semantics (IoU distance).

Per frame: established pairs are kept while their distance is valid, the rest is assigned by
Hungarian matching on ``1 - IoU`` (pairs above ``max_distance`` forbidden), and a new
partner for an object that had one counts as an ID switch. ``motp`` is motmetrics' value: the
mean ``1 - IoU`` of matched pairs (lower is better). Undefined ratios are ``None``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import Boxes


def iou_distance(obj_xyxy: np.ndarray, hyp_xyxy: np.ndarray, max_distance: float = 0.5) -> np.ndarray:
    """``1 - IoU`` with NaN where the pair may not match (distance above ``max_distance``)."""
    a = obj_xyxy[:, None, :]
    b = hyp_xyxy[None, :, :]
    size = np.maximum(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0)
    inter = size[..., 0] * size[..., 1]
    sa = np.maximum(a[..., 2:] - a[..., :2], 0)
    sb = np.maximum(b[..., 2:] - b[..., :2], 0)
    union = sa[..., 0] * sa[..., 1] + sb[..., 0] * sb[..., 1] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter == 0, 0.0, inter / union)
    dist = 1 - iou
    return np.where(dist > max_distance, np.nan, dist)


def _assign(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian assignment where NaN edges are made too expensive to be worth taking."""
    valid = np.isfinite(dist)
    if not valid.any():
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    c = np.abs(dist[valid]).max() + 1
    costs = np.where(valid, dist, 2 * min(dist.shape) * c + 1)
    rows, cols = linear_sum_assignment(costs)
    keep = valid[rows, cols]
    return rows[keep], cols[keep]


@dataclass(frozen=True)
class TrackingResult:
    mota: float | None
    motp: float | None
    idf1: float | None
    idp: float | None
    idr: float | None
    idtp: int
    idfp: int
    idfn: int
    num_switches: int
    num_fragmentations: int
    num_matches: int
    num_misses: int
    num_false_positives: int
    num_objects: int
    num_predictions: int
    num_unique_objects: int
    mostly_tracked: int
    partially_tracked: int
    mostly_lost: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _div(a: float, b: float) -> float | None:
    return None if b == 0 else float(a) / float(b)


def evaluate_tracking(gt: Boxes, hyp: Boxes, max_distance: float = 0.5) -> TrackingResult:
    """Class-agnostic, like motmetrics: use ``Boxes.select`` for one class at a time.

    Frames are visited in ascending order; within a frame, rows keep their input order (it
    decides Hungarian tie-breaks exactly as feeding motmetrics in that order would). Track
    ids must be unique within a frame on each side.
    """
    frames = np.union1d(gt.frame_index, hyp.frame_index)
    g_order = np.argsort(gt.frame_index, kind="stable")
    h_order = np.argsort(hyp.frame_index, kind="stable")
    g_bounds = np.searchsorted(gt.frame_index[g_order], frames, side="left"), np.searchsorted(
        gt.frame_index[g_order], frames, side="right")
    h_bounds = np.searchsorted(hyp.frame_index[h_order], frames, side="left"), np.searchsorted(
        hyp.frame_index[h_order], frames, side="right")
    partner: dict[int, int] = {}
    state: dict[int, list[bool]] = {}  # per object, per present frame: tracked or missed
    pair_o: list[np.ndarray] = []
    pair_h: list[np.ndarray] = []
    n_match = n_switch = n_miss = n_fp = 0
    dist_sum = 0.0
    for fi in range(frames.size):
        gi = g_order[g_bounds[0][fi]:g_bounds[1][fi]]
        hi = h_order[h_bounds[0][fi]:h_bounds[1][fi]]
        oids, hids = gt.tracker_id[gi], hyp.tracker_id[hi]
        dist = iou_distance(gt.xyxy[gi], hyp.xyxy[hi], max_distance)
        vo, vh = np.nonzero(np.isfinite(dist))
        pair_o.append(oids[vo])
        pair_h.append(hids[vh])
        o_done = np.zeros(oids.size, dtype=bool)
        h_done = np.zeros(hids.size, dtype=bool)
        tracked = np.zeros(oids.size, dtype=bool)
        if oids.size and hids.size:
            for i, o in enumerate(oids.tolist()):
                if o not in partner:
                    continue
                js = np.nonzero(~h_done & (hids == partner[o]))[0]
                if js.size == 0:
                    continue
                j = js[0]
                if np.isfinite(dist[i, j]):
                    o_done[i] = h_done[j] = tracked[i] = True
                    n_match += 1
                    dist_sum += dist[i, j]
            d = dist.copy()
            d[o_done, :] = np.nan
            d[:, h_done] = np.nan
            for i, j in zip(*_assign(d), strict=True):
                o, h = int(oids[i]), int(hids[j])
                if o in partner and partner[o] != h:
                    n_switch += 1
                else:
                    n_match += 1
                dist_sum += d[i, j]
                o_done[i] = h_done[j] = tracked[i] = True
                partner[o] = h
        n_miss += int((~o_done).sum())
        n_fp += int((~h_done).sum())
        for o, t in zip(oids.tolist(), tracked.tolist(), strict=True):
            state.setdefault(o, []).append(t)
    n_obj, n_pred = len(gt), len(hyp)
    frag = 0
    mt = pt = ml = 0
    for seq in state.values():
        s = np.asarray(seq)
        hit = np.nonzero(s)[0]
        if hit.size:
            span = s[hit[0]:hit[-1] + 1]
            frag += int(np.sum(span[:-1] & ~span[1:]))
        ratio = s.sum() / s.size
        mt += ratio >= 0.8
        pt += (ratio >= 0.2) & (ratio < 0.8)
        ml += ratio < 0.2
    idtp = _id_true_positives(np.concatenate(pair_o) if pair_o else np.zeros(0, int),
                              np.concatenate(pair_h) if pair_h else np.zeros(0, int))
    idfn, idfp = n_obj - idtp, n_pred - idtp
    mota = None if n_obj == 0 else 1.0 - (n_miss + n_switch + n_fp) / n_obj
    return TrackingResult(
        mota=mota, motp=_div(dist_sum, n_match + n_switch), idf1=_div(2 * idtp, n_obj + n_pred),
        idp=_div(idtp, idtp + idfp), idr=_div(idtp, idtp + idfn), idtp=idtp, idfp=idfp, idfn=idfn,
        num_switches=n_switch, num_fragmentations=frag, num_matches=n_match, num_misses=n_miss,
        num_false_positives=n_fp, num_objects=n_obj, num_predictions=n_pred, num_unique_objects=len(state),
        mostly_tracked=int(mt), partially_tracked=int(pt), mostly_lost=int(ml))


def _id_true_positives(pair_o: np.ndarray, pair_h: np.ndarray) -> int:
    """Global one-to-one identity assignment maximising frames where the pair overlaps; this
    is the same optimum as motmetrics' min-cost formulation of IDFP + IDFN."""
    if pair_o.size == 0:
        return 0
    uo, oi = np.unique(pair_o, return_inverse=True)
    uh, hi = np.unique(pair_h, return_inverse=True)
    counts = np.zeros((uo.size, uh.size), dtype=np.int64)
    np.add.at(counts, (oi, hi), 1)
    rows, cols = linear_sum_assignment(-counts)
    return int(counts[rows, cols].sum())
