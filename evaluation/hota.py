"""HOTA sufficient statistics of one sequence, with TrackEval's semantics (IoU similarity).

``hota_statistics`` returns, per alpha in 0.05:0.05:0.95, what TrackEval's COMBINED row sums
over sequences: HOTA_TP, HOTA_FN, HOTA_FP, AssA * HOTA_TP and LocA * HOTA_TP (TrackEval combines
AssA and LocA as HOTA_TP-weighted means). ``evaluation.runs.combine_hota`` turns summed
statistics into HOTA, DetA, AssA, LocA. Class-agnostic, like TrackEval's per-class evaluation:
select one class first. No dataset-specific preprocessing (distractor removal) is done here.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import Boxes, box_iou

ALPHAS = np.arange(0.05, 0.99, 0.05)
FIELDS = ("tp", "fn", "fp", "assa_tp", "loca_tp")
_EPS = np.finfo("float").eps


def hota_statistics(gt: Boxes, hyp: Boxes) -> np.ndarray:
    """(5, 19) array: FIELDS by alpha."""
    n_a = ALPHAS.size
    out = np.zeros((len(FIELDS), n_a))
    frames = np.union1d(gt.frame, hyp.frame)
    g_ids, g_inv = np.unique(gt.track_id, return_inverse=True)
    h_ids, h_inv = np.unique(hyp.track_id, return_inverse=True)
    if len(gt) == 0 or len(hyp) == 0:
        out[1] = len(gt)
        out[2] = len(hyp)
        return out
    per_frame = []
    potential = np.zeros((g_ids.size, h_ids.size))
    g_count = np.zeros(g_ids.size)
    h_count = np.zeros(h_ids.size)
    for f in frames:
        gi, hi = np.nonzero(gt.frame == f)[0], np.nonzero(hyp.frame == f)[0]
        sim = box_iou(gt.xyxy[gi][:, None, :], hyp.xyxy[hi][None, :, :]) if gi.size and hi.size else \
            np.zeros((gi.size, hi.size))
        go, ho = g_inv[gi], h_inv[hi]
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        mask = denom > _EPS
        sim_iou[mask] = sim[mask] / denom[mask]
        potential[go[:, None], ho[None, :]] += sim_iou
        g_count[go] += 1
        h_count[ho] += 1
        per_frame.append((go, ho, sim))
    alignment = potential / (g_count[:, None] + h_count[None, :] - potential)
    matches = np.zeros((n_a, g_ids.size, h_ids.size))
    for go, ho, sim in per_frame:
        if go.size == 0:
            out[2] += ho.size
            continue
        if ho.size == 0:
            out[1] += go.size
            continue
        score = alignment[go[:, None], ho[None, :]] * sim
        rows, cols = linear_sum_assignment(-score)
        for a, alpha in enumerate(ALPHAS):
            ok = sim[rows, cols] >= alpha - _EPS
            r, c = rows[ok], cols[ok]
            out[0, a] += r.size
            out[1, a] += go.size - r.size
            out[2, a] += ho.size - r.size
            if r.size:
                out[4, a] += sim[r, c].sum()
                matches[a, go[r], ho[c]] += 1
    for a in range(n_a):
        m = matches[a]
        ass = m / np.maximum(1, g_count[:, None] + h_count[None, :] - m)
        out[3, a] = (m * ass).sum()
    return out
