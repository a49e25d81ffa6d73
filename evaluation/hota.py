"""HOTA (Higher Order Tracking Accuracy, Luiten et al., IJCV 2021) with TrackEval's semantics.

For every localisation threshold ``alpha`` in 0.05, 0.10 ... 0.95:

* detections are matched to ground truth once per frame, by Hungarian assignment maximising
  ``A(gt id, tracker id) * IoU`` where ``A`` is the pair's global alignment (soft Jaccard of
  the two tracks over the sequence); a matched pair counts at ``alpha`` when its IoU reaches
  ``alpha``;
* DetA = TP / (TP + FN + FP), DetRe = TP / (TP + FN), DetPr = TP / (TP + FP);
* AssA (AssRe, AssPr) = the mean over true positives of the Jaccard index (recall, precision)
  of the pair's tracks at that ``alpha``;
* HOTA = sqrt(DetA * AssA); LocA = the mean IoU of the true positives.

The reported numbers are the means over the 19 thresholds; ``HOTA(0)`` and ``LocA(0)`` are the
values at the lowest one. IoU has TrackEval's guards (empty boxes and unions count as no
overlap). Rows with track id -1 are single-frame tracks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import Boxes

#: The same floats TrackEval uses (``np.arange(0.05, 0.99, 0.05)``).
ALPHAS = np.arange(0.05, 0.99, 0.05)
EPS = np.finfo("float").eps
ARRAY_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA")


def similarity(gt_xyxy: np.ndarray, hyp_xyxy: np.ndarray) -> np.ndarray:
    """IoU of every ground-truth box (rows) with every tracker box (columns)."""
    lo = np.maximum(gt_xyxy[:, None, :2], hyp_xyxy[None, :, :2])
    hi = np.minimum(gt_xyxy[:, None, 2:], hyp_xyxy[None, :, 2:])
    inter = np.maximum(hi[..., 0] - lo[..., 0], 0) * np.maximum(hi[..., 1] - lo[..., 1], 0)
    area_g = (gt_xyxy[:, 2] - gt_xyxy[:, 0]) * (gt_xyxy[:, 3] - gt_xyxy[:, 1])
    area_h = (hyp_xyxy[:, 2] - hyp_xyxy[:, 0]) * (hyp_xyxy[:, 3] - hyp_xyxy[:, 1])
    union = area_g[:, None] + area_h[None, :] - inter
    inter[area_g <= EPS, :] = 0
    inter[:, area_h <= EPS] = 0
    inter[union <= EPS] = 0
    union[union <= EPS] = 1
    return inter / union


def dense_ids(track_id: np.ndarray) -> tuple[np.ndarray, int]:
    """Track ids as 0..n-1 in ascending order; every -1 row becomes a track of its own."""
    ids = np.asarray(track_id, dtype=np.int64).copy()
    loose = ids < 0
    if loose.any():
        top = int(ids.max(initial=-1)) + 1
        ids[loose] = top + np.arange(int(loose.sum()))
    uniq, inv = np.unique(ids, return_inverse=True)
    return inv.reshape(-1), int(uniq.size)


def frame_slices(frame: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted stably by frame and, per frame of ``frames``, where its rows start and end."""
    order = np.argsort(frame, kind="stable")
    f = frame[order]
    return order, np.searchsorted(f, frames, side="left"), np.searchsorted(f, frames, side="right")


@dataclass(frozen=True)
class HotaResult:
    """Per-alpha arrays (``tp``, ``fn``, ``fp`` and the ratios), as TrackEval keeps them."""

    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    ass_a: np.ndarray
    ass_re: np.ndarray
    ass_pr: np.ndarray
    loc_a: np.ndarray

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        det_re = self.tp / np.maximum(1, self.tp + self.fn)
        det_pr = self.tp / np.maximum(1, self.tp + self.fp)
        det_a = self.tp / np.maximum(1, self.tp + self.fn + self.fp)
        return {"HOTA": np.sqrt(det_a * self.ass_a), "DetA": det_a, "AssA": self.ass_a, "DetRe": det_re,
                "DetPr": det_pr, "AssRe": self.ass_re, "AssPr": self.ass_pr, "LocA": self.loc_a}

    def to_dict(self, per_alpha: bool = True) -> dict[str, Any]:
        arrays = self.arrays
        out: dict[str, Any] = {k: float(np.mean(v)) for k, v in arrays.items()}
        out["HOTA(0)"] = float(arrays["HOTA"][0])
        out["LocA(0)"] = float(arrays["LocA"][0])
        for key, counts in (("HOTA_TP", self.tp), ("HOTA_FN", self.fn), ("HOTA_FP", self.fp)):
            out[key] = [int(x) for x in counts]
        if per_alpha:
            out["per_alpha"] = {"alpha": [round(float(a), 2) for a in ALPHAS],
                                **{k: [float(x) for x in v] for k, v in arrays.items()}}
        return out


