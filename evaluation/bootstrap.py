"""Bootstrap over videos: seeded resample weights, intervals, weighted percentiles and a fast
COCO AP for resampled sets.

A resample draws videos with replacement, so it is an integer weight per video; every metric
of a validation run is a function of per-video sums, which makes a resample a weighted sum
(a matrix product for thousands of resamples at once) rather than new matching.

COCO AP of a resample uses per-video histograms of true and false positives on a per-class grid
of score quantiles (``bins`` cells, highest scores first): the precision/recall curve is read at
the cell ends. The interval is then shifted by the difference between the exact AP of the
whole set and the same grid's AP of the whole set, so it is centred on the exact value and only
its width comes from the grid.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

EPS = np.spacing(1)


def resample_weights(n: int, resamples: int, seed: int, name: str = "") -> np.ndarray:
    """(resamples, n) integer weights: how often each of ``n`` videos is drawn in each resample.

    Seeded by ``seed`` and ``name`` (the slice), so a slice's resamples do not depend on other
    slices, and two runs on the same videos get the same draws (paired comparison).
    """
    w = np.zeros((resamples, n), dtype=np.float64)
    if n == 0 or resamples == 0:
        return w
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())]))
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (np.arange(resamples)[:, None] * n + draws).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def interval(samples: np.ndarray, confidence: float, shift: float = 0.0) -> dict[str, float] | None:
    """Percentile interval of the defined (finite) resample values; None if fewer than half are."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0 or s.size * 2 < np.asarray(samples).size:
        return None
    lo, hi = np.quantile(s, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return {"low": float(lo + shift), "high": float(hi + shift)}


def weighted_percentiles(values: np.ndarray, groups: np.ndarray, weights: np.ndarray,
                         qs: Sequence[float], chunk: int = 64) -> np.ndarray:
    """np.percentile (linear) of ``values`` repeated ``weights[:, groups]`` times, per resample.

    ``values`` (n,) sorted ascending, ``groups`` (n,) the video of each value, ``weights``
    (R, V) integers. Returns (len(qs), R), NaN where a resample has no value. Resamples are
    taken ``chunk`` at a time so the (resamples, values) table stays small.
    """
    r_all = weights.shape[0]
    out = np.full((len(qs), r_all), np.nan)
    if values.size == 0:
        return out
    for s in range(0, r_all, chunk):
        w = weights[s:s + chunk, groups]  # (r, n)
        r = w.shape[0]
        cw = np.cumsum(w, axis=1)
        total = cw[:, -1]
        offset = np.concatenate([[0.0], np.cumsum(total)[:-1]])
        flat = (cw + offset[:, None]).ravel()
        ok = total > 0
        for i, q in enumerate(qs):
            pos = q / 100.0 * np.maximum(total - 1, 0)
            lo, frac = np.floor(pos), pos - np.floor(pos)
            hi = np.minimum(lo + 1, np.maximum(total - 1, 0))
            # the j-th value of the expanded array is the first index whose cumulative weight exceeds j
            i_lo = np.searchsorted(flat, lo + offset, side="right") - np.arange(r) * values.size
            i_hi = np.searchsorted(flat, hi + offset, side="right") - np.arange(r) * values.size
            i_lo, i_hi = np.clip(i_lo, 0, values.size - 1), np.clip(i_hi, 0, values.size - 1)
            a, b = values[i_lo], values[i_hi]
            out[i, s:s + r] = np.where(ok, a + (b - a) * frac, np.nan)
    return out


def score_grid(scores: np.ndarray, bins: int) -> np.ndarray:
    """Ascending cell edges at score quantiles; a score's cell is ``cell_index``."""
    if scores.size == 0:
        return np.zeros(0)
    return np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)[1:-1]))


def cell_index(edges: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Cell of each score, 0 holding the highest scores; ``edges.size + 1`` cells in all."""
    return edges.size - np.searchsorted(edges, scores, side="right")


def binned_ap(counts: np.ndarray, npig: np.ndarray, recall_thresholds: np.ndarray) -> np.ndarray:
    """COCO precision cells averaged over recall thresholds, from binned counts.

    ``counts`` (..., G, 2): true / false positives per cell (highest scores first); ``npig``
    (...) ground truth. Returns (...) mean interpolated precision, NaN where ``npig`` is 0.
    """
    lead = counts.shape[:-2]
    g = counts.shape[-2]
    rows = int(np.prod(lead)) if lead else 1
    c = counts.reshape(rows, g, 2)
    n = np.asarray(npig, dtype=c.dtype).reshape(rows)
    tp = np.cumsum(c[..., 0], axis=1)
    fp = np.cumsum(c[..., 1], axis=1)
    valid = n > 0
    rc = tp / np.where(valid, n, np.inf)[:, None]
    pr = tp / (fp + tp + np.finfo(c.dtype).eps)
    env = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    # COCO reads, for each recall threshold r, the envelope at the first cell with recall >= r.
    # With c_j the number of thresholds <= recall of cell j (nondecreasing in j), cell j is that
    # first cell for c_j - c_{j-1} thresholds; thresholds never reached read 0.
    reached = np.searchsorted(recall_thresholds, rc, side="right")
    first_for = np.diff(reached, axis=1, prepend=0)
    out = np.where(valid, np.einsum("ij,ij->i", first_for.astype(env.dtype), env) / recall_thresholds.size, np.nan)
    return out.reshape(lead)