def evaluate_hota(gt: Boxes, hyp: Boxes) -> HotaResult:
    """HOTA of one sequence, class-agnostic (select one class at a time, as for CLEAR)."""
    n_a = ALPHAS.size
    zeros = np.zeros(n_a)
    if len(hyp) == 0 or len(gt) == 0:
        return HotaResult(zeros, np.full(n_a, float(len(gt))), np.full(n_a, float(len(hyp))), zeros, zeros, zeros,
                          np.ones(n_a))
    g_id, n_g = dense_ids(gt.tracker_id)
    h_id, n_h = dense_ids(hyp.tracker_id)
    frames = np.union1d(gt.frame_index, hyp.frame_index)
    g_order, g_lo, g_hi = frame_slices(gt.frame_index, frames)
    h_order, h_lo, h_hi = frame_slices(hyp.frame_index, frames)
    g_count = np.bincount(g_id, minlength=n_g).astype(float)
    h_count = np.bincount(h_id, minlength=n_h).astype(float)
    per_frame = []
    pair_key: list[np.ndarray] = []
    pair_val: list[np.ndarray] = []
    for fi in range(frames.size):
        gi, hi = g_order[g_lo[fi]:g_hi[fi]], h_order[h_lo[fi]:h_hi[fi]]
        sim = similarity(gt.xyxy[gi], hyp.xyxy[hi])
        per_frame.append((g_id[gi], h_id[hi], sim))
        if gi.size and hi.size:
            denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
            soft = np.zeros_like(sim)
            ok = denom > EPS
            soft[ok] = sim[ok] / denom[ok]
            pair_key.append((g_id[gi][:, None] * n_h + h_id[hi][None, :]).ravel())
            pair_val.append(soft.ravel())
    keys = np.concatenate(pair_key) if pair_key else np.zeros(0, np.int64)
    uniq, inv = np.unique(keys, return_inverse=True)
    potential = np.bincount(inv.reshape(-1), weights=np.concatenate(pair_val) if pair_val else None,
                            minlength=uniq.size)
    alignment = potential / (g_count[uniq // n_h] + h_count[uniq % n_h] - potential)

    tp, fn, fp, loc = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    m_key: list[np.ndarray] = []
    m_sim: list[np.ndarray] = []
    for gids, hids, sim in per_frame:
        if gids.size == 0:
            fp += hids.size
            continue
        if hids.size == 0:
            fn += gids.size
            continue
        k = (gids[:, None] * n_h + hids[None, :])
        score = alignment[np.searchsorted(uniq, k)] * sim
        rows, cols = linear_sum_assignment(-score)
        s = sim[rows, cols]
        hit = s[:, None] >= ALPHAS[None, :] - EPS  # (matches, alphas)
        n_hit = hit.sum(0)
        tp += n_hit
        fn += gids.size - n_hit
        fp += hids.size - n_hit
        loc += (hit * s[:, None]).sum(0)
        m_key.append(k[rows, cols])
        m_sim.append(s)
    ass_a, ass_re, ass_pr = zeros.copy(), zeros.copy(), zeros.copy()
    if m_key:
        mk = np.concatenate(m_key)
        ms = np.concatenate(m_sim)
        pairs, pinv = np.unique(mk, return_inverse=True)
        counts = np.zeros((pairs.size, n_a))
        np.add.at(counts, pinv.reshape(-1), (ms[:, None] >= ALPHAS[None, :] - EPS).astype(float))
        gc, hc = g_count[pairs // n_h][:, None], h_count[pairs % n_h][:, None]
        denom = np.maximum(1, tp)
        ass_a = (counts * (counts / np.maximum(1, gc + hc - counts))).sum(0) / denom
        ass_re = (counts * (counts / np.maximum(1, gc))).sum(0) / denom
        ass_pr = (counts * (counts / np.maximum(1, hc))).sum(0) / denom
    loc_a = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    return HotaResult(tp, fn, fp, ass_a, ass_re, ass_pr, loc_a)


def combine_hota(parts: Sequence[HotaResult]) -> HotaResult:
    """Over classes (or sequences) weighted by detections, as TrackEval's detection-averaged row:
    counts summed, association scores and LocA weighted by each part's true positives."""
    n_a = ALPHAS.size
    if not parts:
        z = np.zeros(n_a)
        return HotaResult(z, z, z, z, z, z, np.ones(n_a))
    tp = np.sum([p.tp for p in parts], axis=0)
    fn = np.sum([p.fn for p in parts], axis=0)
    fp = np.sum([p.fp for p in parts], axis=0)
    w = np.maximum(1.0, tp)

    def weighted(field: str) -> np.ndarray:
        return np.sum([getattr(p, field) * p.tp for p in parts], axis=0) / w

    loc = np.sum([p.loc_a * p.tp for p in parts], axis=0)
    return HotaResult(tp, fn, fp, weighted("ass_a"), weighted("ass_re"), weighted("ass_pr"),
                      np.maximum(1e-10, loc) / np.maximum(1e-10, tp))


def class_averaged(parts: Mapping[str, HotaResult]) -> dict[str, float] | None:
    """TrackEval's class-averaged row: each summary value averaged over the classes."""
    if not parts:
        return None
    rows = [p.to_dict(per_alpha=False) for p in parts.values()]
    keys = (*ARRAY_FIELDS, "HOTA(0)", "LocA(0)")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


#: The sufficient statistics of one sequence that TrackEval's COMBINED row sums over sequences.
FIELDS = ("tp", "fn", "fp", "assa_tp", "loca_tp")


def hota_statistics(gt: Boxes, hyp: Boxes) -> np.ndarray:
    """``(len(FIELDS), len(ALPHAS))``: HOTA_TP, HOTA_FN, HOTA_FP, AssA * HOTA_TP and LocA * HOTA_TP.

    Summed over videos they give the combined HOTA of a validation run (AssA and LocA are
    HOTA_TP-weighted means there), without keeping any box.
    """
    r = evaluate_hota(gt, hyp)
    return np.stack([r.tp, r.fn, r.fp, r.ass_a * r.tp, r.loc_a * r.tp])
